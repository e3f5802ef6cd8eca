"""What a cached prefix adapter adds to time-to-first-token over HTTP, against the base model.

    trainer/python/.venv/bin/python bench/adapter_ttft.py [--n 50] [--model-dir DIR]

Starts the packaged gateway (target/quarkus-app), uploads one adapter, warms both paths, then
alternates base and adapter requests (streamed, one token, greedy, the same prompt) so that machine
noise hits both alike, and prints the median TTFT of each and the difference. The serving path
reads the tenant, the key and the active version from memory (ServingDirectory) and the prefix KV
from the prefix cache, so the difference is the engine's work on the prefix rows alone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import httpx
from suite import ROOT, Gateway


async def ttft(client: httpx.AsyncClient, url: str, key: str, model: str, prompt: str) -> float:
    start = time.perf_counter()
    async with client.stream(
        "POST", url + "/v1/completions", headers={"Authorization": f"Bearer {key}"},
        json={"model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0, "stream": True,
              "ignore_eos": True},
    ) as r:
        if r.status_code != 200:
            raise RuntimeError(f"{model}: HTTP {r.status_code}: {await r.aread()!r}")
        async for line in r.aiter_lines():
            if line.startswith("data: {"):
                return time.perf_counter() - start
    raise RuntimeError(f"{model}: no token")


async def measure(g: Gateway, n: int, prompt: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"base": [], "adapter": []}
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(10):  # warm-up: JIT, the ORT session, the prefix cache
            for model in out:
                await ttft(client, g.url, g.key, "base" if model == "base" else "pirate", prompt)
        for _ in range(n):
            for model in out:
                out[model].append(await ttft(client, g.url, g.key, "base" if model == "base" else "pirate", prompt))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50, help="measured requests per model (alternating)")
    ap.add_argument("--model-dir", type=Path, default=ROOT / "trainer" / "fixtures" / "tiny-bloom")
    ap.add_argument("--adapter", type=Path, default=ROOT / "trainer" / "fixtures" / "adapters" / "acme")
    args = ap.parse_args()
    g = Gateway(args.model_dir, cache_bytes=256 * 1024 * 1024)
    try:
        g.upload([("pirate", args.adapter)])
        prompt = "Ada paints a"
        times = asyncio.run(measure(g, args.n, prompt))
    finally:
        g.stop()
    base = statistics.median(times["base"]) * 1000
    adapter = statistics.median(times["adapter"]) * 1000
    print(f"model dir: {args.model_dir}  adapter: {args.adapter.name}  n={args.n} each, alternating")
    print("| path | median TTFT (ms) | p90 (ms) |")
    print("|---|---|---|")
    for name, ts in times.items():
        q = statistics.quantiles([t * 1000 for t in ts], n=10)
        print(f"| {name} | {statistics.median(ts) * 1000:.3f} | {q[-1]:.3f} |")
    print(f"| adapter - base | {adapter - base:+.3f} | |")


if __name__ == "__main__":
    main()
