"""A plain ONNX Runtime generation loop over the exported graph, with per-row prefix KV.

This is the reference for the gateway's batching layout and the "plain Python ORT" benchmark subject.
Layout of one batch (row r has prefix length P_r and prompt length S_r):
  past  [B, n_head, Pmax, head_dim]: row r's prefix right-aligned, zeros in front (mask 0)
  input [B, Smax]: row r's prompt right-aligned, pad ids in front (mask 0)
  mask  [B, Pmax + Smax]: 1 on prefix and prompt columns, 0 on padding
BLOOM derives ALiBi positions from the cumulative mask, so padding columns change nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import onnxruntime as ort

from .prefix import PrefixKv


class OrtBloom:
    def __init__(self, model_dir: Path, threads: int = 0) -> None:
        cfg = json.loads((model_dir / "config.json").read_text())
        self.n_layer = cfg["n_layer"]
        self.n_head = cfg["n_head"]
        self.head_dim = cfg["hidden_size"] // cfg["n_head"]
        self.pad_id = cfg.get("pad_token_id", 3)
        self.eos_id = cfg.get("eos_token_id", 2)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(model_dir / "model.onnx"), opts, providers=["CPUExecutionProvider"]
        )

    def _run(
        self, ids: np.ndarray, mask: np.ndarray, past: list[np.ndarray]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        feeds = {"input_ids": ids, "attention_mask": mask}
        for i in range(self.n_layer):
            feeds[f"past_key_values.{i}.key"] = past[2 * i]
            feeds[f"past_key_values.{i}.value"] = past[2 * i + 1]
        # Every output of the graph is a dense tensor (ORT's signature also allows sparse ones).
        out = cast(list[np.ndarray], self.session.run(None, feeds))
        return out[0], out[1:]

    def prefill(
        self, rows: Sequence[tuple[PrefixKv | None, list[int]]]
    ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """Returns (logits [B, Smax, V], present KV, mask) for a left-padded batch."""
        b = len(rows)
        pmax = max((p.length if p else 0) for p, _ in rows)
        smax = max(len(ids) for _, ids in rows)
        ids = np.full((b, smax), self.pad_id, dtype=np.int64)
        mask = np.zeros((b, pmax + smax), dtype=np.int64)
        past = [np.zeros((b, self.n_head, pmax, self.head_dim), np.float32) for _ in range(2 * self.n_layer)]
        for r, (prefix, prompt) in enumerate(rows):
            plen = prefix.length if prefix else 0
            ids[r, smax - len(prompt):] = prompt
            mask[r, pmax - plen: pmax] = 1
            mask[r, pmax + smax - len(prompt):] = 1
            if prefix:
                for i in range(self.n_layer):
                    past[2 * i][r, :, pmax - plen:] = prefix.keys[i]
                    past[2 * i + 1][r, :, pmax - plen:] = prefix.values[i]
        logits, present = self._run(ids, mask, past)
        return logits, present, mask

    def greedy(
        self, rows: Sequence[tuple[PrefixKv | None, list[int]]], max_new_tokens: int
    ) -> list[list[int]]:
        """Greedy ids per row; eos does not stop generation (the golden vectors ignore eos)."""
        logits, present, mask = self.prefill(rows)
        out: list[list[int]] = [[] for _ in rows]
        nxt = logits[:, -1, :].argmax(-1)
        for step in range(max_new_tokens):
            for r in range(len(rows)):
                out[r].append(int(nxt[r]))
            if step == max_new_tokens - 1:
                break
            mask = np.concatenate([mask, np.ones((len(rows), 1), np.int64)], axis=1)
            logits, present = self._run(nxt[:, None].astype(np.int64), mask, present)
            nxt = logits[:, -1, :].argmax(-1)
        return out
