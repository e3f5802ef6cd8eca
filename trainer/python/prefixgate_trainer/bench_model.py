"""A 560m-shaped random BLOOM, its ONNX export and a matching PEFT adapter, for the benchmarks.

    python -m prefixgate_trainer.bench_model --out ../../bench/models/bloom-560m-random

The graph computes logits for the last position only (see export.py); `--all-logits` writes the
optimum layout instead, for comparisons. Random weights are fine for speed: decode cost depends on
shapes, not values. Never committed (about 4.5 GB); bench/models/ is git-ignored. The demo tokenizer
is reused: its ids are a subset of the 250880-row vocabulary, just as BLOOM's own tokenizer is
smaller than its padded embedding.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch
from peft import PrefixTuningConfig, TaskType, get_peft_model

from . import base_model, export

DEMO_MODEL = Path(__file__).resolve().parents[2] / "fixtures" / "tiny-bloom"


def build(
    out: Path,
    *,
    vocab: int = 250880,
    hidden: int = 1024,
    n_layer: int = 24,
    n_head: int = 16,
    num_virtual_tokens: int = 16,
    last_logits: bool = True,
) -> None:
    torch.manual_seed(0)
    model_dir = out / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    config = base_model.bloom_config(vocab, hidden, n_layer, n_head)
    config.initializer_range = 0.02
    model = base_model.new_model(config, seed=0).eval()
    model.config.name_or_path = f"prefixgate/bloom-random-{n_layer}x{hidden}"
    model.save_pretrained(str(model_dir), safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(DEMO_MODEL / name, model_dir / name)
    big = vocab * hidden * 4 > 1_000_000_000
    export.export_onnx(model, model_dir / "model.onnx", external_data=big, last_logits=last_logits)
    model.name_or_path = model.config.name_or_path
    peft = get_peft_model(
        model,
        PrefixTuningConfig(
            task_type=TaskType.CAUSAL_LM, num_virtual_tokens=num_virtual_tokens, prefix_projection=True
        ),
    )
    peft.save_pretrained(str(out / "adapter"), safe_serialization=True)
    print(f"benchmark model in {model_dir}, adapter in {out / 'adapter'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--all-logits",
        action="store_true",
        help="logits for every position, as optimum exports them (default: last position only)",
    )
    args = parser.parse_args()
    build(args.out, last_logits=not args.all_logits)


if __name__ == "__main__":
    main()
