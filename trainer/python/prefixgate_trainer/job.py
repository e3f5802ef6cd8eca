"""One retraining job: PEFT prefix-tuning on a tenant's JSONL data set, against the served weights.

    python -m prefixgate_trainer.job --model-dir DIR --dataset FILE --out DIR --tenant T --adapter A
        [--request-id ID] [--num-virtual-tokens 8] [--epochs 1] [--max-steps 0] [--batch-size 1]
        [--grad-accum 8] [--lr 0.01] [--seed 0] [--threads 1] [--base-name NAME]
        [--activate gate|if-better|always|never] [--min-improvement 0.2] [--max-eval-loss 2.5]
        [--baseline-loss X --baseline-heldout SHA256]

Writes OUT/adapter (stock `save_pretrained` files), OUT/metrics.json and OUT/event.json (the adapter
event to publish). Prints one JSON object per line on stdout: {"type": "progress", "step", "total",
"loss"} during training, then {"type": "done", ...}. A bad data set exits with status 2 and
"dataset: line N: ..." on stderr. Seeded and single-threaded by default, so a job that is run again
(a worker died before committing) produces the same bytes, hence the same registry version.

Quality gate: a seeded tenth of the data set (at least 1, at most 64 records) is held out. The base
and the trained adapter are scored on it (mean answer-token loss) and the adapter answers up to three
held-out prompts greedily. With `--activate gate` (the default) the event activates the new version
only when its held-out loss is at most (1 - min_improvement) x the base's AND at most max_eval_loss
(nats per answer token). The ceiling is needed because a small base can be so sure of its own
answers that it scores any unfamiliar text terribly: on the demo model random answers cost the base
17.7 and an adapter trained on them 7.2, "better" by 59% and still useless. `if-better` also
requires the relative margin against `--baseline-loss`, the active version's loss on the same
held-out records (matched by `--baseline-heldout`, the sha256 the earlier job reported). Otherwise
the version is registered but not activated (`"activate": "never"`), and `gate.passed` is false with
the numbers in `gate.reason`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import cast

# PEFT's save_pretrained looks the base's name up on the Hub; a job must never touch the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

from .corpus import Record, prompt_of, read_jsonl  # noqa: E402
from .events import adapter_event  # noqa: E402
from .loading import CausalLM, load_base  # noqa: E402
from .train import TrainParams, mean_loss, save_adapter, train_prefix  # noqa: E402

MAX_HELD_OUT = 64
SAMPLES = 3
SAMPLE_TOKENS = 48
DEFAULT_MIN_IMPROVEMENT = 0.2
DEFAULT_MAX_EVAL_LOSS = 2.5


def split(records: list[Record], seed: int) -> tuple[list[Record], list[Record]]:
    """(train, held_out): a seeded tenth held out, so sorted data sets still test every kind."""
    if len(records) < 2:
        return records, records
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n = min(MAX_HELD_OUT, max(1, len(records) // 10))
    held = set(order[:n])
    return ([r for i, r in enumerate(records) if i not in held],
            [r for i, r in enumerate(records) if i in held])


def held_out_digest(held_out: list[Record]) -> str:
    return hashlib.sha256("".join(r.to_json() + "\n" for r in held_out).encode()).hexdigest()


def answers(model: CausalLM, tok: PreTrainedTokenizerFast, held_out: list[Record]) -> list[dict[str, str]]:
    """Greedy answers (eos stops) to the first held-out prompts, next to the expected ones."""
    out = []
    for r in held_out[:SAMPLES]:
        ids = tok(prompt_of(r.instruction, r.input), add_special_tokens=False)["input_ids"]
        x = torch.tensor([ids])
        with torch.no_grad():
            # transformers types generate's self as a Protocol (written for `ty`) that mypy finds
            # PreTrainedModel does not satisfy: it wants device, dtype and hf_device_map settable.
            gen = model.generate(  # type: ignore[misc]
                input_ids=x, attention_mask=torch.ones_like(x), do_sample=False,
                max_new_tokens=SAMPLE_TOKENS, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        new = [i for i in gen[0, len(ids):].tolist() if i != tok.eos_token_id]
        out.append({"prompt": prompt_of(r.instruction, r.input), "expected": r.output,
                    "answer": cast(str, tok.decode(new)).strip()})  # one sequence: one str
    return out


def gate(policy: str, eval_base: float, eval_adapter: float, min_improvement: float,
         baseline_loss: float | None, baseline_comparable: bool,
         max_eval_loss: float = DEFAULT_MAX_EVAL_LOSS) -> dict[str, object]:
    """Whether the new version may go live, and why, with the numbers."""
    if policy in ("always", "never"):
        return {"policy": policy, "passed": policy == "always",
                "reason": f"activation policy '{policy}'"}
    limit = min(eval_base * (1 - min_improvement), max_eval_loss)
    facts = (f"held-out loss {eval_adapter:.4f} vs base {eval_base:.4f} (must be <= {limit:.4f}:"
             f" {min_improvement:.0%} better than the base and at most {max_eval_loss:g})")
    if eval_adapter > eval_base * (1 - min_improvement):
        return {"policy": policy, "passed": False, "reason": "not better than the base: " + facts}
    if eval_adapter > max_eval_loss:
        return {"policy": policy, "passed": False,
                "reason": "learned too little to serve: " + facts}
    if policy == "if-better" and baseline_loss is not None:
        if not baseline_comparable:
            return {"policy": policy, "passed": True,
                    "reason": facts + "; the active version was scored on other held-out records,"
                    " so it was not compared"}
        bound = baseline_loss * (1 - min_improvement)
        if eval_adapter > bound:
            return {"policy": policy, "passed": False,
                    "reason": f"not better than the active version: held-out loss "
                    f"{eval_adapter:.4f} vs {baseline_loss:.4f} (must be <= {bound:.4f})"}
        facts += f"; active version {baseline_loss:.4f}"
    return {"policy": policy, "passed": True, "reason": facts}


def base_name(model_dir: Path) -> str:
    """What names the base in adapter_config.json: its folder's name, never a local path."""
    return model_dir.resolve().name


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
    p.add_argument("--base-name", help="recorded as base_model_name_or_path (default: folder name)")
    p.add_argument("--activate", choices=["gate", "if-better", "always", "never"], default="gate")
    p.add_argument("--min-improvement", type=float, default=DEFAULT_MIN_IMPROVEMENT)
    p.add_argument("--max-eval-loss", type=float, default=DEFAULT_MAX_EVAL_LOSS)
    p.add_argument("--baseline-loss", type=float)
    p.add_argument("--baseline-heldout")
    a = p.parse_args(argv)
    if not 0 <= a.min_improvement < 1:
        print(f"hyper-parameters: min_improvement {a.min_improvement} not in [0, 1)", file=sys.stderr)
        return 2
    if not a.max_eval_loss > 0:
        print(f"hyper-parameters: max_eval_loss {a.max_eval_loss} must be > 0", file=sys.stderr)
        return 2
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
    train, held_out = split(records, a.seed)
    base, tok = load_base(a.model_dir)
    # PEFT copies these into adapter_config.json; a local path there would leak the host's layout.
    base.name_or_path = base.config.name_or_path = a.base_name or base_name(a.model_dir)
    eval_base = round(mean_loss(base, tok, held_out), 5)
    losses: list[float] = []

    def progress(step: int, total: int, loss: float) -> None:
        losses.append(loss)
        print(json.dumps({"type": "progress", "step": step, "total": total, "loss": round(loss, 5)}), flush=True)

    model = train_prefix(base, tok, train, params, progress)
    adapter_dir = a.out / "adapter"
    save_adapter(model, adapter_dir)
    eval_adapter = round(mean_loss(model, tok, held_out), 5)
    digest = held_out_digest(held_out)
    verdict = gate(a.activate, eval_base, eval_adapter, a.min_improvement, a.baseline_loss,
                   a.baseline_heldout == digest, a.max_eval_loss)
    metrics = {
        "train_loss": round(losses[-1], 5),
        "eval_loss_base": eval_base,
        "eval_loss_adapter": eval_adapter,
        "held_out_records": len(held_out),
        "held_out_sha256": digest,
        "samples": answers(model, tok, held_out),
        "gate": verdict,
        "steps": len(losses),
        "records": len(records),
        "seconds": round(time.time() - started, 1),
    }
    (a.out / "metrics.json").write_text(json.dumps(metrics, indent=1, ensure_ascii=False) + "\n")
    event = adapter_event(
        a.tenant, a.adapter, adapter_dir, a.model_dir, request_id=a.request_id, metrics=metrics,
        source="retrain", activate="always" if verdict["passed"] else "never",
    )
    (a.out / "event.json").write_text(json.dumps(event))
    print(json.dumps({"type": "done", "sha256": event["sha256"], **metrics}, ensure_ascii=False),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
