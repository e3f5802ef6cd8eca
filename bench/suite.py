"""Prefixgate benchmark suite: HTTP/SSE gateway, in-process engine, plain Python ORT, PyTorch+PEFT.

Run with bench/suite (it builds what is missing). One run measures every subject on this machine,
one after the other, and prints medians and ratios from that same run; CSV and PNG plots go to
bench/results/. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
PY = ROOT / "trainer" / "python"
sys.path.insert(0, str(PY))

from prefixgate_trainer.corpus import prompt_of  # noqa: E402

JAR = ROOT / "target" / "quarkus-app" / "quarkus-run.jar"
ADMIN_KEY = "bench-admin"
PROMPT = prompt_of("Greet the person.", "Nia")


# ---- machine ----------------------------------------------------------------------------------


def memory_bandwidth_gbs(size_mb: int = 512, reps: int = 5) -> float:
    """Copy bandwidth (read + write bytes per second), median of several copies of a large array."""
    src = np.ones(size_mb * 1024 * 1024 // 8, dtype=np.float64)
    dst = np.empty_like(src)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t)
    return 2 * src.nbytes / statistics.median(times) / 1e9


def weight_bytes(model_dir: Path) -> int:
    return sum(f.stat().st_size for f in model_dir.iterdir() if f.name.startswith("model.onnx"))


# ---- synthetic adapters ------------------------------------------------------------------------


def synthetic_adapters(template: Path, count: int, out: Path, p: int) -> list[Path]:
    """`count` distinct PEFT adapters shaped like `template` (its config, random values, P tokens)."""
    cfg = json.loads((template / "adapter_config.json").read_text())
    cfg["num_virtual_tokens"] = p
    width = 2 * cfg["num_layers"] * cfg["token_dim"]
    rng = np.random.default_rng(0)
    dirs = []
    for i in range(count):
        d = out / f"s{i}"
        if not (d / "adapter_model.safetensors").exists():
            d.mkdir(parents=True, exist_ok=True)
            data = (rng.standard_normal((p, width)) * 0.1).astype("<f4").tobytes()
            header = json.dumps({"prompt_embeddings": {"dtype": "F32", "shape": [p, width],
                                                       "data_offsets": [0, len(data)]}}).encode()
            (d / "adapter_model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + data)
            (d / "adapter_config.json").write_text(json.dumps(cfg))
        dirs.append(d)
    return dirs


# ---- the gateway over HTTP -----------------------------------------------------------------


class Gateway:
    def __init__(self, model_dir: Path, cache_bytes: int, jar: Path = JAR, props: tuple[str, ...] = ()) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="prefixgate-bench-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.management_url = f"http://127.0.0.1:{s.getsockname()[1]}"
        self.proc = subprocess.Popen(
            ["java", f"-Dquarkus.http.port={self.port}", f"-Dprefixgate.model.dir={model_dir}",
             f"-Dquarkus.management.port={self.management_url.rsplit(':', 1)[1]}",
             f"-Dquarkus.datasource.jdbc.url=jdbc:h2:file:{self.tmp}/db;DB_CLOSE_ON_EXIT=FALSE",
             f"-Dprefixgate.admin.key={ADMIN_KEY}", f"-Dprefixgate.cache.max-bytes={cache_bytes}",
             "-Dprefixgate.engine.max-queue=4096", "-Dquarkus.log.level=WARN", *(f"-D{p}" for p in props),
             "-jar", str(jar)],
            cwd=ROOT, stdout=open(self.tmp / "gateway.log", "w"), stderr=subprocess.STDOUT,
            env={**os.environ, "DJL_OFFLINE": "true"},
        )
        deadline = time.time() + 180
        ready = None
        while ready is None:
            # Builds before the management interface (e.g. a --jar from an older commit) answer
            # health on the main port.
            for base in (self.management_url, self.url):
                try:
                    with urllib.request.urlopen(base + "/q/health/ready", timeout=2):
                        ready = base
                        break
                except OSError:
                    pass
            if ready is None:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError((self.tmp / "gateway.log").read_text()[-3000:])
                time.sleep(0.5)
        self.management_url = ready
        self.admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        r = httpx.post(self.url + "/admin/tenants", headers=self.admin, json={"id": "bench", "allowBase": True})
        self.key = r.json()["apiKey"]

    def upload(self, names_and_dirs: list[tuple[str, Path]]) -> None:
        with httpx.Client(timeout=120) as c:
            for name, d in names_and_dirs:
                files = {"adapter_config": ("adapter_config.json", (d / "adapter_config.json").read_bytes()),
                         "adapter_model": ("adapter_model.safetensors", (d / "adapter_model.safetensors").read_bytes())}
                r = c.post(f"{self.url}/admin/tenants/bench/adapters/{name}", headers=self.admin, files=files)
                if r.status_code not in (200, 201):
                    raise RuntimeError(r.text)

    def rss_mb(self) -> float:
        return psutil.Process(self.proc.pid).memory_info().rss / 1e6

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


async def _stream(client: httpx.AsyncClient, url: str, key: str, model: str, n: int, prompt: str = PROMPT,
                  sampling: dict | None = None, failures: list | None = None) -> tuple[float, list[float], int]:
    """One streamed completion: (ttft seconds, inter-token gaps, tokens). With `failures`, an HTTP
    error or a stream that ends with finish_reason "error" is recorded there instead of raised."""
    start = time.perf_counter()
    first = None
    last = None
    gaps: list[float] = []
    tokens = 0
    body = {"model": model, "prompt": prompt, "stream": True, "temperature": 0, "max_tokens": n,
            "ignore_eos": True, "return_token_ids": True, **(sampling or {})}
    async with client.stream("POST", url + "/v1/completions", json=body,
                             headers={"Authorization": f"Bearer {key}"}) as r:
        if r.status_code != 200:
            text = await r.aread()
            if failures is None:
                raise RuntimeError(text)
            failures.append(f"HTTP {r.status_code}: {text[:200]!r}")
            return 0.0, [], 0
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if failures is not None and chunk.get("choices") and chunk["choices"][0].get("finish_reason") == "error":
                failures.append(str(chunk)[:300])
            got = len(chunk["choices"][0].get("token_ids", [])) if chunk["choices"] else 0
            if not got:
                continue
            now = time.perf_counter()
            if first is None:
                first = now - start
            elif last is not None:
                gaps.append(now - last)
            last = now
            tokens += got
    return first or 0.0, gaps, tokens


async def http_load(g: Gateway, models: list[str], concurrency: int, requests: int, n: int) -> dict:
    """`requests` streams, `concurrency` at a time, spread round-robin over `models`."""
    sem = asyncio.Semaphore(concurrency)
    results = []
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency + 4)) as client:

        async def one(i: int) -> None:
            async with sem:
                results.append(await _stream(client, g.url, g.key, models[i % len(models)], n))

        t = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        wall = time.perf_counter() - t
    ttfts = sorted(r[0] for r in results)
    gaps = sorted(x for r in results for x in r[1])
    pct = lambda v, q: v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")  # noqa: E731
    return {
        "aggregate_tok_s": sum(r[2] for r in results) / wall,
        "ttft_p50_ms": pct(ttfts, 0.5) * 1000, "ttft_p99_ms": pct(ttfts, 0.99) * 1000,
        "itl_p50_ms": pct(gaps, 0.5) * 1000, "itl_p99_ms": pct(gaps, 0.99) * 1000,
        "decode_tok_s": 1 / pct(gaps, 0.5) if gaps else float("nan"),
    }


# ---- in-process subjects --------------------------------------------------------------------


def json_lines(cmd: list[str], cwd: Path) -> list[dict]:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


# ---- realistic traffic (issue 12) ------------------------------------------------------------

SAMPLED = {"temperature": 0.8, "top_p": 0.9, "top_k": 50}
LONG_LENGTHS = [600, 930, 1400, 1900]


def prompt_of_length(model_dir: Path, tokens: int) -> str:
    """A prompt of about `tokens` tokens of the served tokenizer (prose repeated, cut by tokens)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    text = ("The harbour was quiet in the morning; fishermen mended nets, gulls argued over scraps, and "
            "a ferry horn sounded twice across the grey water. ") * (tokens // 10 + 10)
    ids = tok.encode(text).ids[:tokens]
    return tok.decode(ids) + "\n\nAssistant:"


async def traffic(g: Gateway, models: list[str], prompts: list[str], n: int, sampling: dict | None,
                  delays: list[float] | None = None, measured: list[int] | None = None) -> dict:
    """One stream per prompt, all concurrent (stream i starts after delays[i] seconds); ITL is taken
    from the `measured` streams (default all)."""
    failures: list[str] = []
    results: dict[int, tuple] = {}
    async with httpx.AsyncClient(timeout=900, limits=httpx.Limits(max_connections=len(prompts) + 4)) as client:

        async def one(i: int) -> None:
            if delays:
                await asyncio.sleep(delays[i])
            t = time.perf_counter()
            r = await _stream(client, g.url, g.key, models[i % len(models)], n, prompts[i], sampling, failures)
            results[i] = (*r, time.perf_counter() - t)

        kv: list[tuple[float, float]] = []  # (held, live) bytes, from the gateway's metrics
        done = asyncio.Event()

        async def scrape(names: tuple[str, ...]) -> dict[str, float]:
            """Those of the gateway's metrics it has now (none when the scrape fails)."""
            try:
                text = (await client.get(g.management_url + "/q/metrics", timeout=5)).text
                return {k: float(v) for k, _, v in (ln.partition(" ") for ln in text.splitlines()) if k in names}
            except (httpx.HTTPError, ValueError):
                return {}

        async def watch_kv() -> None:
            names = ("prefixgate_engine_kv_held_bytes", "prefixgate_engine_kv_live_bytes")
            while not done.is_set():
                vals = await scrape(names)
                if len(vals) == 2:
                    kv.append((vals[names[0]], vals[names[1]]))
                try:
                    await asyncio.wait_for(done.wait(), 0.5)
                except asyncio.TimeoutError:
                    pass

        async def remakes() -> tuple[float, float]:
            """KV re-allocations so far and their seconds (nan, nan where the build has no such counters)."""
            names = ("prefixgate_engine_kv_remakes_total", "prefixgate_engine_kv_remake_seconds_total")
            vals = await scrape(names)
            return vals.get(names[0], float("nan")), vals.get(names[1], float("nan"))

        remakes0 = await remakes()
        watcher = asyncio.create_task(watch_kv())
        t = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(len(prompts))))
        wall = time.perf_counter() - t
        done.set()
        await watcher
        remakes1 = await remakes()
    which = measured if measured is not None else list(results)
    ttfts = sorted(results[i][0] for i in which if results[i][2])
    gaps = sorted(x for i in which for x in results[i][1])
    pct = lambda v, q: v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")  # noqa: E731
    return {"streams": len(prompts), "failed": len(failures), "first_failure": failures[0] if failures else "",
            "aggregate_tok_s": sum(r[2] for r in results.values()) / wall,
            "ttft_p50_ms": pct(ttfts, 0.5) * 1000, "itl_p50_ms": pct(gaps, 0.5) * 1000,
            "itl_p99_ms": pct(gaps, 0.99) * 1000, "itl_max_ms": (gaps[-1] if gaps else float("nan")) * 1000,
            "rss_mb": g.rss_mb(), "kv_remakes": remakes1[0] - remakes0[0],
            "kv_remake_s": remakes1[1] - remakes0[1], **kv_summary(kv)}


def kv_summary(kv: list[tuple[float, float]]) -> dict:
    """KV held against live from the metrics samples: the peak held, and held / live at the sample
    where the live tokens peaked and in the median sample (samples with live rows only)."""
    busy = [(h, lv) for h, lv in kv if lv > 0]
    if not busy:
        return {"kv_held_peak_mb": float("nan"), "kv_held_over_live_at_peak": float("nan"),
                "kv_held_over_live_p50": float("nan")}
    ratios = sorted(h / lv for h, lv in busy)
    h, lv = max(busy, key=lambda x: x[1])
    return {"kv_held_peak_mb": max(x[0] for x in busy) / 1e6, "kv_held_over_live_at_peak": h / lv,
            "kv_held_over_live_p50": ratios[len(ratios) // 2]}


def realistic(model_dir: Path, jar: Path, label: str, scenarios: list[str], n: int = 32,
              props: tuple[str, ...] = ()) -> list[dict]:
    template = ROOT / "bench" / "models" / "bloom-560m-random" / "adapter"
    n_layer = json.loads((model_dir / "config.json").read_text())["n_layer"]
    if not (template / "adapter_config.json").exists() or \
            json.loads((template / "adapter_config.json").read_text())["num_layers"] != n_layer:
        template = ROOT / "trainer" / "fixtures" / "adapters" / "acme"
    adapters = synthetic_adapters(template, 16, ROOT / "bench" / "models" / f"synthetic-{n_layer}layers-p8", 8)
    short = PROMPT
    out = []
    g = Gateway(model_dir, 256 * 1024 * 1024, jar, props)
    try:
        g.upload([(f"a{i}", d) for i, d in enumerate(adapters)])
        names = [f"a{i}" for i in range(16)]
        asyncio.run(traffic(g, names, [short] * 8, 4, None))  # warm-up, not measured
        for scen in scenarios:
            kind, streams = scen.rsplit("-", 1)
            c = int(streams)
            if kind in ("greedy", "sampled"):
                r = asyncio.run(traffic(g, names, [short] * c, n, SAMPLED if kind == "sampled" else None))
            elif kind == "mixed":
                # Half short prompts streaming from t=0, half long ones (600-1900 tokens) arriving 2 s later;
                # ITL is that of the short streams, which run while the long prompts go in.
                prompts = [short if i % 2 == 0 else prompt_of_length(model_dir, LONG_LENGTHS[(i // 2) % 4])
                           for i in range(c)]
                delays = [0.0 if i % 2 == 0 else 2.0 for i in range(c)]
                r = asyncio.run(traffic(g, names, prompts, n, None, delays, [i for i in range(c) if i % 2 == 0]))
            elif kind == "long":
                r = asyncio.run(traffic(g, names, [prompt_of_length(model_dir, 930)] * c, n, None))
            elif kind == "context":
                r = asyncio.run(traffic(g, names, [prompt_of_length(model_dir, 1000)] * c, n, None))
            else:
                raise ValueError(scen)
            r.update({"jar": label, "scenario": scen})
            print(json.dumps(r), flush=True)
            out.append(r)
    finally:
        g.stop()
    return out


def realistic_main(a: argparse.Namespace) -> None:
    model_dir = Path(a.model) if a.model else ROOT / "bench" / "models" / "bloom-560m-random" / "model"
    rows = []
    for spec in a.jar:
        label, _, rest = spec.partition("=")
        path, _, rest = rest.partition("@")
        model, _, props = rest.partition("@")
        rows += realistic(Path(model) if model else model_dir, Path(path or JAR), label, a.scenarios.split(","),
                          props=tuple(p for p in props.split(",") if p))
    labels = [s.partition("=")[0] for s in a.jar]
    print(f"\n## realistic traffic, {model_dir}: 32 new tokens per stream, distinct adapters, ignore_eos")
    print("| scenario | " + " | ".join(f"{l} tok/s · TTFT p50 · ITL p50/p99 ms · failed" for l in labels) + " |")
    print("|---|" + "---|" * len(labels))
    by = {(r["jar"], r["scenario"]): r for r in rows}
    for scen in a.scenarios.split(","):
        cells = []
        for l in labels:
            r = by.get((l, scen))
            cells.append("—" if r is None else f"{r['aggregate_tok_s']:.1f} · {r['ttft_p50_ms']:.0f} · "
                         f"{r['itl_p50_ms']:.0f}/{r['itl_p99_ms']:.0f} · {r['failed']}/{r['streams']}")
        print(f"| {scen} | " + " | ".join(cells) + " |")
    for l in labels:
        g8, s8 = by.get((l, "greedy-8")), by.get((l, "sampled-8"))
        g16, s16 = by.get((l, "greedy-16")), by.get((l, "sampled-16"))
        if g8 and s8:
            print(f"{l}: sampled/greedy at 8 streams {s8['aggregate_tok_s'] / g8['aggregate_tok_s']:.2f}"
                  + (f", at 16 {s16['aggregate_tok_s'] / g16['aggregate_tok_s']:.2f}" if g16 and s16 else ""))
        for scen in a.scenarios.split(","):
            r = by.get((l, scen))
            if r and r.get("kv_held_over_live_at_peak") == r.get("kv_held_over_live_at_peak"):  # not nan
                print(f"{l} {scen}: KV held peak {r['kv_held_peak_mb']:.0f} MB, held / live "
                      f"{r['kv_held_over_live_at_peak']:.2f} at the live peak, {r['kv_held_over_live_p50']:.2f} median")
            if r and r.get("kv_remakes") == r.get("kv_remakes"):  # not nan
                print(f"{l} {scen}: KV storage re-made {r['kv_remakes']:.0f} times, {r['kv_remake_s']:.2f} s "
                      f"on the engine thread; longest inter-token gap {r['itl_max_ms']:.0f} ms, RSS {r['rss_mb']:.0f} MB")
        m = by.get((l, "mixed-8"))
        if m:
            print(f"{l}: mixed-8 ITL p99/p50 of the short streams {m['itl_p99_ms'] / m['itl_p50_ms']:.2f}")
    for other in labels[1:]:  # every build against the first
        a0, b0 = by.get((labels[0], "long-1")), by.get((other, "long-1"))
        if a0 and b0:
            print(f"930-token prompt alone, TTFT {labels[0]} / TTFT {other} = {a0['ttft_p50_ms'] / b0['ttft_p50_ms']:.2f}")
        for kind in ("greedy-8", "sampled-8", "greedy-16", "sampled-16", "context-16"):
            x, y = by.get((labels[0], kind)), by.get((other, kind))
            if x and y and x["aggregate_tok_s"]:
                print(f"{kind}: tok/s {other} / {labels[0]} = {y['aggregate_tok_s'] / x['aggregate_tok_s']:.2f}")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    with open(results_dir / f"realistic-{stamp}.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny model only, fewer tokens and levels")
    ap.add_argument("--models", default="tiny,560m", help="which models to run (560m only if built)")
    ap.add_argument("--realistic", action="store_true",
                    help="only the realistic-traffic scenarios (sampled vs greedy, mixed prompt lengths)")
    ap.add_argument("--jar", action="append", default=None,
                    help="LABEL=PATH[@MODEL_DIR[@KEY=VALUE,...]] of a quarkus-run.jar to compare, with system "
                         "properties for its gateway (repeatable; default: this build)")
    ap.add_argument("--model", help="model directory for --realistic (default: the 560m-shaped one)")
    ap.add_argument("--scenarios", default="greedy-8,sampled-8,greedy-16,sampled-16,mixed-8,long-1",
                    help="for --realistic: greedy-N, sampled-N, mixed-N, long-N (930 tokens), context-N (1000)")
    a = ap.parse_args()
    if a.realistic:
        a.jar = a.jar or [f"this={JAR}"]
        realistic_main(a)
        return
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    bw = memory_bandwidth_gbs()
    print(f"# Prefixgate benchmark suite {stamp} on {platform.node()} ({os.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB); memory copy bandwidth {bw:.1f} GB/s")
    wanted = a.models.split(",")
    models = [("tiny", ROOT / "trainer" / "fixtures" / "tiny-bloom")] if "tiny" in wanted else []
    big = ROOT / "bench" / "models" / "bloom-560m-random" / "model"
    if not a.quick and "560m" in wanted and (big / "model.onnx").exists():
        models.append(("560m", big))
    n = 24 if a.quick else 64
    reps = 2 if a.quick else 3
    levels = [1, 2, 4, 8] if a.quick else [1, 2, 4, 8, 16]
    for name, model_dir in models:
        wb = weight_bytes(model_dir)
        ceiling = bw * 1e9 / wb
        print(f"\n## {name}: {wb / 1e6:.1f} MB of weights read per decode step → single-stream ceiling "
              f"≈ {ceiling:.0f} tok/s at {bw:.1f} GB/s")
        cfg = json.loads((model_dir / "config.json").read_text())
        template = ROOT / "trainer" / "fixtures" / "adapters" / "acme"
        if name != "tiny":
            template = ROOT / "bench" / "models" / "bloom-560m-random" / "adapter"
        adapters = synthetic_adapters(template, 16, ROOT / "bench" / "models" / f"synthetic-{name}-p8", 8)
        csv_adapters = ",".join(str(d) for d in adapters)
        eng = json_lines(["java", "-cp", f"{ROOT}/target/quarkus-app/lib/main/*:{ROOT}/target/classes:{ROOT}/target/test-classes",
                          "dev.prefixgate.engine.EngineBench", "--model", str(model_dir), "--adapters", csv_adapters,
                          "--concurrency", ",".join(map(str, levels)), "--new-tokens", str(n), "--reps", str(reps)],
                         ROOT)
        ort = json_lines([sys.executable, "-m", "prefixgate_trainer.bench_ort", "--model", str(model_dir),
                          "--adapters", *map(str, adapters), "--concurrency", ",".join(map(str, levels)),
                          "--new-tokens", str(n), "--reps", str(reps)], PY)
        torch_row = json_lines([sys.executable, "-m", "prefixgate_trainer.bench_torch", "--model", str(model_dir),
                                "--adapter", str(template if name != "tiny" else adapters[0]),
                                "--new-tokens", str(n), "--reps", str(reps)], PY)
        g = Gateway(model_dir, 256 * 1024 * 1024)
        try:
            g.upload([(f"a{i}", d) for i, d in enumerate(adapters)])
            asyncio.run(http_load(g, [f"a{i}" for i in range(8)], 8, 32, n))  # JIT warm-up, not measured
            # TTFT of a cached adapter vs the bare base model, single stream, same prompt.
            ttft = {}
            for model in ("base", "a0"):
                ttft[model] = statistics.median(
                    asyncio.run(http_load(g, [model], 1, 1, 2))["ttft_p50_ms"] for _ in range(15))
            print(f"TTFT single stream, median of 15: base {ttft['base']:.2f} ms, cached adapter a0 (P=8) "
                  f"{ttft['a0']:.2f} ms → the adapter adds {ttft['a0'] - ttft['base']:.2f} ms")
            rows.append({"model": name, "scenario": "ttft-adapter", "subject": "http",
                         "ttft_base_ms": ttft["base"], "ttft_adapter_ms": ttft["a0"]})
            http = {}
            for c in levels:
                runs = [asyncio.run(http_load(g, [f"a{i}" for i in range(c)], c, c, n)) for _ in range(reps)]
                http[c] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                http[c]["rss_mb"] = g.rss_mb()
        finally:
            g.stop()
        by_c = {("engine", r["concurrency"]): r for r in eng} | {("python-ort", r["concurrency"]): r for r in ort}
        print("| conc | HTTP tok/s total | HTTP TTFT p50/p99 ms | HTTP ITL p50/p99 ms | engine tok/s total "
              "| python-ORT tok/s total | HTTP/python (per stream) | HTTP total / HTTP single | gateway RSS MB |")
        print("|---|---|---|---|---|---|---|---|---|")
        for c in levels:
            h, e, o = http[c], by_c[("engine", c)], by_c[("python-ort", c)]
            print(f"| {c} | {h['aggregate_tok_s']:.1f} | {h['ttft_p50_ms']:.1f} / {h['ttft_p99_ms']:.1f} "
                  f"| {h['itl_p50_ms']:.2f} / {h['itl_p99_ms']:.2f} | {e['aggregate_tok_s']:.1f} | {o['aggregate_tok_s']:.1f} "
                  f"| {h['decode_tok_s'] / o['decode_tok_s']:.2f} | {h['aggregate_tok_s'] / http[1]['aggregate_tok_s']:.2f} "
                  f"| {h['rss_mb']:.0f} |")
            rows += [{"model": name, "scenario": "concurrency", "subject": "http", "concurrency": c, **h},
                     {"model": name, "scenario": "concurrency", "subject": "engine", **e},
                     {"model": name, "scenario": "concurrency", "subject": "python-ort", **o}]
        t = torch_row[0]
        rows.append({"model": name, "scenario": "single", "subject": "pytorch-peft", **t})
        print(f"\nsingle stream decode tok/s: HTTP {http[1]['decode_tok_s']:.1f}, engine "
              f"{by_c[('engine', 1)]['decode_tok_s']:.1f}, python-ORT {by_c[('python-ort', 1)]['decode_tok_s']:.1f}, "
              f"PyTorch+PEFT {t['decode_tok_s']:.1f} (HTTP/PyTorch = {http[1]['decode_tok_s'] / t['decode_tok_s']:.2f}); "
              f"ceiling {ceiling:.0f}")
        if name == "tiny" or not a.quick:
            rows += adapter_scaling(name, model_dir, template, n, a.quick)
    write_outputs(rows, results_dir / f"suite-{stamp}")


def adapter_scaling(name: str, model_dir: Path, template: Path, n: int, quick: bool) -> list[dict]:
    counts = [1, 10, 100] if quick else ([1, 10, 100, 1000] if name == "tiny" else [1, 10, 100])
    p = 8
    pool = synthetic_adapters(template, max(counts), ROOT / "bench" / "models" / f"synthetic-{name}-p{p}", p)
    requests = 64 if name == "tiny" else 32
    n = n if name == "tiny" else 32
    one = json.loads((pool[0] / "adapter_config.json").read_text())
    kv_bytes = p * 2 * one["num_layers"] * one["token_dim"] * 4
    out = []
    print(f"\n## {name}: adapter-count scaling (HTTP, concurrency 8, {requests} requests of {n} tokens"
          " spread round-robin over the adapters; cold = cache holds 4 of them)")
    print("| adapters | cache | tok/s total | TTFT p50 ms | vs 1 adapter | gateway RSS MB |")
    print("|---|---|---|---|---|---|")
    base = None
    for cache_name, cache_bytes in (("warm", 1 << 30), ("cold", kv_bytes * 4)):
        g = Gateway(model_dir, cache_bytes)
        try:
            g.upload([("s0", pool[0])])
            asyncio.run(http_load(g, ["s0"], 8, requests, n))  # JIT warm-up, not measured
            uploaded = 1
            for count in counts:
                g.upload([(f"s{i}", pool[i]) for i in range(uploaded, count)])
                uploaded = count
                names = [f"s{i}" for i in range(count)]
                if cache_name == "warm":
                    asyncio.run(http_load(g, names, 8, count, 2))  # load every adapter once
                # The same number of requests at every count, so only the adapter spread changes.
                r = asyncio.run(http_load(g, names, 8, requests, n))
                if base is None:
                    base = r["aggregate_tok_s"]
                r["rss_mb"] = g.rss_mb()
                print(f"| {count} | {cache_name} | {r['aggregate_tok_s']:.1f} | {r['ttft_p50_ms']:.1f} "
                      f"| {r['aggregate_tok_s'] / base:.2f} | {r['rss_mb']:.0f} |")
                out.append({"model": name, "scenario": f"adapters-{cache_name}", "subject": "http",
                            "adapters": count, "concurrency": 8, **r})
        finally:
            g.stop()
    return out


def write_outputs(rows: list[dict], prefix: Path) -> None:
    keys = sorted({k for r in rows for k in r})
    with open(prefix.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for model in sorted({r["model"] for r in rows}):
        fig, ax = plt.subplots(1, 2, figsize=(11, 4))
        for subject in ("http", "engine", "python-ort"):
            pts = sorted((r["concurrency"], r["aggregate_tok_s"]) for r in rows
                         if r["model"] == model and r["scenario"] == "concurrency" and r["subject"] == subject)
            if pts:
                ax[0].plot(*zip(*pts), marker="o", label=subject)
        ax[0].set(title=f"{model}: throughput vs concurrency", xlabel="concurrent streams (distinct adapters)",
                  ylabel="tokens/s (all streams)")
        ax[0].legend()
        for scen in ("adapters-warm", "adapters-cold"):
            pts = sorted((r["adapters"], r["aggregate_tok_s"]) for r in rows if r["model"] == model and r["scenario"] == scen)
            if pts:
                ax[1].plot(*zip(*pts), marker="o", label=scen.split("-")[1] + " cache")
        ax[1].set(title=f"{model}: throughput vs adapter count (HTTP, 8 streams)", xlabel="registered adapters",
                  ylabel="tokens/s", xscale="log")
        ax[1].legend()
        fig.tight_layout()
        fig.savefig(f"{prefix}-{model}.png", dpi=90)
    print(f"\nCSV and plots: {prefix}.csv, {prefix}-<model>.png")


if __name__ == "__main__":
    main()
