"""Faults with real processes: the gateway SIGKILLed during uploads, the broker SIGKILLed during a
retrain. Each test says what was lost; the target is nothing."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from .gateway import ADMIN_KEY, KAFKA, ROOT, Gateway, require_broker, require_jar, start_worker

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
