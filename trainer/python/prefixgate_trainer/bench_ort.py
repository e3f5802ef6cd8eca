"""The "plain Python ONNX Runtime loop" benchmark subject: static batches of distinct adapters.

    python -m prefixgate_trainer.bench_ort --model DIR --adapters A B ... --concurrency 1,2,4,8

Prints one JSON object per concurrency level: median TTFT (prefill of the whole batch), median
per-stream decode rate and aggregate rate over `--reps` repetitions. Same graph, same prefixes and
the same session settings (spinning off) as the Java engine, so the two can be compared as a ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .corpus import prompt_of
from .ort_loop import OrtBloom
from .prefix import PrefixKv, load_prefix


def measure(model: OrtBloom, rows: Sequence[tuple[PrefixKv | None, list[int]]], new_tokens: int) -> tuple[float, float]:
    """Returns (ttft seconds, decode seconds for new_tokens - 1 steps) for one batch."""
    ttft, decode, _ = measure_cpu(model, rows, new_tokens)
    return ttft, decode


def measure_cpu(
    model: OrtBloom, rows: Sequence[tuple[PrefixKv | None, list[int]]], new_tokens: int
) -> tuple[float, float, float]:
    """measure(), plus the process's CPU seconds (all threads) over the decode steps: on a machine
    that others share, CPU time per step moves less than wall time when the cores are contended."""
    t0 = time.perf_counter()
    logits, present, mask = model.prefill(rows)
    nxt = logits[:, -1, :].argmax(-1)
    t1 = time.perf_counter()
    c1 = time.process_time()
    for _ in range(new_tokens - 1):
        mask = np.concatenate([mask, np.ones((len(rows), 1), np.int64)], axis=1)
        logits, present = model._run(nxt[:, None].astype(np.int64), mask, present)
        nxt = logits[:, -1, :].argmax(-1)
    return t1 - t0, time.perf_counter() - t1, time.process_time() - c1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--adapters", type=Path, nargs="+", required=True)
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    args = parser.parse_args()

    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(args.model / "tokenizer.json"))
    prompt = tok.encode(prompt_of("Greet the person.", "Nia")).ids
    prefixes = [load_prefix(a) for a in args.adapters]
    model = OrtBloom(args.model, threads=args.threads)
    levels = [int(x) for x in args.concurrency.split(",")]

    def batch(c: int) -> list[tuple[PrefixKv | None, list[int]]]:
        return [(prefixes[i % len(prefixes)], prompt) for i in range(c)]

    # Warm-up, not measured, as EngineBench does it: the levels in turn until --warmup-seconds
    # have passed, at least one run (ONNX Runtime's arena grows on the first runs).
    warm_end = time.perf_counter() + args.warmup_seconds
    warm = 0
    while True:
        measure(model, batch(levels[warm % len(levels)]), args.new_tokens)
        warm += 1
        if time.perf_counter() >= warm_end:
            break
    for c in levels:
        rows = batch(c)
        ttfts, decodes, cpus = [], [], []
        for _ in range(args.reps):
            ttft, decode, cpu = measure_cpu(model, rows, args.new_tokens)
            ttfts.append(ttft)
            decodes.append(decode)
            cpus.append(cpu)
        ttft = statistics.median(ttfts)
        decode = statistics.median(decodes)
        per_stream = (args.new_tokens - 1) / decode
        total = ttft + decode
        print(
            json.dumps(
                {
                    "subject": "python-ort",
                    "concurrency": c,
                    "ttft_ms": round(ttft * 1000, 2),
                    "decode_tok_s": round(per_stream, 2),
                    "aggregate_tok_s": round(c * args.new_tokens / total, 2),
                    "decode_cpu_ms_per_step": round(statistics.median(cpus) * 1000 / (args.new_tokens - 1), 2),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
