"""How closely quantized graphs follow float32 PEFT, with the tenants' prefix adapters on top.

    python -m prefixgate_trainer.fidelity [--model ../fixtures/tiny-bloom] [--block-size 128]

Quantizes the (float32) model directory to int8 and int4 in a temporary folder, then, for fp32 (the
ONNX graph as exported), int8 and int4, prints:
- greedy agreement with float32 PEFT `generate` over the golden prompts (golden.json, 32 new tokens,
  eos ignored): tokens identical until the first divergence, the fraction of positions identical,
  how many cases are identical in full, and how many answers (the ids up to and including the first
  eos, what a client of a server that stops at eos gets) are identical;
- each adapter's mean answer-token loss on its held-out records (the ones the fixture build scored,
  `corpus.tenant_dataset(style, seed=900 + i, n=16)`), computed through the graph with the prefix
  fed as past_key_values, next to the base model's loss on the same records (the adapter still
  steers when its loss stays far below the base's), and the same for a prefix adapter trained
  now on the float32 base (`fresh`; `--no-fresh` skips it).
The graph must return logits at every position (the committed tiny model does) for the loss.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from transformers import PreTrainedTokenizerFast

from . import corpus, fixtures
from .ort_loop import OrtBloom
from .prefix import PrefixKv, load_prefix
from .quantize import describe, quantize_dir, weight_bytes
from .train import encode_record

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@dataclass(frozen=True)
class Agreement:
    tokens: int  # golden tokens compared
    until_divergence: int  # tokens identical before each case's first divergence, summed
    positionwise: int  # positions with the identical token, summed
    cases: int
    cases_identical: int
    answers_identical: int  # cases whose answer up to and including the first eos is identical

    @property
    def until_divergence_fraction(self) -> float:
        return self.until_divergence / self.tokens

    @property
    def positionwise_fraction(self) -> float:
        return self.positionwise / self.tokens


def greedy_agreement(model: OrtBloom, golden: dict[str, Any], adapters: Path) -> Agreement:
    """Golden new_ids run on past eos; a server stops there, so the answer a client sees is the ids
    up to and including the first eos, which `answers_identical` compares."""
    prefixes: dict[str, PrefixKv] = {}
    eos = golden["eos_token_id"]
    tokens = until = same = identical = answers = 0
    for case in golden["cases"]:
        name = case["adapter"]
        prefix = None
        if name is not None:
            prefix = prefixes.setdefault(name, load_prefix(adapters / name))
        want: list[int] = case["new_ids"]
        got = model.greedy([(prefix, case["prompt_ids"])], len(want))[0]
        first = next((i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b), len(want))
        tokens += len(want)
        until += first
        same += sum(a == b for a, b in zip(got, want, strict=True))
        identical += first == len(want)
        answer = want.index(eos) + 1 if eos in want else len(want)
        answers += first >= answer
    return Agreement(tokens, until, same, len(golden["cases"]), identical, answers)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(-1, keepdims=True)
    shifted = x - m
    out: np.ndarray = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    return out


def mean_loss(model: OrtBloom, prefix: PrefixKv | None, records: list[tuple[list[int], list[int]]]) -> float:
    """Mean answer-token cross-entropy per record (the definition of train.mean_loss: labels -100 on
    the prompt, logits at t predict the label at t + 1), through the ONNX graph."""
    losses = []
    for ids, labels in records:
        logits, _, _ = model.prefill([(prefix, ids)])
        if logits.shape[1] != len(ids):
            raise ValueError("the graph returns logits for the last position only; the loss needs all of them")
        logp = _log_softmax(logits[0, :-1].astype(np.float64))
        target = np.array(labels[1:])
        keep = target != -100
        losses.append(float(-logp[np.arange(len(target))[keep], target[keep]].mean()))
    return sum(losses) / len(losses)


def held_out(tok: PreTrainedTokenizerFast) -> dict[str, list[tuple[list[int], list[int]]]]:
    """Each fixture tenant's held-out records, encoded as for training."""
    out = {}
    for i, (tenant, (style, _)) in enumerate(sorted(fixtures.TENANTS.items())):
        records = corpus.tenant_dataset(style, seed=900 + i, n=16)
        out[tenant] = [encode_record(tok, r) for r in records]
    return out


FRESH = "fresh"


def train_fresh(model_dir: Path, out: Path) -> tuple[Path, list[tuple[list[int], list[int]]]]:
    """A prefix adapter trained now on the float32 base (stock PEFT, 60 steps, ~3 s on the tiny
    model) and its own held-out records: not one of the committed adapters, whose numbers might be
    a lucky draw."""
    import torch

    from .loading import load_base
    from .train import TrainParams, save_adapter, train_prefix

    torch.manual_seed(0)
    base, tok = load_base(model_dir)
    records = corpus.tenant_dataset("formal", seed=7, n=64)
    trained = train_prefix(base, tok, records, TrainParams(num_virtual_tokens=6, max_steps=60, batch_size=8,
                                                           grad_accum=1, lr=1e-2, seed=5))
    save_adapter(trained, out)
    return out, [encode_record(tok, r) for r in corpus.tenant_dataset("formal", seed=8, n=16)]


def evaluate(model_dir: Path, golden: dict[str, Any], adapters: Path,
             data: dict[str, list[tuple[list[int], list[int]]]],
             extra: dict[str, Path] | None = None) -> dict[str, Any]:
    """`data` maps a tenant to its held-out records; its adapter is `adapters / tenant`, or
    `extra[tenant]` for one that is not a fixture."""
    model = OrtBloom(model_dir, threads=1)
    agreement = greedy_agreement(model, golden, adapters)
    losses = {}
    for tenant, records in data.items():
        adapter = (extra or {}).get(tenant, adapters / tenant)
        losses[tenant] = {
            "adapter": mean_loss(model, load_prefix(adapter), records),
            "base": mean_loss(model, None, records),
        }
    return {"agreement": agreement, "loss": losses, "weights": describe(model_dir), **weight_bytes(model_dir)}


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| weights | decode weight bytes | golden tokens identical until first divergence | positions identical "
        "| cases identical in full | answers identical (up to the first eos) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        a: Agreement = r["agreement"]
        lines.append(
            f"| {name} | {r['decode_weight_bytes'] / 1e6:.2f} MB | {a.until_divergence}/{a.tokens} "
            f"({a.until_divergence_fraction:.1%}) | {a.positionwise}/{a.tokens} ({a.positionwise_fraction:.1%}) "
            f"| {a.cases_identical}/{a.cases} | {a.answers_identical}/{a.cases} |"
        )
    lines += ["", "| adapter | " + " | ".join(f"{n} loss (base)" for n in results) + " | "
              + " | ".join(f"{n} / fp32" for n in results if n != "fp32") + " |",
              "|---|" + "---|" * (2 * len(results) - 1)]
    fp32 = results.get("fp32")
    for tenant in next(iter(results.values()))["loss"]:
        cells = [f"{r['loss'][tenant]['adapter']:.4f} ({r['loss'][tenant]['base']:.4f})" for r in results.values()]
        ratios = []
        if fp32 is not None:
            ref = fp32["loss"][tenant]["adapter"]
            ratios = [f"{r['loss'][tenant]['adapter'] / ref:.3f}" for n, r in results.items() if n != "fp32"]
        lines.append(f"| {tenant} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines)


def run(model_dir: Path, block_size: int, variants: list[str], work: Path,
        fresh: bool = True) -> dict[str, dict[str, Any]]:
    golden = json.loads((FIXTURES / "golden.json").read_text())
    tok = PreTrainedTokenizerFast.from_pretrained(str(model_dir))
    data = held_out(tok)
    extra = {}
    if fresh:
        extra[FRESH], data[FRESH] = train_fresh(model_dir, work / "fresh-adapter")
    results = {}
    for v in variants:
        d = model_dir
        if v != "fp32":
            d = work / v
            quantize_dir(model_dir, d, bits=int(v.removeprefix("int")), block_size=block_size)
        results[v] = evaluate(d, golden, FIXTURES / "adapters", data, extra)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=FIXTURES / "tiny-bloom")
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--variants", default="fp32,int8,int4")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--no-fresh", action="store_true", help="skip the adapter trained now")
    args = parser.parse_args()
    import logging

    import torch

    torch.set_num_threads(1)  # as the tests do: the fresh adapter's numbers then match theirs, and it is faster here
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as work:
        results = run(args.model, args.block_size, args.variants.split(","), Path(work), not args.no_fresh)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(
            {n: {**r, "agreement": r["agreement"].__dict__} for n, r in results.items()}, indent=1))


if __name__ == "__main__":
    main()
