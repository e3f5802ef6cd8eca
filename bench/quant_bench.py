"""Decode speed of float32 vs weight-only int8 / int4 graphs of one model, in one run.

    bench/quant-bench [--models fp32=DIR,int8=DIR,int4=DIR] [--concurrency 1,8] [--new-tokens 32]
                      [--reps 2] [--rounds 2] [--java]

For each variant, one after the other (one model process at a time), the plain Python ONNX Runtime
loop (prefixgate_trainer.bench_ort) and, with --java, Prefixgate's engine in-process (EngineBench)
decode greedily with distinct random PEFT prefix adapters (8, 16 and 4 virtual tokens). Prints
per-stream decode tok/s at concurrency 1, aggregate tok/s at the higher levels, the process's CPU
milliseconds per decode step (all threads; less sensitive than wall time to other work on the
same cores), the bytes of weights a decode step reads
(every MatMul / MatMulNBits weight with its scales and zero points; the embedding row is not
counted), and the bandwidth ceiling (machine copy bandwidth / those bytes). Raw JSON lines go to
bench/results/quant-*.jsonl. Default models: the 560m-shaped benchmark model and its quantized
copies, written with

    python -m prefixgate_trainer.quantize --model bench/models/bloom-560m-random/model --bits 8 \\
        --block-size 128 --out bench/models/bloom-560m-int8/model      (and --bits 4 ... int4)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PY = ROOT / "trainer" / "python" / ".venv" / "bin" / "python"
sys.path.insert(0, str(ROOT / "trainer" / "python"))

from prefixgate_trainer.quantize import describe, weight_bytes  # noqa: E402

DEFAULT_MODELS = (
    "fp32=bench/models/bloom-560m-random/model,"
    "int8=bench/models/bloom-560m-int8/model,"
    "int4=bench/models/bloom-560m-int4/model"
)


def copy_bandwidth_gbs(size_mb: int = 512, reps: int = 5) -> float:
    """Copy bandwidth (bytes read + written per second), median of several copies of a large array."""
    src = np.ones(size_mb * 2**20 // 8, dtype=np.float64)
    dst = np.empty_like(src)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t)
    return 2 * src.nbytes / float(np.median(times)) / 1e9


def run_subject(cmd: list[str], cwd: Path) -> list[dict[str, object]]:
    out = subprocess.run(cmd, cwd=cwd, check=False, capture_output=True, text=True)
    if out.returncode != 0:
        print(f"   failed ({out.returncode}): {out.stderr[-2000:]}", file=sys.stderr)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="variants are measured in turn, this many times")
    parser.add_argument("--java", action="store_true", help="also Prefixgate's engine in-process")
    parser.add_argument("--java-classpath", default="target/quarkus-app/lib/main/*:target/classes:target/test-classes",
                        help="for --java (relative to the repository root); a copy keeps a long run safe from rebuilds")
    args = parser.parse_args()

    models = [(n, (ROOT / d).resolve()) for n, d in (e.split("=", 1) for e in args.models.split(","))]
    for name, d in models:
        if not (d / "model.onnx").exists():
            sys.exit(f"{name}: {d}/model.onnx is missing (see this script's docstring)")
    levels = [int(c) for c in args.concurrency.split(",")]
    adapters_dir = ROOT / "bench" / "models" / "adapters-quant"
    adapters = subprocess.run(
        [str(PY), "-m", "prefixgate_trainer.bench_adapters", "--model", str(models[0][1]),
         "--count", str(max(levels)), "--out", str(adapters_dir)],
        cwd=ROOT / "trainer" / "python", check=True, capture_output=True, text=True,
    ).stdout.split()
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    raw = results / f"quant-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.jsonl"
    rows: list[dict[str, object]] = []
    bws = []
    for rnd in range(args.rounds):
        bws.append(copy_bandwidth_gbs())
        print(f"round {rnd + 1}/{args.rounds}: copy bandwidth {bws[-1]:.1f} GB/s; {args.new_tokens} new tokens, "
              f"{args.reps} reps, {len(adapters)} distinct adapters", file=sys.stderr)
        for name, d in models:
            subjects = {
                "python-ort": [str(PY), "-m", "prefixgate_trainer.bench_ort", "--model", str(d), "--adapters",
                               *adapters, "--concurrency", args.concurrency, "--new-tokens", str(args.new_tokens),
                               "--reps", str(args.reps)],
            }
            if args.java:
                cp = ":".join(str(ROOT / p) for p in args.java_classpath.split(":"))
                subjects["engine"] = ["java", "-Xss4m", "-cp", cp, "dev.prefixgate.engine.EngineBench", "--model",
                                      str(d), "--adapters", ",".join(adapters), "--concurrency", args.concurrency,
                                      "--new-tokens", str(args.new_tokens), "--reps", str(args.reps)]
            wb = weight_bytes(d)["decode_weight_bytes"]
            for subject, cmd in subjects.items():
                print(f"== {name}: {subject}", file=sys.stderr)
                t = time.perf_counter()
                for line in run_subject(cmd, ROOT / "trainer" / "python"):
                    r: dict[str, object] = {
                        **line, "subject": subject, "weights": name, "round": rnd, "quantization": describe(d),
                        "decode_weight_bytes": wb, "copy_bandwidth_gbs": round(bws[-1], 2),
                    }
                    print(json.dumps(r), file=sys.stderr)
                    with raw.open("a") as f:
                        f.write(json.dumps(r) + "\n")
                    rows.append(r)
                print(f"   ({time.perf_counter() - t:.0f} s)", file=sys.stderr)

    bw = statistics.median(bws)
    print(f"{args.rounds} rounds of fp32, int8, int4 in turn (medians over rounds); copy bandwidth "
          f"{bw:.1f} GB/s (median); load average at the end {os.getloadavg()[0]:.1f}")
    print(table(rows, levels, bw))
    print(f"\nraw: {raw.relative_to(ROOT)}")


def table(rows: list[dict[str, object]], levels: list[int], bw: float) -> str:
    def get(subject: str, weights: str, c: int, key: str) -> float | None:
        """The median over rounds."""
        vs = [float(str(r[key])) for r in rows
              if r["subject"] == subject and r["weights"] == weights and r["concurrency"] == c and key in r]
        return statistics.median(vs) if vs else None

    variants = list(dict.fromkeys(str(r["weights"]) for r in rows))
    subjects = list(dict.fromkeys(str(r["subject"]) for r in rows))
    ref = variants[0]
    head = ["subject", "weights", "weight bytes / token", "ceiling tok/s"]
    for c in levels:
        label = "1 stream tok/s" if c == 1 else f"{c} streams total tok/s"
        head += [label, "× " + ref, f"CPU ms/step ({c})", f"× {ref} (CPU)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in subjects:
        for v in variants:
            wb = next(float(str(r["decode_weight_bytes"])) for r in rows if r["weights"] == v)
            cells = [s, v, f"{wb / 1e9:.3f} GB", f"{bw * 1e9 / wb:.1f}"]
            for c in levels:
                key = "decode_tok_s" if c == 1 else "aggregate_tok_s"
                x, base = get(s, v, c, key), get(s, ref, c, key)
                cpu, cpu_ref = get(s, v, c, "decode_cpu_ms_per_step"), get(s, ref, c, "decode_cpu_ms_per_step")
                cells += [f"{x:.1f}" if x else "—", f"{x / base:.2f}" if x and base else "—",
                          f"{cpu:.0f}" if cpu else "—", f"{cpu_ref / cpu:.2f}" if cpu and cpu_ref else "—"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
