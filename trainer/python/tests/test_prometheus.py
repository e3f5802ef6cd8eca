"""A real Prometheus (Debian's package) scrapes the packaged gateway's management port under a little
traffic, and the PromQL of the Grafana dashboard (deploy/grafana) answers: TTFT p99, tokens/s per
tenant, KV usage. Every other panel's query must at least be valid PromQL."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .gateway import ROOT, Gateway, free_port, require_jar

DASHBOARD = ROOT / "deploy" / "grafana" / "prefixgate-dashboard.json"
INSTALLER = ROOT / "deploy" / "local" / "prometheus-env"
TENANTS = {"acme": ("pg-demo-acme", "pirate"), "globex": ("pg-demo-globex", "formal")}


def prometheus_binary() -> str:
    """Prometheus on PATH, else installed by deploy/local/prometheus-env; a skip only when that
    cannot install it (no root, no package source), with the installer's reason."""
    found = shutil.which("prometheus")
    if found:
        return found
    out = subprocess.run([str(INSTALLER)], capture_output=True, text=True, timeout=600)
    found = shutil.which("prometheus")
    if out.returncode != 0 or not found:
        pytest.skip(f"Prometheus is not installed and could not be installed: {out.stderr.strip()[-500:]}")
    return found


def dashboard_queries() -> dict[str, list[str]]:
    """Panel title → its PromQL, with Grafana's variables given the values a viewer would pick."""
    doc = json.loads(DASHBOARD.read_text())
    return {
        p["title"]: [
            t["expr"].replace("$__rate_interval", "20s").replace('job=~"$job"', 'job=~".*"')
            for t in p["targets"]
        ]
        for p in doc["panels"]
    }


class Prometheus:
    def __init__(self, binary: str, data: Path, target: str) -> None:
        data.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = data / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: prefixgate\n    metrics_path: /q/metrics\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        self.log = data / "prometheus.log"
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={data / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
            stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
        )

    def query(self, promql: str) -> list[dict[str, Any]]:
        r = httpx.get(self.url + "/api/v1/query", params={"query": promql}, timeout=5)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", f"{promql}: {r.text}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def until(self, what: str, check: Any, deadline: float) -> Any:
        """Polls `check()` until it returns something truthy, or fails at the deadline saying what."""
        last: Any = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("Prometheus exited:\n" + self.log.read_text()[-2000:])
            try:
                last = check()
                if last:
                    return last
            except httpx.TransportError as e:
                last = e
            time.sleep(0.25)
        pytest.fail(f"timed out waiting for {what} (last: {last})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def values(result: list[dict[str, Any]]) -> dict[str, float]:
    """An instant vector as {label set as text: value}, NaN and infinities left out."""
    out = {}
    for s in result:
        v = float(s["value"][1])
        if math.isfinite(v):
            out[json.dumps(s["metric"], sort_keys=True)] = v
    return out


def stream_chat(g: Gateway, key: str, model: str, content: str, max_tokens: int) -> int:
    """One streamed chat; returns the number of content chunks (tokens with text) it got."""
    chunks = 0
    with httpx.stream(
        "POST", g.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=60,
        json={"model": model, "stream": True, "temperature": 0, "max_tokens": max_tokens, "ignore_eos": True,
              "messages": [{"role": "user", "content": content}]},
    ) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data: {") and '"content"' in line:
                chunks += 1
    return chunks


def test_prometheus_scrapes_the_gateway_and_the_dashboard_queries_answer(tmp_path: Path) -> None:
    require_jar()
    binary = prometheus_binary()
    queries = dashboard_queries()
    g = Gateway(tmp_path / "gw").start()
    prom = Prometheus(binary, tmp_path / "prom", f"127.0.0.1:{g.management_port}")
    try:
        deadline = time.time() + 45
        # A scrape before any traffic: rate() needs samples from both sides of it.
        prom.until("the gateway target to be scraped",
                   lambda: prom.query('up{job="prefixgate"} == 1') and prom.query("prefixgate_ttft_seconds_count"),
                   deadline)
        for key, model in TENANTS.values():
            assert stream_chat(g, key, model, "What color is the apple?", 8) > 0
        prom.until("both tenants' token counters in Prometheus",
                   lambda: len(prom.query("prefixgate_tokens_completion_total")) >= len(TENANTS), deadline)
        # Longer streams (ignore_eos) keep the engine's KV allocated across a few 1 s scrapes.
        for _ in range(2):
            for key, model in TENANTS.values():
                assert stream_chat(g, key, model, "Tell me a story.", 96) > 0

        ttft = queries["Time to first token, p99"][0]
        p99 = prom.until("a finite TTFT p99", lambda: values(prom.query(ttft)), deadline)
        assert all(0 < v < 60 for v in p99.values()), p99

        tokens = queries["Generated tokens/s per tenant"][0]

        def tokens_per_tenant() -> dict[str, float] | None:
            rates = {json.loads(k).get("tenant", ""): v for k, v in values(prom.query(tokens)).items()}
            return rates if all(rates.get(t, 0) > 0 for t in TENANTS) else None

        prom.until("tokens/s above 0 for every tenant", tokens_per_tenant, deadline)

        kv = queries["KV usage (engine memory / budget)"][0]
        usage = prom.until("a KV usage value", lambda: values(prom.query(kv)), deadline)
        assert all(0 <= v <= 1 for v in usage.values()), usage
        # The engine held KV while the streams ran, and Prometheus saw it.
        peak = values(prom.query(f"max_over_time(({kv})[2m:1s])"))
        assert peak and max(peak.values()) > 0, peak

        # Every panel's PromQL evaluates to at least one series (NaN counts: a quantile over a
        # quiet window), so a misspelt metric name in the dashboard fails here. With no server
        # errors the 5xx panel is rightly empty; its counter must exist all the same.
        for title, exprs in queries.items():
            for e in exprs:
                if title.startswith("5xx"):
                    prom.query(e)
                else:
                    prom.until(f"a series for panel {title!r}: {e}", lambda e=e: prom.query(e), deadline)
        assert prom.query('prefixgate_requests_total{status="200"}')
        hit_ratio = values(prom.query(queries["Prefix-cache hit ratio"][0]))
        assert all(0 <= v <= 1 for v in hit_ratio.values()), hit_ratio
    finally:
        prom.stop()
        g.stop()
