"""A plain ONNX Runtime loop over the slot graphs (prefixgate_trainer.slot_graph), KV in place.

Row r owns slot r of one arena per layer and kind, [rows, H, C, d]; its prefix is written at
columns [0, P) once. With the GroupQueryAttention graph ONNX Runtime writes each new column itself,
because `past` and `present` are bound to the same memory; with the append graph the run returns
only the new columns' K/V and the loop writes them into the slots. Prompts run one row at a time
(B = 1, the slot's own [1, H, C, d] view), decode steps run every row at once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from .prefix import PrefixKv


def _session(model_dir: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model_dir / "model.onnx"), opts, providers=["CPUExecutionProvider"])


class SlotBloom:
    def __init__(self, model_dir: Path, rows: int, capacity: int, threads: int = 0) -> None:
        cfg = json.loads((model_dir / "config.json").read_text())
        self.n_layer = cfg["n_layer"]
        self.n_head = cfg["n_head"]
        self.head_dim = cfg["hidden_size"] // cfg["n_head"]
        self.capacity = capacity
        self.session = _session(model_dir, threads)
        shape = (rows, self.n_head, capacity, self.head_dim)
        self.arena = [np.zeros(shape, np.float32) for _ in range(2 * self.n_layer)]
        self.lens = [0] * rows
        meta = self.session.get_modelmeta().custom_metadata_map
        self.append = meta.get("prefixgate.kv_layout") == "prefixgate-append-1"

    def _run(self, ids: np.ndarray, first: int, seqlens: list[int]) -> np.ndarray:
        if self.append:
            return self._run_append(ids, first, seqlens)
        b = ids.shape[0]
        io: Any = self.session.io_binding()  # onnxruntime's IOBinding has no type hints
        io.bind_cpu_input("input_ids", ids)
        io.bind_cpu_input("seqlens_k", np.array([n - 1 for n in seqlens], np.int32))
        io.bind_cpu_input("total_sequence_length", np.array(max(seqlens), np.int32))
        views = []
        for i in range(self.n_layer):
            for j, kind in enumerate(("key", "value")):
                view = ort.OrtValue.ortvalue_from_numpy(self.arena[2 * i + j][first:first + b])
                views.append(view)
                io.bind_ortvalue_input(f"past_key_values.{i}.{kind}", view)
                io.bind_ortvalue_output(f"present.{i}.{kind}", view)
        io.bind_output("logits")
        self.session.run_with_iobinding(io)  # type: ignore[no-untyped-call]
        logits: np.ndarray = io.copy_outputs_to_cpu()[-1]
        return logits[:, 0, :]

    def _run_append(self, ids: np.ndarray, first: int, seqlens: list[int]) -> np.ndarray:
        b, s = ids.shape
        mask = np.zeros((b, self.capacity + s), np.int64)
        for r, after in enumerate(seqlens):
            mask[r, :after - s] = 1
        mask[:, self.capacity:] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        for i in range(self.n_layer):
            feeds[f"past_key_values.{i}.key"] = self.arena[2 * i][first:first + b]
            feeds[f"past_key_values.{i}.value"] = self.arena[2 * i + 1][first:first + b]
        out = [np.asarray(o) for o in self.session.run(None, feeds)]
        for j in range(2 * self.n_layer):
            for r, after in enumerate(seqlens):
                self.arena[j][first + r, :, after - s:after] = out[1 + j][r]
        return out[0][:, 0, :]

    def prefill(self, row: int, prefix: PrefixKv | None, prompt: Sequence[int], chunk: int = 0) -> np.ndarray:
        """Writes row's prefix into its slot and runs its prompt (in chunks of `chunk` tokens when
        > 0); returns the logits of the prompt's last token."""
        p = prefix.length if prefix else 0
        if p + len(prompt) > self.capacity:
            raise ValueError(f"prefix {p} + prompt {len(prompt)} exceeds the capacity {self.capacity}")
        for i in range(2 * self.n_layer):
            self.arena[i][row] = 0
        if prefix:
            for i in range(self.n_layer):
                self.arena[2 * i][row, :, :p] = prefix.keys[i]
                self.arena[2 * i + 1][row, :, :p] = prefix.values[i]
        self.lens[row] = p
        step = chunk or len(prompt)
        logits = np.empty(0, np.float32)
        for start in range(0, len(prompt), step):
            part = list(prompt[start:start + step])
            self.lens[row] += len(part)
            logits = self._run(np.array([part], np.int64), row, [self.lens[row]])[0]
        return logits

    def decode(self, tokens: Sequence[int]) -> np.ndarray:
        """One token for rows 0..len(tokens)-1; returns their logits [B, V]."""
        b = len(tokens)
        for r in range(b):
            if self.lens[r] + 1 > self.capacity:
                raise ValueError(f"row {r} is full ({self.capacity} columns)")
            self.lens[r] += 1
        return self._run(np.array(tokens, np.int64)[:, None], 0, self.lens[:b])

    def greedy(self, rows: Sequence[tuple[PrefixKv | None, list[int]]], max_new_tokens: int,
               chunk: int = 0) -> list[list[int]]:
        """Greedy ids per row, the rows decoded together (eos does not stop generation)."""
        nxt = [int(self.prefill(r, p, ids, chunk).argmax()) for r, (p, ids) in enumerate(rows)]
        out: list[list[int]] = [[t] for t in nxt]
        for _ in range(max_new_tokens - 1):
            logits = self.decode(nxt)
            nxt = [int(x) for x in logits.argmax(-1)]
            for r, t in enumerate(nxt):
                out[r].append(t)
        return out


class PagedBloom:
    """A plain ONNX Runtime loop over the paged graph (slot_graph --attention paged).

    Per layer and kind one pool [H, N, G, d] of N pages of G tokens; each row owns a list of
    pages, its tokens in order. Every run gets a block table [B, NP] (a row's pages, padded with
    page 0, which the mask hides) and returns only the new tokens' K/V, which the loop writes into
    the rows' pages. Prompts of several rows run together, right-aligned (mask 0 on the padding),
    optionally in chunks."""

    def __init__(self, model_dir: Path, pages: int, page_tokens: int = 16, threads: int = 0) -> None:
        cfg = json.loads((model_dir / "config.json").read_text())
        self.n_layer = cfg["n_layer"]
        self.n_head = cfg["n_head"]
        self.head_dim = cfg["hidden_size"] // cfg["n_head"]
        self.g = page_tokens
        self.session = _session(model_dir, threads)
        shape = (self.n_head, pages, page_tokens, self.head_dim)
        self.pool = [np.zeros(shape, np.float32) for _ in range(2 * self.n_layer)]
        self.free = list(range(pages - 1, -1, -1))
        self.pages: list[list[int]] = []
        self.lens: list[int] = []

    def _reserve(self, row: int, tokens: int) -> None:
        while len(self.pages[row]) * self.g < tokens:
            if not self.free:
                raise ValueError("the page pool is full")
            self.pages[row].append(self.free.pop())

    def _write(self, row: int, at: int, kv: list[np.ndarray], src_row: int, cols: range) -> None:
        """Writes new columns `cols` of run row src_row as the row's tokens from position `at`."""
        for n, c in enumerate(cols):
            t = at + n
            page, off = self.pages[row][t // self.g], t % self.g
            for j in range(2 * self.n_layer):
                self.pool[j][:, page, off] = kv[j][src_row, :, c]

    def _run(self, ids: np.ndarray, rows: list[int], past: list[int], new: list[int]) -> np.ndarray:
        """One run: row rows[r] has past[r] tokens and brings new[r] real tokens, right-aligned in
        ids [B, S]; returns the last position's logits [B, V]."""
        b, s = ids.shape
        np_ = max(1, max(-(-p // self.g) for p in past))
        width = np_ * self.g
        table = np.zeros((b, np_), np.int64)
        mask = np.zeros((b, width + s), np.int64)
        for r, row in enumerate(rows):
            used = -(-past[r] // self.g)
            table[r, :used] = self.pages[row][:used]
            mask[r, :past[r]] = 1
            mask[r, width + s - new[r]:] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "block_table": table}
        for i in range(self.n_layer):
            feeds[f"past_key_values.{i}.key"] = self.pool[2 * i]
            feeds[f"past_key_values.{i}.value"] = self.pool[2 * i + 1]
        out = [np.asarray(o) for o in self.session.run(None, feeds)]
        for r, row in enumerate(rows):
            self._reserve(row, past[r] + new[r])
            self._write(row, past[r], out[1:], r, range(s - new[r], s))
            self.lens[row] = past[r] + new[r]
        return out[0][:, 0, :]

    def prefill(self, rows: Sequence[tuple[PrefixKv | None, Sequence[int]]], chunk: int = 0) -> np.ndarray:
        """Adds rows (their prefixes written into their pages) and runs their prompts together,
        right-aligned, in runs of `chunk` prompt columns when > 0; returns each row's last logits."""
        first = len(self.pages)
        idx = list(range(first, first + len(rows)))
        for (prefix, _), row in zip(rows, idx, strict=True):
            self.pages.append([])
            self.lens.append(0)
            p = prefix.length if prefix else 0
            self._reserve(row, p)
            for t in range(p):
                page, off = self.pages[row][t // self.g], t % self.g
                for i in range(self.n_layer):
                    self.pool[2 * i][:, page, off] = prefix.keys[i][:, t]  # type: ignore[union-attr]
                    self.pool[2 * i + 1][:, page, off] = prefix.values[i][:, t]  # type: ignore[union-attr]
            self.lens[row] = p
        smax = max(len(ids) for _, ids in rows)
        step = chunk or smax
        logits = np.empty(0, np.float32)
        for start in range(0, smax, step):
            n = min(step, smax - start)
            ids = np.zeros((len(rows), n), np.int64)
            past, new = [], []
            for r, (_, prompt) in enumerate(rows):
                lead = smax - len(prompt)  # the row's prompt starts at virtual column lead
                real = [prompt[c - lead] for c in range(start, start + n) if c >= lead]
                ids[r, n - len(real):] = real
                past.append(self.lens[idx[r]])
                new.append(len(real))
            logits = self._run(ids, idx, past, new)
        return logits

    def decode(self, tokens: Sequence[int]) -> np.ndarray:
        """One token for rows 0..len(tokens)-1; returns their logits [B, V]."""
        b = len(tokens)
        return self._run(np.array(tokens, np.int64)[:, None], list(range(b)), self.lens[:b], [1] * b)

    def greedy(self, rows: Sequence[tuple[PrefixKv | None, list[int]]], max_new_tokens: int,
               chunk: int = 0) -> list[list[int]]:
        """Greedy ids per row, all rows prefilled together and decoded together."""
        nxt = [int(x) for x in self.prefill(rows, chunk).argmax(-1)]
        out: list[list[int]] = [[t] for t in nxt]
        for _ in range(max_new_tokens - 1):
            nxt = [int(x) for x in self.decode(nxt).argmax(-1)]
            for r, t in enumerate(nxt):
                out[r].append(t)
        return out
