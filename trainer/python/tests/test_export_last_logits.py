"""Last-position logits graphs compute the same numbers as all-positions graphs.

The reference is an all-positions export of the committed demo model's weights. Checked against it,
on a batch with different prefix lengths and left padding (the engine's prefill layout) and then one
decode step: `export.keep_last_logits` (a graph rewrite, no PyTorch), `export_onnx(last_logits=True)`,
the committed graph itself (whichever layout it has), and `export.all_logits` (the way back).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import cast

import numpy as np
import onnxruntime as ort
import pytest
import torch
from transformers import BloomForCausalLM

from prefixgate_trainer import export

MODEL_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "tiny-bloom"
CFG = json.loads((MODEL_DIR / "config.json").read_text())


def _session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All-positions export of the committed weights."""
    out = tmp_path_factory.mktemp("all") / "model.onnx"
    model = BloomForCausalLM.from_pretrained(str(MODEL_DIR), dtype=torch.float32).eval()
    export.export_onnx(model, out, last_logits=False)
    return out


def _prefill_feeds() -> tuple[dict[str, np.ndarray], int]:
    """Three rows: prefixes of 4, 0 and 2 columns right-aligned in past, prompts of 7, 3 and 5
    tokens right-aligned in input_ids, mask 0 on all padding (the engine's prefill layout)."""
    rng = np.random.default_rng(3)
    n_layer, n_head = CFG["n_layer"], CFG["n_head"]
    d = CFG["hidden_size"] // n_head
    prefixes, prompts = [4, 0, 2], [7, 3, 5]
    b, pmax, smax = 3, max(prefixes), max(prompts)
    ids = np.full((b, smax), CFG.get("pad_token_id", 3), np.int64)
    mask = np.zeros((b, pmax + smax), np.int64)
    feeds: dict[str, np.ndarray] = {}
    for i in range(n_layer):
        for kind in ("key", "value"):
            feeds[f"past_key_values.{i}.{kind}"] = np.zeros((b, n_head, pmax, d), np.float32)
    for r, (p, s) in enumerate(zip(prefixes, prompts, strict=True)):
        ids[r, smax - s :] = rng.integers(4, CFG["vocab_size"], s)
        mask[r, pmax - p : pmax] = 1
        mask[r, pmax + smax - s :] = 1
        for name in list(feeds):
            feeds[name][r, :, pmax - p :] = rng.standard_normal((n_head, p, d)).astype(np.float32) * 0.5
    feeds["input_ids"] = ids
    feeds["attention_mask"] = mask
    return feeds, b


def _run(session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    # Every output of these graphs is a dense tensor (ORT's signature also allows sparse ones).
    return cast(list[np.ndarray], session.run(None, feeds))


def _compare(all_positions: ort.InferenceSession, other: ort.InferenceSession, atol: float) -> None:
    """Prefill then one decode step: the last position's logits and every present tensor agree;
    where `other` also writes every position, all of them agree."""
    feeds, b = _prefill_feeds()
    names = [o.name for o in all_positions.get_outputs()]
    for _ in range(2):
        full = _run(all_positions, feeds)
        got = _run(other, feeds)
        assert got[0].shape[1] in (1, full[0].shape[1])
        np.testing.assert_allclose(got[0][:, -1], full[0][:, -1], rtol=0, atol=atol)
        assert (got[0][:, -1].argmax(-1) == full[0][:, -1].argmax(-1)).all()
        if got[0].shape[1] == full[0].shape[1]:
            np.testing.assert_allclose(got[0], full[0], rtol=0, atol=atol)
        for a, c in zip(full[1:], got[1:], strict=True):
            np.testing.assert_allclose(c, a, rtol=0, atol=atol)
        nxt = full[0][:, -1].argmax(-1)[:, None].astype(np.int64)
        mask = np.concatenate([feeds["attention_mask"], np.ones((b, 1), np.int64)], 1)
        feeds = {n.replace("present", "past_key_values"): v for n, v in zip(names[1:], full[1:], strict=True)}
        feeds["input_ids"] = nxt
        feeds["attention_mask"] = mask


def test_rewrite_keeps_the_last_position(reference: Path, tmp_path: Path) -> None:
    export.keep_last_logits(reference, tmp_path / "model.onnx")
    last = _session(tmp_path / "model.onnx")
    assert last.get_outputs()[0].shape[1] == 1
    # The same MatMul over one row of the same LayerNorm output: equal up to GEMM blocking.
    _compare(_session(reference), last, atol=1e-5)
    with pytest.raises(ValueError, match="already"):
        export.keep_last_logits(tmp_path / "model.onnx", tmp_path / "again.onnx")


def test_exporter_writes_last_position_graphs(reference: Path, tmp_path: Path) -> None:
    model = BloomForCausalLM.from_pretrained(str(MODEL_DIR), dtype=torch.float32).eval()
    export.export_onnx(model, tmp_path / "model.onnx", last_logits=True)
    last = _session(tmp_path / "model.onnx")
    assert last.get_outputs()[0].shape[1] == 1
    _compare(_session(reference), last, atol=1e-5)
    export.all_logits(tmp_path / "model.onnx", tmp_path / "back.onnx")
    back = _session(tmp_path / "back.onnx")
    assert not isinstance(back.get_outputs()[0].shape[1], int)
    _compare(_session(reference), back, atol=1e-5)


def test_the_committed_graph_agrees_with_the_reference(reference: Path) -> None:
    _compare(_session(reference), _session(MODEL_DIR / "model.onnx"), atol=1e-5)


def test_command_writes_a_model_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    committed = _session(MODEL_DIR / "model.onnx").get_outputs()[0].shape[1]
    flag = "--all-logits" if committed == 1 else "--keep-last-logits"
    monkeypatch.setattr(sys, "argv", ["export", flag, str(MODEL_DIR), str(tmp_path / "out")])
    export.main()
    for name in ("config.json", "tokenizer.json", "model.onnx"):
        assert (tmp_path / "out" / name).is_file()
    written = _session(tmp_path / "out" / "model.onnx").get_outputs()[0].shape[1]
    assert (written == 1) != (committed == 1)
