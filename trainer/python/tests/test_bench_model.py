"""The benchmark-model command, run at a toy size (the real 560m shape takes minutes and 5 GB)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prefixgate_trainer import bench_model
from prefixgate_trainer.ort_loop import OrtBloom
from prefixgate_trainer.prefix import load_prefix


def test_bench_model_exports_a_servable_model_and_adapter(tmp_path: Path) -> None:
    bench_model.build(tmp_path, vocab=5000, hidden=64, n_layer=2, n_head=4, num_virtual_tokens=5)
    model = OrtBloom(tmp_path / "model", threads=1)
    prefix = load_prefix(tmp_path / "adapter")
    assert prefix.length == 5 and prefix.keys[0].shape == (4, 5, 16)
    out = model.greedy([(prefix, [10, 11, 12]), (None, [13, 14])], 4)
    assert all(len(ids) == 4 for ids in out)
    assert np.isfinite(prefix.keys[1]).all()
