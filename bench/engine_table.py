"""Prints the engine benchmark table (medians, ratios measured in the same run) from JSON lines."""

from __future__ import annotations

import json
import platform
import sys
from collections import defaultdict


def main(path: str) -> None:
    rows = [json.loads(line) for line in open(path) if line.strip()]
    by = defaultdict(dict)
    for r in rows:
        by[(r["model"], r["concurrency"])][r["subject"]] = r
    print(f"# engine benchmark ({path}; {platform.node()}, {platform.processor() or platform.machine()})")
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
