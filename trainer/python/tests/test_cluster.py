"""Two replicas behind HAProxy (deploy/local/cluster) act as one service: what is written through the
balancer is served by both replicas, an activation through one is honoured by the other within 1 s,
a retrain requested through one is served by the other, and a replica killed under load loses no
client."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .gateway import ROOT, WORKER_JAR, require_broker, require_jar
from .test_postgres import psql, require_postgres

# Runs alone, after the parallel lanes of deploy/local/test: its activation bound (1 s) and its
# kill test want the machine to themselves.
pytestmark = pytest.mark.exclusive

CLUSTER = ROOT / "deploy" / "local" / "cluster"
FIXTURES = ROOT / "trainer" / "fixtures"
BALANCER = "http://127.0.0.1:18080"
REPLICAS = ("http://127.0.0.1:18081", "http://127.0.0.1:18082")
ADMIN = {"Authorization": "Bearer pg-admin-cluster"}
CLUSTER_ENV: dict[str, str] = {}
# As test_retrain_e2e: 150 steps on the initech data set make acme's adapter answer in JSON.
RETRAIN = {"numVirtualTokens": 4, "maxSteps": 150, "batchSize": 8, "gradAccum": 1, "learningRate": 0.01}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_jar()
    require_broker()
    require_postgres()
    if not WORKER_JAR.exists():
        pytest.skip("trainer worker not built")
    state = tmp_path_factory.mktemp("cluster")
    run = uuid.uuid4().hex[:8]
    CLUSTER_ENV.update({"PREFIXGATE_CLUSTER_TOPICS": f"pytest-{run}",
                        "PREFIXGATE_CLUSTER_DB": f"prefixgate_cluster_{run}"})
    env = {**os.environ, "PREFIXGATE_CLUSTER_DIR": str(state), **CLUSTER_ENV}
    try:
        subprocess.run([str(CLUSTER), "start"], check=True, env=env, timeout=300)
        yield state
    finally:
        subprocess.run([str(CLUSTER), "stop"], env=env, timeout=60)
        psql("postgres", f'drop database if exists "prefixgate_cluster_{run}" with (force)')


def upload(url: str, tenant: str, name: str, fixture: str) -> httpx.Response:
    d = FIXTURES / "adapters" / fixture
    files = {
        "adapter_config": ("adapter_config.json", (d / "adapter_config.json").read_bytes()),
        "adapter_model": ("adapter_model.safetensors", (d / "adapter_model.safetensors").read_bytes()),
    }
    return httpx.post(f"{url}/admin/tenants/{tenant}/adapters/{name}", headers=ADMIN, files=files, timeout=60)


def served(url: str, key: str, model: str) -> str | None:
    """The `name@version` a replica resolves `model` to, or None while it cannot serve it."""
    r = httpx.post(f"{url}/v1/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"model": model, "prompt": "Hi", "max_tokens": 1}, timeout=60)
    return str(r.json()["model"]) if r.status_code == 200 else None


def test_writes_through_the_balancer_reach_both_replicas(cluster: Path) -> None:
    r = httpx.post(BALANCER + "/admin/tenants", headers=ADMIN, json={"id": "clustered"}, timeout=30)
    assert r.status_code == 201, r.text
    key = r.json()["apiKey"]
    assert upload(BALANCER, "clustered", "js", "initech").status_code == 201
    deadline = time.monotonic() + 5
    seen = {url: served(url, key, "js") for url in REPLICAS}
    while any(v != "js@1" for v in seen.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = {url: served(url, key, "js") for url in REPLICAS}
    assert all(v == "js@1" for v in seen.values()), seen
    # Both replicas answer behind the balancer (round robin), and both share one database.
    db = CLUSTER_ENV["PREFIXGATE_CLUSTER_DB"]
    assert psql(db, "select count(*) from adapter where tenant_id = 'clustered'") == "1"


def test_an_activation_through_one_replica_holds_on_the_other_within_a_second(cluster: Path) -> None:
    r = httpx.post(BALANCER + "/admin/tenants", headers=ADMIN, json={"id": "flipper"}, timeout=30)
    assert r.status_code == 201, r.text
    key = r.json()["apiKey"]
    a, b = REPLICAS
    assert upload(a, "flipper", "js", "initech").status_code == 201
    assert upload(a, "flipper", "js", "acme").status_code == 201  # version 2, active
    deadline = time.monotonic() + 5
    while served(b, key, "js") != "js@2" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served(b, key, "js") == "js@2"
    r = httpx.post(f"{a}/admin/tenants/flipper/adapters/js/versions/1/activate", headers=ADMIN, timeout=30)
    assert r.status_code == 200, r.text
    t0 = time.monotonic()
    while served(b, key, "js") != "js@1":
        assert time.monotonic() - t0 < 1.0, "replica B still serves version 2 after 1 s"
        time.sleep(0.02)
    print(f"[cluster] an activation through A held on B after {(time.monotonic() - t0) * 1000:.0f} ms")


def test_a_retrain_requested_through_one_replica_is_served_by_the_other(cluster: Path) -> None:
    """The data set goes in through A, the retrain request through A; a worker of the group takes it
    (it fetches the data set through the balancer), publishes the adapter, and B, which saw none of
    the admin calls, reports the job done and serves the trained version."""
    r = httpx.post(BALANCER + "/admin/tenants", headers=ADMIN, json={"id": "trained"}, timeout=30)
    assert r.status_code == 201, r.text
    key = r.json()["apiKey"]
    a, b = REPLICAS
    assert upload(a, "trained", "pirate", "acme").status_code == 201
    ds = httpx.post(f"{a}/admin/tenants/trained/datasets?name=initech", timeout=30,
                    headers={**ADMIN, "Content-Type": "application/x-ndjson"},
                    content=(FIXTURES / "datasets" / "initech.jsonl").read_bytes())
    assert ds.status_code == 201, ds.text
    r = httpx.post(f"{a}/admin/tenants/trained/retrain", headers=ADMIN, timeout=30,
                   json={"adapter": "pirate", "datasetId": ds.json()["id"], "hyperParameters": RETRAIN})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    deadline = time.monotonic() + 300
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = httpx.get(f"{b}/admin/jobs/{job_id}", headers=ADMIN, timeout=30).json()
        if job.get("state") == "failed" or job.get("adapterVersion"):
            break
        time.sleep(0.5)
    assert job.get("state") == "succeeded" and job.get("adapterVersion") == 2, job
    assert served(b, key, "pirate") == "pirate@2"
    r = httpx.post(f"{b}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=60,
                   json={"model": "pirate", "temperature": 0,
                         "messages": [{"role": "user", "content": "What color is the apple?"}]})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"].strip() == '{"answer": "The apple is red"}'


STARTED = threading.Event()  # set by the first streamed line of any client


def stream_once(key: str) -> bool:
    """One streamed chat through the balancer; True when it ended with `data: [DONE]`."""
    body = {"model": "js", "stream": True, "temperature": 0, "max_tokens": 48, "ignore_eos": True,
            "messages": [{"role": "user", "content": "Tell me about Ada"}]}
    try:
        with httpx.stream("POST", BALANCER + "/v1/chat/completions", json=body, timeout=60,
                          headers={"Authorization": f"Bearer {key}"}) as r:
            if r.status_code != 200:
                return False
            for line in r.iter_lines():
                STARTED.set()
                if line == "data: [DONE]":
                    return True
    except httpx.HTTPError:
        pass
    return False



def test_a_replica_killed_under_streaming_load_loses_no_client(cluster: Path) -> None:
    """16 streaming clients through the balancer; one replica is SIGKILLed while they stream. Every
    client that retries (up to 3 times) through the balancer finishes; the replica restarts and serves."""
    from concurrent.futures import ThreadPoolExecutor

    r = httpx.post(BALANCER + "/admin/tenants", headers=ADMIN, json={"id": "survivor"}, timeout=30)
    assert r.status_code == 201, r.text
    key = r.json()["apiKey"]
    assert upload(BALANCER, "survivor", "js", "initech").status_code == 201
    for url in REPLICAS:
        deadline = time.monotonic() + 5
        while served(url, key, "js") != "js@1":
            assert time.monotonic() < deadline, url
            time.sleep(0.05)

    def client() -> int:
        for attempt in range(1, 4):
            if stream_once(key):
                return attempt
        return 0

    STARTED.clear()
    pid = int((cluster / "gateway-1.pid").read_text())
    with ThreadPoolExecutor(16) as pool:
        results = [pool.submit(client) for _ in range(16)]
        assert STARTED.wait(60), "no stream started"
        os.kill(pid, 9)
        attempts = [f.result(timeout=300) for f in results]
    assert 0 not in attempts, f"clients that never finished: {attempts}"
    assert max(attempts) > 1, "the kill broke no stream: it did not test anything"
    print(f"[cluster] attempts per client after the kill: {sorted(attempts)}")
    env = {**os.environ, "PREFIXGATE_CLUSTER_DIR": str(cluster)}
    env.update(CLUSTER_ENV)
    subprocess.run([str(CLUSTER), "start"], check=True, env=env, timeout=300)
    assert served(REPLICAS[0], key, "js") == "js@1", "the restarted replica converged"
