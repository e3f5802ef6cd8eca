"""One retraining job: PEFT prefix-tuning on a tenant's JSONL data set, against the served weights.

    python -m prefixgate_trainer.job --model-dir DIR --dataset FILE --out DIR --tenant T --adapter A
        [--request-id ID] [--num-virtual-tokens 8] [--epochs 1] [--max-steps 0] [--batch-size 1]
        [--grad-accum 8] [--lr 0.01] [--seed 0] [--threads 1]

Writes OUT/adapter (stock `save_pretrained` files), OUT/metrics.json and OUT/event.json (the adapter
event to publish). Prints one JSON object per line on stdout: {"type": "progress", "step", "total",
"loss"} during training, then {"type": "done", ...}. A bad data set exits with status 2 and
"dataset: line N: ..." on stderr. Seeded and single-threaded by default, so a job that is run again
(a worker died before committing) produces the same bytes, hence the same registry version.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from .corpus import read_jsonl
from .events import adapter_event
from .golden import load_base
from .train import TrainParams, mean_loss, save_adapter, train_prefix


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--dataset", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tenant", required=True)
    p.add_argument("--adapter", required=True)
    p.add_argument("--request-id")
    p.add_argument("--num-virtual-tokens", type=int, default=8)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--grad-accum", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    try:
        records = read_jsonl(a.dataset)
    except (ValueError, UnicodeDecodeError) as e:
        print(f"dataset: {e}", file=sys.stderr)
        return 2
    try:
        params = TrainParams(
            num_virtual_tokens=a.num_virtual_tokens, epochs=a.epochs, max_steps=a.max_steps,
            batch_size=a.batch_size, grad_accum=a.grad_accum, lr=a.lr, seed=a.seed,
        )
    except ValueError as e:
        print(f"hyper-parameters: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    started = time.time()
    held_out = records[-max(1, len(records) // 10):] if len(records) > 1 else records
    train = records[: len(records) - len(held_out)] or records
    base, tok = load_base(a.model_dir)
    eval_base = mean_loss(base, tok, held_out)
    losses: list[float] = []

    def progress(step: int, total: int, loss: float) -> None:
        losses.append(loss)
        print(json.dumps({"type": "progress", "step": step, "total": total, "loss": round(loss, 5)}), flush=True)

    model = train_prefix(base, tok, train, params, progress)
    adapter_dir = a.out / "adapter"
    save_adapter(model, adapter_dir)
    metrics = {
        "train_loss": round(losses[-1], 5),
        "eval_loss_base": round(eval_base, 5),
        "eval_loss_adapter": round(mean_loss(model, tok, held_out), 5),
        "steps": len(losses),
        "records": len(records),
        "seconds": round(time.time() - started, 1),
    }
    (a.out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    event = adapter_event(
        a.tenant, a.adapter, adapter_dir, a.model_dir, request_id=a.request_id, metrics=metrics, source="retrain",
    )
    (a.out / "event.json").write_text(json.dumps(event))
    print(json.dumps({"type": "done", "sha256": event["sha256"], **metrics}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
