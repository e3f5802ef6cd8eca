"""Replica scaling on one machine: aggregate streaming throughput with one gateway replica and with two
behind HAProxy (deploy/local/cluster), the same clients, adapters and model, measured in turn.

    trainer/python/.venv/bin/python bench/cluster_scale.py                  # 560m-shaped model
    trainer/python/.venv/bin/python bench/cluster_scale.py --model trainer/fixtures/tiny-bloom \\
        --adapters bench/models/adapters-tiny

It starts its own cluster (fresh database and topics; each replica runs ONNX Runtime with one
intra-op thread, as deploy/local/cluster configures it), creates one tenant with one adapter per
client, and runs --reps rounds of [one replica, two replicas]: in the one-replica round every client
talks to replica 1 directly, in the two-replica round every client goes through the balancer (round
robin). Each client streams one greedy chat of --new-tokens tokens (eos ignored) at the same moment.
Prints a table of medians and the 2/1 ratio; a raw JSON line goes to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "deploy" / "local" / "cluster"
BALANCER = "http://127.0.0.1:18080"
REPLICA_1 = "http://127.0.0.1:18081"
REPLICAS = (REPLICA_1, "http://127.0.0.1:18082")
ADMIN = {"Authorization": "Bearer pg-admin-cluster"}
PROMPT = "Tell me a short story about a lighthouse keeper who finds a message in a bottle on the beach."


def psql(sql: str) -> None:
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"), key=lambda p: int(p.parts[-3]))
    subprocess.run([str(bins[-1]), "-h", "127.0.0.1", "-p", os.environ.get("PGPORT", "5433"), "-U", "postgres",
                    "-At", "-c", sql, "postgres"], check=True, capture_output=True, timeout=60)


def stream(url: str, key: str, model: str, new_tokens: int, out: list[dict[str, float]]) -> None:
    body = {"model": model, "stream": True, "temperature": 0, "max_tokens": new_tokens, "ignore_eos": True,
            "stream_options": {"include_usage": True}, "messages": [{"role": "user", "content": PROMPT}]}
    t0 = time.monotonic()
    first = None
    tokens = 0
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=600,
                      headers={"Authorization": f"Bearer {key}"}) as r:
        if r.status_code != 200:
            raise RuntimeError(f"{url}: {r.status_code} {r.read()!r}")
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            elif first is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                first = time.monotonic()
    out.append({"start": t0, "ttft": (first or time.monotonic()) - t0, "end": time.monotonic(), "tokens": tokens})


def round_(url: str, key: str, models: list[str], new_tokens: int) -> dict[str, float]:
    results: list[dict[str, float]] = []
    threads = [threading.Thread(target=stream, args=(url, key, m, new_tokens, results)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if len(results) != len(models):
        raise RuntimeError(f"{len(models) - len(results)} streams failed")
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    return {"tok_s": sum(r["tokens"] for r in results) / wall,
            "ttft_p50_ms": statistics.median(r["ttft"] for r in results) * 1000, "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "bench" / "models" / "bloom-560m-random" / "model")
    ap.add_argument("--adapters", type=Path, default=ROOT / "bench" / "models" / "adapters-560m",
                    help="a folder of PEFT adapter folders (bench_adapters' output); one per client, reused in turn")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    adapters = sorted(d for d in args.adapters.iterdir() if (d / "adapter_model.safetensors").exists())
    if not adapters or not (args.model / "model.onnx").exists():
        raise SystemExit(f"need {args.model}/model.onnx and adapters under {args.adapters} (docs/benchmarks.md)")
    run = uuid.uuid4().hex[:8]
    state = ROOT / "bench" / "results" / f"cluster-{run}"
    state.mkdir(parents=True)
    env = {**os.environ, "PREFIXGATE_CLUSTER_DIR": str(state), "PREFIXGATE_CLUSTER_TOPICS": f"bench-{run}",
           "PREFIXGATE_CLUSTER_DB": f"prefixgate_bench_{run}", "PREFIXGATE_MODEL_DIR": str(args.model.resolve())}
    try:
        subprocess.run([str(CLUSTER), "start"], check=True, env=env, timeout=600)
        r = httpx.post(BALANCER + "/admin/tenants", headers=ADMIN, json={"id": "scale"}, timeout=60)
        r.raise_for_status()
        key = r.json()["apiKey"]
        models = []
        for i in range(args.streams):
            d = adapters[i % len(adapters)]
            name = f"a{i}"
            files = {"adapter_config": ("adapter_config.json", (d / "adapter_config.json").read_bytes()),
                     "adapter_model": ("adapter_model.safetensors", (d / "adapter_model.safetensors").read_bytes())}
            httpx.post(f"{BALANCER}/admin/tenants/scale/adapters/{name}", headers=ADMIN, files=files,
                       timeout=120).raise_for_status()
            models.append(name)
        for url in REPLICAS:  # warm both replicas: every adapter cached, the first session runs done
            round_(url, key, models, 2)
        rows: dict[int, list[dict[str, float]]] = {1: [], 2: []}
        for rep in range(args.reps):
            for n, url in ((1, REPLICA_1), (2, BALANCER)):
                rows[n].append(round_(url, key, models, args.new_tokens))
                print(f"rep {rep + 1}, {n} replica(s): {rows[n][-1]['tok_s']:.1f} tok/s", flush=True)
    finally:
        subprocess.run([str(CLUSTER), "stop"], env=env, timeout=120)
        psql(f'drop database if exists "prefixgate_bench_{run}" with (force)')
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in rows.items()}
    ratio = med[2]["tok_s"] / med[1]["tok_s"]
    print(f"\n## replica scaling: {args.model.parent.name}, {args.streams} streams, {args.new_tokens} new tokens, "
          f"{os.cpu_count()} CPUs, medians of {args.reps}")
    print("| replicas | aggregate tok/s | TTFT p50 ms | wall s |\n|---|---|---|---|")
    for n in (1, 2):
        print(f"| {n} | {med[n]['tok_s']:.1f} | {med[n]['ttft_p50_ms']:.0f} | {med[n]['wall_s']:.1f} |")
    print(f"\n2 / 1 replicas: {ratio:.2f}x")
    with open(ROOT / "bench" / "results" / f"cluster-scale-{run}.jsonl", "w") as f:
        f.write(json.dumps({"model": str(args.model), "streams": args.streams, "new_tokens": args.new_tokens,
                            "medians": med, "ratio": ratio, "rounds": rows}) + "\n")


if __name__ == "__main__":
    main()
