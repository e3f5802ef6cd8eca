"""Prefixgate soak: a bounded loopback load generator that looks for leaks and version mixing.

N SSE clients (one httpx client per stream loop) stream greedy completions for M minutes from
random tenants and adapters of one gateway on this machine. 10% of requests disconnect after a few
chunks, 5% cancel before the first token. Meanwhile a soak tenant's adapter "flip" gets new
versions uploaded and its activation flipped every few seconds, and its API key is revoked and
re-issued every ~10 s (the revoked key must then get 401). Every few seconds the gateway's RSS,
direct memory, open file descriptors, live threads and prefix-cache leases are sampled.

It prints a table and exits 1 when a check fails:
  * zero 5xx (as the client saw them, as error chunks in a stream, and in the gateway's own
    prefixgate_requests_total), and no other unexpected status or transport error;
  * zero responses mixing versions: every chunk of a stream names the same name@version, and the
    text equals (or, for a disconnected stream, starts) that version's reference output, computed
    first with non-streamed greedy requests pinned to name@version;
  * zero leaked leases: prefixgate_cache_leases is 0 once the load stopped and the gateway idled;
  * RSS flat after warm-up: growth <= 5% over the second half of the run (the highest of the first
    few samples of the second half against the highest of its last few);
  * no leaked fds: the idle gateway after the load holds at most --fd-slack (8) more open fds than
    the idle gateway before it (under load the count follows the live connections);
  * every revoked key got 401 and every re-issued one worked.

    trainer/python/.venv/bin/python bench/soak.py --streams 32 --minutes 30
    trainer/python/.venv/bin/python bench/soak.py --ci          # 32 streams, 2 minutes
    trainer/python/.venv/bin/python bench/soak.py --url http://127.0.0.1:8080 \\
        --management-url http://127.0.0.1:9000 --pid $(pgrep -f quarkus-run.jar)

Without --url it starts its own gateway (demo profile, Kafka off, a fresh H2 database) from the
packaged jar (--jar; default target/quarkus-app/quarkus-run.jar). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "trainer" / "fixtures"
JAR = ROOT / "target" / "quarkus-app" / "quarkus-run.jar"
ADMIN_KEY = "pg-admin-demo"
# The demo profile's tenants: documented key and default adapter.
DEMO = {
    "acme": ("pg-demo-acme", "pirate"),
    "globex": ("pg-demo-globex", "formal"),
    "initech": ("pg-demo-initech", "json"),
    "xuetang": ("pg-demo-xuetang", "tutor"),
}
SOAK_TENANT = "soak"
FLIP = "flip"
# Bytes of the versions of "flip", in upload order: each fixture adapter is a distinct digest.
FLIP_POOL = ("acme", "globex", "initech", "xuetang")
MAX_TOKENS = 24
# A heap of fixed size, touched at start: RSS then moves only with memory outside the heap (ONNX
# Runtime, direct buffers, metaspace, threads), where a leaked tensor or buffer shows. A leak of Java
# objects shows in the heap's floor (its least use in a window: what survives collections).
JVM_OPTS = "-Xms512m -Xmx512m -XX:+AlwaysPreTouch"
DISCONNECT_SHARE = 0.10
CANCEL_SHARE = 0.05


# ---- the gateway ------------------------------------------------------------------------------


# Quarkus's start line names the ports it bound; with port 0 the gateway picks them itself, so no
# other process can take a port between our pick and its bind.
_LISTENING = re.compile(r"Listening on: http://[^:\s]+:(\d+)\. Management interface listening on http://[^:\s]+:(\d+)")


class OwnGateway:
    """A gateway process started for this soak: demo profile, Kafka off, its own H2 database."""

    def __init__(self, jar: Path, data: Path, jvm_opts: list[str]) -> None:
        self.jar = jar
        self.data = data
        self.jvm_opts = jvm_opts
        self.url = ""
        self.management_url = ""
        self.log_path = data / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> OwnGateway:
        self.data.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            ["java", *self.jvm_opts, "-Dquarkus.profile=demo", "-Dquarkus.http.port=0",
             "-Dquarkus.management.port=0",
             f"-Dquarkus.datasource.jdbc.url=jdbc:h2:file:{self.data}/db;DB_CLOSE_ON_EXIT=FALSE;WRITE_DELAY=0",
             "-Dprefixgate.kafka.enabled=false", "-Dprefixgate.engine.intra-op-threads=1",
             "-jar", str(self.jar)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "DJL_OFFLINE": "true"},
        )
        log.close()
        deadline = time.time() + timeout
        while True:
            if not self.management_url and (m := _LISTENING.search(self.log_tail(1 << 20))):
                self.url = f"http://127.0.0.1:{m.group(1)}"
                self.management_url = f"http://127.0.0.1:{m.group(2)}"
            try:
                if self.management_url:
                    with urllib.request.urlopen(self.management_url + "/q/health/ready", timeout=2) as r:
                        if r.status == 200:
                            return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("gateway did not start:\n" + self.log_tail())
            time.sleep(0.5)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else "(no log)"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


# ---- metrics ----------------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Prometheus text format: (name, labels, value) of every sample."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m:
            try:
                value = float(m.group(4))
            except ValueError:
                continue
            out.append((m.group(1), dict(_LABEL.findall(m.group(3) or "")), value))
    return out


def metric(samples: list[tuple[str, dict[str, str], float]], name: str,
           where: Callable[[dict[str, str]], bool] = lambda _: True) -> float | None:
    """The sum of a metric's samples whose labels pass `where`; None when it has none."""
    values = [v for n, labels, v in samples if n == name and where(labels)]
    return sum(values) if values else None


def histogram_quantile(before: list[tuple[str, dict[str, str], float]],
                       after: list[tuple[str, dict[str, str], float]], name: str, q: float) -> float | None:
    """The q-quantile (a bucket's upper bound, seconds) of what a Prometheus histogram counted
    between two scrapes."""
    def buckets(samples: list[tuple[str, dict[str, str], float]]) -> dict[float, float]:
        out: dict[float, float] = collections.defaultdict(float)
        for n, labels, v in samples:
            if n == name + "_bucket" and "le" in labels:
                out[float(labels["le"])] += v
        return out

    b, a = buckets(before), buckets(after)
    cumulative = sorted((le, a[le] - b.get(le, 0.0)) for le in a)
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    total = cumulative[-1][1]
    return next(le for le, c in cumulative if c >= q * total)


def server_5xx(samples: list[tuple[str, dict[str, str], float]]) -> float:
    return metric(samples, "prefixgate_requests_total", lambda lb: lb.get("status", "").startswith("5")) or 0.0


@dataclass
class Sample:
    t: float  # seconds since the load started
    rss: int | None  # bytes
    direct: float | None  # bytes
    fds: float | None
    leases: float | None
    threads: float | None
    heap: float | None  # bytes
    nonheap: float | None  # bytes: metaspace, code cache
    running: float | None  # batch rows
    queued: float | None


def read_rss(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def count_fds(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


# ---- shared state -----------------------------------------------------------------------------


@dataclass
class Prompt:
    question: str  # the chat user message
    text: str  # the same as a completion prompt (the demo chat template's output)


@dataclass
class State:
    url: str
    management_url: str
    pid: int | None
    prompts: list[Prompt]
    keys: dict[str, str]  # tenant -> its current key
    soak_key_id: str = ""
    revoked: set[str] = field(default_factory=set)
    # (tenant, served model "name@version", kind "chat"/"text", prompt index) -> reference text
    refs: dict[tuple[str, str, str, int], str] = field(default_factory=dict)
    flip_versions: list[int] = field(default_factory=list)  # versions with references
    active_flip: int = 0
    stopping: bool = False
    t0: float = 0.0
    # results
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: list[str] = field(default_factory=list)  # unexpected outcomes, with detail
    mixed: list[str] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    itl: list[float] = field(default_factory=list)
    served: collections.Counter[str] = field(default_factory=collections.Counter)
    admin: collections.Counter[str] = field(default_factory=collections.Counter)
    admin_failures: list[str] = field(default_factory=list)
    rotations: int = 0
    samples: list[Sample] = field(default_factory=list)
    idle_before: Sample | None = None

    def error(self, what: str) -> None:
        self.errors.append(f"t={time.monotonic() - self.t0:7.1f}s {what}")


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


def request_body(kind: str, prompt: Prompt, model: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "temperature": 0, "max_tokens": MAX_TOKENS, "ignore_eos": True,
                            "stream": stream}
    if kind == "chat":
        body["messages"] = [{"role": "user", "content": prompt.question}]
    else:
        body["prompt"] = prompt.text
    return body


def endpoint(kind: str) -> str:
    return "/v1/chat/completions" if kind == "chat" else "/v1/completions"


def piece_of(kind: str, chunk: dict[str, Any]) -> str | None:
    choices = chunk.get("choices") or []
    if not choices:
        return None
    if kind == "chat":
        content = (choices[0].get("delta") or {}).get("content")
        return content if isinstance(content, str) else None
    text = choices[0].get("text")
    return text if isinstance(text, str) else None


# ---- set-up: tenant, flip versions, references ------------------------------------------------


def upload_flip(client: httpx.Client, url: str, source: str, activate: bool) -> tuple[int, int]:
    """Uploads fixture adapter `source` as a version of the soak tenant's "flip": (status, version)."""
    d = FIXTURES / "adapters" / source
    files = {
        "adapter_config": ("adapter_config.json", (d / "adapter_config.json").read_bytes()),
        "adapter_model": ("adapter_model.safetensors", (d / "adapter_model.safetensors").read_bytes()),
    }
    r = client.post(f"{url}/admin/tenants/{SOAK_TENANT}/adapters/{FLIP}",
                    params={"activate": str(activate).lower()}, headers=admin_headers(), files=files)
    if r.status_code not in (200, 201):
        raise RuntimeError(f"upload of {source} as {FLIP}: {r.status_code} {r.text}")
    return r.status_code, int(r.json()["version"])


def reference(client: httpx.Client, state: State, tenant: str, model: str, kind: str, i: int) -> str:
    """The non-streamed greedy output of `model` (name or name@version), stored under what served it."""
    r = client.post(state.url + endpoint(kind), headers={"Authorization": f"Bearer {state.keys[tenant]}"},
                    json=request_body(kind, state.prompts[i], model, stream=False))
    if r.status_code != 200:
        raise RuntimeError(f"reference {tenant}/{model}/{kind}/{i}: {r.status_code} {r.text}")
    doc = r.json()
    choice = doc["choices"][0]
    text: str = choice["message"]["content"] if kind == "chat" else choice["text"]
    served = str(doc["model"])
    if "@" in model and served != model:
        raise RuntimeError(f"asked for {model}, {served} answered")
    state.refs[(tenant, served, kind, i)] = text
    return served


def references(client: httpx.Client, state: State, tenant: str, model: str) -> str:
    served = ""
    for kind in ("chat", "text"):
        for i in range(len(state.prompts)):
            served = reference(client, state, tenant, model, kind, i)
    return served


def setup(state: State) -> None:
    with httpx.Client(timeout=120) as client:
        r = client.post(state.url + "/admin/tenants", headers=admin_headers(), json={"id": SOAK_TENANT})
        if r.status_code == 201:
            state.keys[SOAK_TENANT] = r.json()["apiKey"]
            state.soak_key_id = r.json()["keyId"]
        elif r.status_code == 409:  # a gateway that ran a soak before: a new key
            r = client.post(f"{state.url}/admin/tenants/{SOAK_TENANT}/keys", headers=admin_headers())
            r.raise_for_status()
            state.keys[SOAK_TENANT] = r.json()["apiKey"]
            state.soak_key_id = r.json()["keyId"]
        else:
            raise RuntimeError(f"create tenant {SOAK_TENANT}: {r.status_code} {r.text}")
        # Two versions before the load; the upload task adds the rest of the pool under load.
        for source, activate in ((FLIP_POOL[0], True), (FLIP_POOL[1], False)):
            _, v = upload_flip(client, state.url, source, activate)
            if v not in state.flip_versions:
                references(client, state, SOAK_TENANT, f"{FLIP}@{v}")
                state.flip_versions.append(v)
        r = client.post(f"{state.url}/admin/tenants/{SOAK_TENANT}/adapters/{FLIP}/versions/"
                        f"{state.flip_versions[0]}/activate", headers=admin_headers())
        r.raise_for_status()
        state.active_flip = state.flip_versions[0]
        for tenant, (_, adapter) in DEMO.items():
            references(client, state, tenant, adapter)


def load_prompts() -> list[Prompt]:
    golden = json.loads((FIXTURES / "golden.json").read_text())
    seen: list[Prompt] = []
    for case in golden["cases"]:
        text = case["prompt"]
        m = re.fullmatch(r"Human: (.*)\n\nAssistant:", text, re.S)
        if m and all(p.text != text for p in seen):
            seen.append(Prompt(m.group(1), text))
    return seen[:6]


# ---- the load ---------------------------------------------------------------------------------


@dataclass
class Pick:
    tenant: str
    model: str
    kind: str
    prompt: int
    mode: str  # full, disconnect, cancel


def pick(rng: random.Random, state: State) -> Pick:
    tenants = [*DEMO, SOAK_TENANT, SOAK_TENANT]
    tenant = rng.choice(tenants)
    if tenant == SOAK_TENANT:
        # Mostly the active version; some pinned to one version, which must serve exactly that.
        model = FLIP if rng.random() < 0.75 else f"{FLIP}@{rng.choice(state.flip_versions)}"
    else:
        model = DEMO[tenant][1] if rng.random() < 0.8 else ""  # "" = the tenant's default adapter
    r = rng.random()
    mode = "cancel" if r < CANCEL_SHARE else "disconnect" if r < CANCEL_SHARE + DISCONNECT_SHARE else "full"
    return Pick(tenant, model, rng.choice(("chat", "text")), rng.randrange(len(state.prompts)), mode)


async def one_request(client: httpx.AsyncClient, rng: random.Random, state: State) -> None:
    p = pick(rng, state)
    key = state.keys[p.tenant]
    body = request_body(p.kind, state.prompts[p.prompt], p.model, stream=True)
    if not p.model:
        del body["model"]
    headers = {"Authorization": f"Bearer {key}"}
    label = f"{p.tenant}/{p.model or '(default)'}/{p.kind}/{p.prompt}"
    if p.mode == "cancel":
        await cancel_early(client, rng, state, p, body, headers)
        return
    disconnect_after = rng.randint(1, 4) if p.mode == "disconnect" else None
    t_send = time.monotonic()
    served: set[str] = set()
    text: list[str] = []
    pieces = 0
    last: float | None = None
    finish: str | None = None
    done = False
    try:
        async with client.stream("POST", endpoint(p.kind), json=body, headers=headers) as r:
            status = r.status_code
            if status != 200:
                await r.aread()
                account_status(state, status, key, label, r.text)
                return
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    done = True
                    break
                chunk = json.loads(data)
                if "model" in chunk:
                    served.add(str(chunk["model"]))
                if chunk.get("error"):
                    state.statuses["stream-error"] += 1
                    state.error(f"{label}: error chunk {data[:300]}")
                    return
                choices = chunk.get("choices") or []
                if choices and choices[0].get("finish_reason"):
                    finish = str(choices[0]["finish_reason"])
                piece = piece_of(p.kind, chunk)
                if piece:
                    now = time.monotonic()
                    if last is None:
                        state.ttft.append(now - t_send)
                    else:
                        state.itl.append(now - last)
                    last = now
                    text.append(piece)
                    pieces += 1
                    if disconnect_after is not None and pieces >= disconnect_after:
                        break  # leaving the block closes the connection mid-stream
    except (httpx.TransportError, json.JSONDecodeError) as e:
        state.statuses[f"transport:{type(e).__name__}"] += 1
        state.error(f"{label}: {type(e).__name__}: {e}")
        return
    state.statuses["200"] += 1
    complete = done and disconnect_after is None
    if disconnect_after is not None and done:
        complete = True  # shorter than the disconnect point: it finished first
    if not complete and disconnect_after is None:
        state.statuses["stream-truncated"] += 1
        state.error(f"{label}: stream ended without [DONE] after {pieces} pieces")
        return
    if complete and finish not in ("length", "stop"):
        state.statuses[f"finish:{finish}"] += 1
        state.error(f"{label}: finish_reason {finish}")
        return
    state.outcomes["completed" if complete else "disconnected"] += 1
    check_versions(state, p, label, served, "".join(text), complete)


def check_versions(state: State, p: Pick, label: str, served: set[str], text: str, complete: bool) -> None:
    if len(served) != 1:
        state.mixed.append(f"{label}: chunks name {sorted(served)}")
        return
    (name,) = served
    state.served[f"{p.tenant}/{name}"] += 1
    if "@" in p.model and name != p.model:
        state.mixed.append(f"{label}: asked for {p.model}, chunks name {name}")
        return
    ref = state.refs.get((p.tenant, name, p.kind, p.prompt))
    if ref is None:
        state.mixed.append(f"{label}: served by {name}, which has no reference (not a known version)")
        return
    ok = text == ref if complete else ref.startswith(text)
    if not ok:
        others = [m for (t, m, k, i), r in state.refs.items()
                  if t == p.tenant and k == p.kind and i == p.prompt and m != name
                  and (r == text if complete else r.startswith(text))]
        state.mixed.append(f"{label}: chunks name {name} but the text {'equals' if others else 'matches'} "
                           f"{others or 'no version'}: {text!r} vs reference {ref!r}")


def account_status(state: State, status: int, key: str, label: str, body: str) -> None:
    if status == 401 and key in state.revoked:
        state.statuses["401 (revoked key)"] += 1
        return
    state.statuses[str(status)] += 1
    if status != 429:
        state.error(f"{label}: {status} {body[:300]}")


async def cancel_early(client: httpx.AsyncClient, rng: random.Random, state: State, p: Pick,
                       body: dict[str, Any], headers: dict[str, str]) -> None:
    """Sends a streaming request on a connection of its own and drops it before any token is read:
    half the time a few milliseconds after sending (often before the headers), half the time as
    soon as the headers are in. A raw socket, because a cancelled httpx request can keep holding
    its pool slot."""
    url = httpx.URL(state.url)
    payload = json.dumps(body).encode()
    head = (f"POST {endpoint(p.kind)} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
            f"Authorization: {headers['Authorization']}\r\nContent-Type: application/json\r\n"
            f"Accept: text/event-stream\r\nContent-Length: {len(payload)}\r\n\r\n").encode()
    try:
        reader, writer = await asyncio.open_connection(url.host, url.port)
    except OSError as e:
        state.statuses[f"transport:{type(e).__name__}"] += 1
        state.error(f"cancel: connect: {e}")
        return
    try:
        writer.write(head + payload)
        await writer.drain()
        if rng.random() < 0.5:
            await asyncio.sleep(rng.uniform(0.0, 0.03))
            state.outcomes["cancelled after a few ms"] += 1
            return
        response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 120)
        status = int(response.split(b" ", 2)[1])
        if status != 200:
            account_status(state, status, headers["Authorization"][7:], f"cancel {p.tenant}/{p.model}", "")
            return
        state.outcomes["cancelled at the headers"] += 1
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, IndexError) as e:
        state.statuses[f"transport:{type(e).__name__}"] += 1
        state.error(f"cancel: {type(e).__name__}: {e}")
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def stream_loop(i: int, state: State, deadline: float, seed: int) -> None:
    rng = random.Random(seed * 1000 + i)
    await asyncio.sleep(rng.uniform(0, 1))  # no thundering herd at t=0
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=state.url, timeout=httpx.Timeout(120, connect=10), limits=limits) as c:
        while time.monotonic() < deadline and not state.stopping:
            try:
                await one_request(c, rng, state)
            except Exception as e:  # a bug in the soak itself must not stop the load
                state.statuses[f"client:{type(e).__name__}"] += 1
                state.error(f"stream {i}: {type(e).__name__}: {e}")
                await asyncio.sleep(0.5)


# ---- background admin work --------------------------------------------------------------------


async def admin_call(state: State, client: httpx.AsyncClient, what: str, method: str, path: str,
                     expect: tuple[int, ...], **kw: Any) -> httpx.Response | None:
    try:
        r = await client.request(method, state.url + path, headers=admin_headers(), **kw)
    except httpx.TransportError as e:
        state.admin_failures.append(f"{what}: {type(e).__name__}: {e}")
        return None
    state.admin[f"{what} {r.status_code}"] += 1
    if r.status_code not in expect:
        state.admin_failures.append(f"{what}: {r.status_code} {r.text[:300]}")
        return None
    return r


async def flip_loop(state: State, period: float, seed: int) -> None:
    """Every `period` seconds flips "flip" to another version; every third tick uploads the next
    pool adapter (a new version at first, later the same bytes again: 200, no new version)."""
    rng = random.Random(seed)
    tick = 0
    pool = list(FLIP_POOL[2:]) + list(FLIP_POOL)
    async with httpx.AsyncClient(timeout=120) as client:
        while not state.stopping:
            await asyncio.sleep(period * rng.uniform(0.7, 1.3))
            if state.stopping:
                break
            tick += 1
            if tick % 3 == 0:
                source = pool[(tick // 3 - 1) % len(pool)]
                d = FIXTURES / "adapters" / source
                files = {
                    "adapter_config": ("adapter_config.json", (d / "adapter_config.json").read_bytes()),
                    "adapter_model": ("adapter_model.safetensors", (d / "adapter_model.safetensors").read_bytes()),
                }
                r = await admin_call(state, client, "upload", "POST",
                                     f"/admin/tenants/{SOAK_TENANT}/adapters/{FLIP}", (200, 201),
                                     params={"activate": "false"}, files=files)
                if r is not None and r.status_code == 201:
                    v = int(r.json()["version"])
                    # References before any stream may ask for it (it is not active yet).
                    await asyncio.to_thread(sync_references, state, f"{FLIP}@{v}")
                    state.flip_versions.append(v)
                continue
            choices = [v for v in state.flip_versions if v != state.active_flip]
            v = rng.choice(choices)
            r = await admin_call(state, client, "activate", "POST",
                                 f"/admin/tenants/{SOAK_TENANT}/adapters/{FLIP}/versions/{v}/activate", (200,))
            if r is not None:
                state.active_flip = v


def sync_references(state: State, model: str) -> None:
    with httpx.Client(timeout=120) as client:
        try:
            references(client, state, SOAK_TENANT, model)
        except (RuntimeError, httpx.HTTPError) as e:
            state.admin_failures.append(f"references of {model}: {e}")


async def key_loop(state: State, period: float) -> None:
    """Every `period` seconds: a new key for the soak tenant, the old one revoked, then the old one
    must get 401 (completions and models) and the new one must work."""
    async with httpx.AsyncClient(timeout=120) as client:
        while not state.stopping:
            await asyncio.sleep(period)
            if state.stopping:
                break
            r = await admin_call(state, client, "issue key", "POST", f"/admin/tenants/{SOAK_TENANT}/keys", (201,))
            if r is None:
                continue
            old_key, old_id = state.keys[SOAK_TENANT], state.soak_key_id
            new_key, new_id = r.json()["apiKey"], r.json()["keyId"]
            state.keys[SOAK_TENANT], state.soak_key_id = new_key, new_id
            state.revoked.add(old_key)  # requests that picked it up from now on may get 401
            r = await admin_call(state, client, "revoke key", "DELETE",
                                 f"/admin/tenants/{SOAK_TENANT}/keys/{old_id}", (204,))
            if r is None:
                continue
            state.rotations += 1
            for what, key, want in (("revoked", old_key, 401), ("re-issued", new_key, 200)):
                auth = {"Authorization": f"Bearer {key}"}
                try:
                    m = await client.get(state.url + "/v1/models", headers=auth)
                    c = await client.post(state.url + "/v1/completions", headers=auth,
                                          json={"model": FLIP, "prompt": "Hi", "max_tokens": 1})
                except httpx.TransportError as e:
                    state.admin_failures.append(f"{what} key check: {type(e).__name__}: {e}")
                    continue
                for name, resp in (("models", m), ("completions", c)):
                    state.admin[f"{what} key {name} {resp.status_code}"] += 1
                    if resp.status_code != want and not (want == 200 and resp.status_code == 429):
                        state.admin_failures.append(
                            f"{what} key on /v1/{name}: {resp.status_code}, want {want}: {resp.text[:200]}")


async def read_metrics(client: httpx.AsyncClient, state: State) -> list[tuple[str, dict[str, str], float]]:
    r = await client.get(state.management_url + "/q/metrics")
    r.raise_for_status()
    return parse_metrics(r.text)


async def take_sample(client: httpx.AsyncClient, state: State) -> Sample:
    m = await read_metrics(client, state)
    fds = metric(m, "process_files_open_files")
    return Sample(
        t=time.monotonic() - state.t0,
        rss=read_rss(state.pid),
        direct=metric(m, "jvm_buffer_memory_used_bytes", lambda lb: lb.get("id") == "direct"),
        fds=fds if fds is not None else count_fds(state.pid),
        leases=metric(m, "prefixgate_cache_leases"),
        threads=metric(m, "jvm_threads_live_threads"),
        heap=metric(m, "jvm_memory_used_bytes", lambda lb: lb.get("area") == "heap"),
        nonheap=metric(m, "jvm_memory_used_bytes", lambda lb: lb.get("area") == "nonheap"),
        running=metric(m, "prefixgate_batch_rows"),
        queued=metric(m, "prefixgate_queue_depth"),
    )


async def sample_loop(state: State, period: float) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        while not state.stopping:
            try:
                state.samples.append(await take_sample(client, state))
            except httpx.HTTPError as e:
                state.admin_failures.append(f"metrics: {type(e).__name__}: {e}")
            await asyncio.sleep(period)


# ---- the run and its report -------------------------------------------------------------------


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def add(self, line: str = "") -> None:
        self.lines.append(line)

    def check(self, ok: bool, what: str) -> None:
        self.add(f"  [{'PASS' if ok else 'FAIL'}] {what}")
        if not ok:
            self.failures.append(what)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def mib(v: float | None) -> str:
    return "-" if v is None else f"{v / 2**20:8.1f}"


def num(v: float | None) -> str:
    return "-" if v is None else f"{v:6.0f}"


def growth(samples: list[Sample], attr: str, load_s: float, k: int,
           pick: Callable[[list[float]], float] = statistics.median) -> tuple[float, float, float] | None:
    """pick (median, or max for a high-water mark) of the first samples of the load's second half vs
    that of its last ones: k of them, or a quarter of the second half's samples where that is more."""
    second = [getattr(s, attr) for s in samples if load_s / 2 <= s.t <= load_s and getattr(s, attr) is not None]
    if len(second) < 2:
        return None
    k = max(1, min(max(k, len(second) // 4), len(second) // 2))
    start, end = pick(second[:k]), pick(second[-k:])
    return start, end, (end - start) / start if start else 0.0


async def run(args: argparse.Namespace, url: str, management_url: str, pid: int | None) -> Report:
    state = State(url=url, management_url=management_url, pid=pid, prompts=load_prompts(),
                  keys={t: k for t, (k, _) in DEMO.items()})
    t_setup = time.monotonic()
    await asyncio.to_thread(setup, state)
    setup_s = time.monotonic() - t_setup
    async with httpx.AsyncClient(timeout=30) as mc:
        before = await read_metrics(mc, state)
        state.idle_before = await take_sample(mc, state)
    state.t0 = time.monotonic()
    deadline = state.t0 + args.minutes * 60
    background = [
        asyncio.create_task(sample_loop(state, args.sample_seconds)),
        asyncio.create_task(flip_loop(state, args.flip_seconds, args.seed)),
        asyncio.create_task(key_loop(state, args.key_seconds)),
    ]
    streams = [asyncio.create_task(stream_loop(i, state, deadline, args.seed)) for i in range(args.streams)]
    done, pending = await asyncio.wait(streams, timeout=args.minutes * 60 + 150)
    for t in pending:  # a stream stuck far past its deadline: cancel it, and say so
        state.error("a stream loop was still running 150 s after the deadline")
        t.cancel()
    state.stopping = True
    load_s = time.monotonic() - state.t0
    for t in background:
        t.cancel()
    await asyncio.gather(*background, *pending, return_exceptions=True)
    # Idle: every lease must come back once nothing is in flight.
    async with httpx.AsyncClient(timeout=30) as mc:
        idle_deadline = time.monotonic() + args.idle_seconds
        while True:
            final = await take_sample(mc, state)
            if (final.leases == 0 and not final.running and not final.queued) or time.monotonic() > idle_deadline:
                break
            await asyncio.sleep(0.5)
        after = await read_metrics(mc, state)
    return report(args, state, final, before, after, setup_s, load_s)


def report(args: argparse.Namespace, state: State, final: Sample, before: list[tuple[str, dict[str, str], float]],
           after: list[tuple[str, dict[str, str], float]], setup_s: float, load_s: float) -> Report:
    rep = Report()
    total = sum(state.statuses.values()) + sum(v for k, v in state.outcomes.items() if k.startswith("cancelled"))
    rep.add(f"== soak: {args.streams} streams, {args.minutes:g} min (load ran {load_s:.0f} s, set-up {setup_s:.0f} s)")
    rep.add(f"requests {total}   " + "   ".join(f"{k} {v}" for k, v in sorted(state.outcomes.items())))
    rep.add("by status: " + "   ".join(f"{k} {v}" for k, v in sorted(state.statuses.items())))
    served = sorted(state.served.items())
    rep.add("served: " + "  ".join(f"{k} {v}" for k, v in served))
    rep.add(f"TTFT  p50 {pct(state.ttft, .5) * 1000:7.1f} ms   p99 {pct(state.ttft, .99) * 1000:7.1f} ms   "
            f"({len(state.ttft)} streams, as the clients saw it)")
    rep.add(f"ITL   p50 {pct(state.itl, .5) * 1000:7.1f} ms   p99 {pct(state.itl, .99) * 1000:7.1f} ms   "
            f"({len(state.itl)} gaps; chunks read together count 0)")
    for label, name in (("TTFT", "prefixgate_ttft_seconds"), ("ITL ", "prefixgate_inter_token_seconds")):
        p50, p99 = (histogram_quantile(before, after, name, q) for q in (0.5, 0.99))
        if p50 is not None and p99 is not None:
            rep.add(f"{label}  p50 {p50 * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms   (the gateway's {name} "
                    "histogram: bucket upper bounds)")
    rep.add(f"flip versions {state.flip_versions}, key rotations {state.rotations}; admin: "
            + "  ".join(f"{k} {v}" for k, v in sorted(state.admin.items())))
    server_by_status: collections.Counter[str] = collections.Counter()
    for name, labels, v in after:
        if name == "prefixgate_requests_total":
            server_by_status[labels.get("status", "?")] += int(v)
    for name, labels, v in before:
        if name == "prefixgate_requests_total":
            server_by_status[labels.get("status", "?")] -= int(v)
    rep.add("gateway prefixgate_requests_total during the soak: "
            + "  ".join(f"{k} {v}" for k, v in sorted(server_by_status.items()) if v))
    rep.add()
    rep.add("     t s    RSS MiB  direct MiB  heap MiB  non-heap MiB   fds  threads  leases  rows  queue")
    rows = state.samples
    step = max(1, len(rows) // 24)
    shown = rows[::step] + ([rows[-1]] if rows and rows[-1] not in rows[::step] else [])
    for s in [*shown, final]:
        tag = "  idle" if s is final else ""
        rep.add(f"{s.t:8.0f} {mib(s.rss)}    {mib(s.direct)}  {mib(s.heap)}      {mib(s.nonheap)} {num(s.fds)}   "
                f"{num(s.threads)}  {num(s.leases)} {num(s.running)} {num(s.queued)}{tag}")
    rep.add()
    for what in state.mixed[:10]:
        rep.add(f"  mixed: {what}")
    for what in state.errors[:15]:
        rep.add(f"  error: {what}")
    for what in state.admin_failures[:10]:
        rep.add(f"  admin: {what}")
    rep.add("checks:")
    client_5xx = sum(v for k, v in state.statuses.items() if k.startswith("5") or k == "stream-error")
    gw_5xx = server_5xx(after) - server_5xx(before)
    rep.check(client_5xx == 0 and gw_5xx == 0, f"zero 5xx (client saw {client_5xx}, gateway counted {gw_5xx:.0f})")
    unexpected = sum(v for k, v in state.statuses.items()
                     if k not in ("200", "429", "401 (revoked key)") and not k.startswith("5") and k != "stream-error")
    rep.check(unexpected == 0, f"no other unexpected outcome ({unexpected}: other statuses, truncated streams, "
              "transport errors)")
    if state.statuses.get("429"):
        rep.add(f"  [note] {state.statuses['429']} requests got 429 (server busy): allowed, not 5xx")
    rep.check(not state.mixed, f"zero responses mixing versions ({len(state.mixed)} of "
              f"{state.outcomes['completed'] + state.outcomes['disconnected']} streams checked)")
    rep.check(final.leases == 0, f"zero leaked leases after idle (prefixgate_cache_leases = {final.leases})")
    rep.check(not state.admin_failures and state.rotations > 0,
              f"{state.rotations} key rotations, each revoked key got 401; uploads and activations answered "
              f"({len(state.admin_failures)} failures)")
    rep.check(state.outcomes["completed"] > 0, f"{state.outcomes['completed']} streams completed")
    # RSS under load saws by ~5% as freed direct buffers go back to the C heap at each GC and the
    # allocator trims, so a median moves with where the saw-teeth fall. A leak raises the ceiling:
    # compare the high-water marks of the two windows.
    g = growth(state.samples, "rss", load_s, args.median_of, max)
    if g is None:
        rep.check(state.pid is None, "RSS: too few samples in the second half")
    else:
        start, end, frac = g
        rep.check(frac <= args.max_growth,
                  f"RSS high-water mark flat over the second half: {mib(start).strip()} -> {mib(end).strip()} "
                  f"({frac * 100:+.1f}%, limit {args.max_growth * 100:g}%)")
    # Under load the open-fd count follows the live connections (up to one socket per stream, plus
    # the admin loops'), so samples taken under load differ by tens without any leak. A leaked fd
    # outlives its request: compare the idle gateway before the load with the idle gateway after it.
    first_fds = state.idle_before.fds if state.idle_before else None
    if first_fds is not None and final.fds is not None:
        rep.check(final.fds <= first_fds + args.fd_slack,
                  f"open fds idle: {first_fds:.0f} before the load, {final.fds:.0f} after it "
                  f"(limit +{args.fd_slack} over {state.outcomes['completed'] + state.outcomes['disconnected']} streams)")
    g = growth(state.samples, "fds", load_s, args.median_of)
    if g is not None:
        rep.add(f"  [info] open fds under load, second half: {num(g[0]).strip()} -> {num(g[1]).strip()} "
                "(follows the live connections)")
    half = [s for s in state.samples if load_s / 2 <= s.t <= load_s and s.heap is not None]
    if len(half) >= 8:
        q = len(half) // 4
        first, last = min(s.heap or 0.0 for s in half[:q]), min(s.heap or 0.0 for s in half[-q:])
        rep.add(f"  [info] heap floor (least use) over the second half: {mib(first).strip()} -> "
                f"{mib(last).strip()} MiB")
    n = growth(state.samples, "nonheap", load_s, args.median_of)
    if n:
        rep.add(f"  [info] non-heap over the second half: {mib(n[0]).strip()} -> {mib(n[1]).strip()} MiB")
    d = growth(state.samples, "direct", load_s, args.median_of)
    if d:
        rep.add(f"  [info] direct memory over the second half: {mib(d[0]).strip()} -> {mib(d[1]).strip()} MiB")
    return rep


def log_summary(log: Path) -> str:
    """How many WARN/ERROR records the gateway logged, by their first line (timestamps cut)."""
    kinds: collections.Counter[str] = collections.Counter()
    for line in log.read_text(errors="replace").splitlines():
        m = re.match(r"^\S+ \S+ (WARN|WARNING|ERROR|SEVERE)\s+\[([^\]]+)\] \([^)]*\) (.*)", line)
        if m:
            message = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27,}", "<id>", m.group(3))[:110]
            kinds[f"{m.group(1)} [{m.group(2).rsplit('.', 1)[-1]}] {message}"] += 1
    rows = [f"  {n:6d} x {k}" for k, n in kinds.most_common(8)]
    return "gateway log, warnings and errors:\n" + ("\n".join(rows) if rows else "  none")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=32)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--ci", action="store_true", help="the CI soak: 32 streams for 2 minutes")
    ap.add_argument("--url", help="a running gateway's public URL (default: start one)")
    ap.add_argument("--management-url", help="its management URL (/q/metrics); required with --url")
    ap.add_argument("--pid", type=int, help="the running gateway's pid, for RSS (with --url)")
    ap.add_argument("--jar", type=Path, default=JAR, help="the packaged gateway to start")
    ap.add_argument("--data", type=Path, help="the started gateway's folder (default: a temporary one)")
    ap.add_argument("--jvm-opts", default=JVM_OPTS,
                    help=f"the started gateway's JVM options (default: {JVM_OPTS!r}, a fixed, pre-touched heap, "
                    "so that RSS moves with native memory and not with G1 growing or shrinking the heap)")
    ap.add_argument("--sample-seconds", type=float, default=None, help="sampling period (default 3, CI 2)")
    ap.add_argument("--flip-seconds", type=float, default=3.0)
    ap.add_argument("--key-seconds", type=float, default=10.0)
    ap.add_argument("--idle-seconds", type=float, default=15.0, help="how long leases may take to drain")
    ap.add_argument("--max-growth", type=float, default=0.05)
    ap.add_argument("--fd-slack", type=int, default=8,
                    help="open fds the idle gateway may hold after the load over before it")
    ap.add_argument("--median-of", type=int, default=5,
                    help="samples in each median of the growth check (at least a quarter of the second half's)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.ci:
        args.streams, args.minutes = 32, 2.0
    if args.sample_seconds is None:
        args.sample_seconds = 2.0 if args.minutes <= 5 else 5.0
    own: OwnGateway | None = None
    tmp: str | None = None
    if args.url:
        if not args.management_url:
            ap.error("--url needs --management-url")
        url, management_url, pid = args.url.rstrip("/"), args.management_url.rstrip("/"), args.pid
    else:
        if not args.jar.exists():
            print(f"{args.jar} is missing: build the gateway first (./mvnw package)", file=sys.stderr)
            return 2
        data = args.data
        if data is None:
            tmp = tempfile.mkdtemp(prefix="prefixgate-soak-")
            data = Path(tmp)
        t = time.monotonic()
        own = OwnGateway(args.jar, data, args.jvm_opts.split()).start()
        print(f"gateway up in {time.monotonic() - t:.0f} s: {own.url} (management {own.management_url}), "
              f"log {own.log_path}", flush=True)
        url, management_url = own.url, own.management_url
        pid = own.proc.pid if own.proc else None
    try:
        rep = asyncio.run(run(args, url, management_url, pid))
    finally:
        if own:
            own.stop()
    print("\n".join(rep.lines))
    if own:
        print(log_summary(own.log_path))
    if rep.failures:
        print(f"\nSOAK FAILED: {len(rep.failures)} check(s)")
        if own:
            print(f"gateway log: {own.log_path}\n{own.log_tail(2000)}")
        return 1
    print("\nsoak passed")
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
