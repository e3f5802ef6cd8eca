"""Prints the engine benchmark table (medians, ratios measured in the same run) from JSON lines.

A subject measured in several rounds (bench/engine-bench --rounds N) has several lines per model and
concurrency: every figure is the median over them, and the ratio is taken between those medians."""

from __future__ import annotations

import json
import platform
import statistics
import sys
from collections import defaultdict
from typing import Any

FIGURES = ("ttft_ms", "decode_tok_s", "aggregate_tok_s")


def _median(lines: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: statistics.median(line[k] for line in lines) for k in FIGURES} | {"rounds": len(lines)}


def main(path: str) -> None:
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    lines: dict[tuple[str, int], dict[str, list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in rows:
        lines[(r["model"], r["concurrency"])][r["subject"]].append(r)
    by = {key: {subject: _median(ls) for subject, ls in subjects.items()} for key, subjects in lines.items()}
    rounds = max((s["rounds"] for subjects in by.values() for s in subjects.values()), default=0)
    machine = platform.processor() or platform.machine()
    print(f"# engine benchmark ({path}; {platform.node()}, {machine}; medians over {rounds} round(s))")
    print("| model | conc | engine TTFT ms | engine tok/s/stream | engine tok/s total | python TTFT ms "
          "| python tok/s/stream | python tok/s total | engine/python per stream | engine total / engine single |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    single = {m: s["engine"]["aggregate_tok_s"] for (m, c), s in by.items() if c == 1 and "engine" in s}
    for (model, c), s in sorted(by.items()):
        e, p = s.get("engine"), s.get("python-ort")
        if not e or not p:
            continue
        print(
            f"| {model} | {c} | {e['ttft_ms']:.1f} | {e['decode_tok_s']:.1f} | {e['aggregate_tok_s']:.1f} "
            f"| {p['ttft_ms']:.1f} | {p['decode_tok_s']:.1f} | {p['aggregate_tok_s']:.1f} "
            f"| {e['decode_tok_s'] / p['decode_tok_s']:.2f} | {e['aggregate_tok_s'] / single[model]:.2f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1])
