"""Peak resident memory of one ONNX Runtime session of a model directory after one decode step.

    trainer/python/.venv/bin/python bench/model_rss.py MODEL_DIR [MODEL_DIR ...]   (one process each)
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np


def one(d: Path) -> int:
    import onnxruntime as ort

    cfg = json.loads((d / "config.json").read_text())
    s = ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"])
    n_layer, n_head, head_dim = cfg["n_layer"], cfg["n_head"], cfg["hidden_size"] // cfg["n_head"]
    feeds = {"input_ids": np.full((1, 1), 5, np.int64), "attention_mask": np.ones((1, 5), np.int64)}
    for i in range(n_layer):
        for kind in ("key", "value"):
            feeds[f"past_key_values.{i}.{kind}"] = np.zeros((1, n_head, 4, head_dim), np.float32)
    s.run(None, feeds)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


if __name__ == "__main__":
    if sys.argv[1] == "--one":
        print(one(Path(sys.argv[2])))
    else:
        for arg in sys.argv[1:]:
            out = subprocess.run([sys.executable, __file__, "--one", arg], check=True, capture_output=True, text=True)
            print(f"{arg}: peak RSS {out.stdout.strip()} MB")
