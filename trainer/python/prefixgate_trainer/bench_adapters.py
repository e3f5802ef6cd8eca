"""Random (untrained) PEFT prefix adapters for a model directory, for benchmarks only.

    python -m prefixgate_trainer.bench_adapters --model DIR --count 8 --out DIR

Each adapter is a stock PEFT `save_pretrained` folder with its own seed (so its own digest);
values do not matter for speed. Prefix lengths cycle through 8, 16 and 4 virtual tokens.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from peft import PrefixTuningConfig, TaskType, get_peft_model
from transformers import BloomForCausalLM

LENGTHS = (8, 16, 4)


def build(model_dir: Path, count: int, out: Path) -> list[Path]:
    dirs = []
    for i in range(count):
        target = out / f"a{i}"
        if (target / "adapter_model.safetensors").exists():
            dirs.append(target)
            continue
        torch.manual_seed(1000 + i)
        base = BloomForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        config = PrefixTuningConfig(
            task_type=TaskType.CAUSAL_LM,
            num_virtual_tokens=LENGTHS[i % len(LENGTHS)],
            prefix_projection=True,
        )
        get_peft_model(base, config).save_pretrained(str(target), safe_serialization=True)
        dirs.append(target)
    return dirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    for d in build(args.model, args.count, args.out):
        print(d)


if __name__ == "__main__":
    main()
