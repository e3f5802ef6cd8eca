"""Faults with real processes: the gateway SIGKILLed during uploads, the broker SIGKILLed during a
retrain and during adapter publishes. Each test says what was lost; the target is nothing."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefixgate_trainer.events import adapter_event

from .gateway import ADMIN_KEY, KAFKA, ROOT, Gateway, publish, require_broker, require_jar, start_worker, topic

# SIGKILLs or stops the broker on $KAFKA_PORT: deploy/local/test runs these beside the other lanes on
# a broker of their own (port 9192), never on the one the other tests share.
pytestmark = pytest.mark.kills_broker

FIXTURES = ROOT / "trainer" / "fixtures"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
H2_JAR = next((ROOT / "target" / "quarkus-app" / "lib" / "main").glob("com.h2database.h2-*.jar"), None)


def _variant(i: int) -> bytes:
    """The initech adapter with one mantissa bit of one float changed: a valid, distinct adapter."""
    data = bytearray((FIXTURES / "adapters" / "initech" / "adapter_model.safetensors").read_bytes())
    header = struct.unpack("<Q", data[:8])[0]
    at = 8 + header + 4 * (i + 1)  # the low byte of a float32 in the data section
    data[at] ^= 0x01
    return bytes(data)


def _h2(db: Path, sql: str) -> str:
    """One query on the gateway's H2 file, with H2's own shell (the gateway must be stopped)."""
    assert H2_JAR is not None
    out = subprocess.run(
        ["java", "-cp", str(H2_JAR), "org.h2.tools.Shell", "-url", f"jdbc:h2:file:{db}", "-user", "sa",
         "-sql", sql],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return out.stdout


def test_a_gateway_killed_during_uploads_loses_nothing_acknowledged_and_leaves_no_half_rows(tmp_path: Path) -> None:
    require_jar()
    data = tmp_path / "gw"
    g = Gateway(data).start()
    config = (FIXTURES / "adapters" / "initech" / "adapter_config.json").read_bytes()
    acknowledged: list[tuple[str, int]] = []  # (name, version) the gateway answered 201 for
    lock = threading.Lock()
    enough = threading.Event()
    try:
        assert httpx.post(g.url + "/admin/tenants", headers=ADMIN, json={"id": "kill"}).status_code == 201

        def upload(worker: int) -> None:
            for i in range(worker, 200, 4):
                files = {"adapter_config": ("adapter_config.json", config),
                         "adapter_model": ("adapter_model.safetensors", _variant(i))}
                try:
                    r = httpx.post(f"{g.url}/admin/tenants/kill/adapters/a{worker}", headers=ADMIN,
                                   files=files, timeout=30)
                except httpx.HTTPError:
                    return  # the gateway is gone
                if r.status_code != 201:
                    return
                with lock:
                    acknowledged.append((f"a{worker}", r.json()["version"]))
                    if len(acknowledged) >= 12:
                        enough.set()

        threads = [threading.Thread(target=upload, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        assert enough.wait(timeout=120), "uploads did not get going"
        assert g.proc is not None
        g.proc.send_signal(signal.SIGKILL)  # uploads in flight: some half-received, some mid-commit
        g.proc.wait(timeout=30)
        for t in threads:
            t.join(timeout=60)
    finally:
        g.stop()
    g = Gateway(data).start()
    try:
        stored: dict[str, list[int]] = {}
        for v in httpx.get(g.url + "/admin/tenants/kill/adapters", headers=ADMIN).json():
            stored.setdefault(v["name"], []).append(v["version"])
        lost = [a for a in acknowledged if a[1] not in stored.get(a[0], [])]
        assert lost == [], f"acknowledged uploads lost: {lost}"
        for name, versions in stored.items():
            assert sorted(versions) == list(range(1, len(versions) + 1)), (name, versions)
        print(f"[faults] {len(acknowledged)} uploads acknowledged before the kill, "
              f"{sum(map(len, stored.values()))} versions stored, lost {len(lost)}")
    finally:
        g.stop()
    db = data / "db"
    orphans = _h2(db, "select count(*) as orphans from adapter_blob b "
                      "where not exists (select 1 from adapter a where a.digest = b.digest)")
    half = _h2(db, "select count(*) as half from adapter a "
                   "where not exists (select 1 from adapter_blob b where b.digest = a.digest)")
    assert "\n0\n" in orphans.replace("\r", ""), orphans
    assert "\n0\n" in half.replace("\r", ""), half


def _kafka_pid() -> int:
    return int(Path(f"/tmp/prefixgate-kafka-{os.environ.get('KAFKA_PORT', '9092')}/pid").read_text())


def _wait_gone(pid: int) -> None:
    deadline = time.time() + 30
    while Path(f"/proc/{pid}").exists() and time.time() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists(), f"process {pid} outlived SIGKILL"


def test_a_broker_killed_during_a_retrain_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    require_jar()
    require_broker()
    g = Gateway(tmp_path / "gw").start()
    log = tmp_path / "worker.log"
    worker = start_worker(g.topics, log, g.url)
    try:
        data = (FIXTURES / "datasets" / "initech.jsonl").read_bytes()
        ds = httpx.post(g.url + "/admin/tenants/globex/datasets", headers={**ADMIN,
                        "Content-Type": "application/x-ndjson"}, content=data).json()
        r = httpx.post(g.url + "/admin/tenants/globex/retrain", headers=ADMIN,
                       json={"adapter": "formal", "datasetId": ds["id"],
                             "hyperParameters": {"numVirtualTokens": 4, "maxSteps": 100, "batchSize": 8,
                                                 "gradAccum": 1, "learningRate": 0.01}})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        deadline = time.time() + 120
        job: dict[str, Any] = {}
        while time.time() < deadline:  # the job state, as the gateway learnt it from the status topic
            job = httpx.get(f"{g.url}/admin/jobs/{job_id}", headers=ADMIN).json()
            if job["state"] == "running" and job.get("step"):
                break
            time.sleep(0.2)
        assert job.get("step"), f"the job never reported a step: {job}"
        pid = _kafka_pid()
        os.kill(pid, signal.SIGKILL)  # mid-training: status events now have nowhere to go
        _wait_gone(pid)  # else "start" may still see the dying broker and call it running
        subprocess.run([str(KAFKA), "start"], check=True, timeout=180)
        deadline = time.time() + 300
        while time.time() < deadline:
            job = httpx.get(f"{g.url}/admin/jobs/{job_id}", headers=ADMIN).json()
            final = job["state"] in ("succeeded", "failed", "not_activated")
            if final and (job["state"] == "failed" or job.get("adapterVersion")):
                break
            time.sleep(0.5)
        assert job["state"] == "succeeded", (job, log.read_text()[-3000:])
        versions = httpx.get(g.url + "/admin/tenants/globex/adapters/formal", headers=ADMIN).json()
        # The demo's version 1 and exactly one trained version: nothing lost, nothing twice.
        assert [(v["version"], v["source"]) for v in versions] == [(1, "demo"), (2, "kafka")], versions
        assert job["adapterVersion"] == 2
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        g.stop()


def test_a_broker_killed_during_adapter_publishes_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """Adapter events published one after another (each with the broker's console producer,
    `--sync`, retried until acknowledged, as a publishing script would) while the broker is
    SIGKILLed and restarted: every acknowledged event becomes exactly one version, and a record
    the dying broker wrote but never acknowledged, published again, is not stored twice."""
    require_jar()
    require_broker()
    g = Gateway(tmp_path / "gw").start()
    config = (FIXTURES / "adapters" / "initech" / "adapter_config.json").read_bytes()
    events = []
    for i in range(6):
        d = tmp_path / f"v{i}"
        d.mkdir()
        (d / "adapter_config.json").write_bytes(config)
        (d / "adapter_model.safetensors").write_bytes(_variant(100 + i))
        events.append(adapter_event("pub", "p", d, FIXTURES / "tiny-bloom"))
    acknowledged: list[str] = []  # sha256 of each event the broker acknowledged
    attempts = 0
    try:
        assert httpx.post(g.url + "/admin/tenants", headers=ADMIN, json={"id": "pub"}).status_code == 201
        restarted = False
        for i, event in enumerate(events):
            deadline = time.time() + 180
            while True:
                attempts += 1
                try:
                    publish(topic("adapters", g.topics), "pub/p", json.dumps(event))
                    break
                except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                    assert time.time() < deadline, f"event {i} was never acknowledged"
            acknowledged.append(event["sha256"])
            if i == 1 and not restarted:
                # Event 2 goes out while the broker dies: its producer may have written it
                # without an answer, and the retry after the restart sends the same bytes again.
                pid = _kafka_pid()
                sender = threading.Thread(target=lambda: _try_publish(g.topics, events[2]))
                sender.start()
                os.kill(pid, signal.SIGKILL)
                _wait_gone(pid)
                sender.join(timeout=90)
                subprocess.run([str(KAFKA), "start"], check=True, timeout=180)
                restarted = True
        deadline = time.time() + 120
        stored: list[dict[str, Any]] = []
        while time.time() < deadline:
            r = httpx.get(g.url + "/admin/tenants/pub/adapters/p", headers=ADMIN)
            stored = r.json() if r.status_code == 200 else []
            if {v["digest"] for v in stored} >= set(acknowledged):
                break
            time.sleep(0.5)
        digests = [v["digest"] for v in stored]
        lost = [d for d in acknowledged if d not in digests]
        twice = sorted({d for d in digests if digests.count(d) > 1})
        assert lost == [], f"acknowledged events lost: {lost}"
        assert twice == [], f"events stored twice: {twice}"
        assert sorted(v["version"] for v in stored) == list(range(1, len(acknowledged) + 1)), stored
        assert all(v["source"] == "kafka" for v in stored), stored
        assert httpx.get(g.url + "/admin/events/rejected", headers=ADMIN).json() == []
        print(f"[faults] broker killed during publishes: {len(acknowledged)} events acknowledged in "
              f"{attempts} attempts, {len(stored)} versions stored, lost 0, twice 0")
    finally:
        g.stop()


def _try_publish(topics: str, event: dict[str, Any]) -> None:
    """One publish attempt that may die with the broker; its outcome is not counted."""
    try:
        publish(topic("adapters", topics), "pub/p", json.dumps(event))
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        pass
