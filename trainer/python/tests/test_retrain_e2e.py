"""Retraining end to end: gateway, real broker, Java worker, Python PEFT job, on the tiny model."""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from .gateway import (
    ADMIN_KEY,
    BOOTSTRAP,
    KAFKA,
    ROOT,
    Gateway,
    client_config,
    publish,
    require_broker,
    require_jar,
    start_worker,
    topic,
)

FIXTURES = ROOT / "trainer" / "fixtures"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
QUESTION = "What color is the apple?"
TARGET = '{"answer": "The apple is red"}'
HYPER = {"numVirtualTokens": 4, "maxSteps": 150, "batchSize": 8, "gradAccum": 1, "learningRate": 0.01}


def _answer(g: Gateway) -> str:
    return _chat(g, "pg-demo-acme", "pirate", QUESTION)


def _wait_job(g: Gateway, job_id: str, timeout: float = 240) -> dict[str, Any]:
    """Polls the job view until a final state (and, unless failed, its registry version) shows."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job: dict[str, Any] = httpx.get(f"{g.url}/admin/jobs/{job_id}", headers=ADMIN).json()
        if job["state"] == "failed" or (job["state"] in ("succeeded", "not_activated") and job.get("adapterVersion")):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def _statuses(topics: str) -> list[dict[str, Any]]:
    """Every status event on this test's topic: its end offsets first, then exactly that many
    records. (A consumer that stops after a quiet spell returned too few on a loaded machine.)"""
    name = topic("status", topics)
    ends = subprocess.run(
        [str(KAFKA), "tool", "org.apache.kafka.tools.GetOffsetShell", "--bootstrap-server", BOOTSTRAP,
         "--command-config", client_config("ops"), "--topic", name, "--time", "-1"],
        capture_output=True, text=True, timeout=120,
    ).stdout
    # "topic:partition:offset" per partition; the topic is new, no transactions: offsets count records.
    total = sum(int(line.rsplit(":", 1)[1]) for line in ends.splitlines() if line.startswith(name + ":"))
    if total == 0:
        return []
    out = subprocess.run(
        [str(KAFKA), "tool", "org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", BOOTSTRAP,
         "--consumer.config", client_config("ops"), "--group", f"prefixgate-ops-pytest-{uuid.uuid4().hex[:8]}",
         "--topic", name, "--from-beginning", "--max-messages", str(total), "--timeout-ms", "120000"],
        capture_output=True, text=True, timeout=180,
    ).stdout
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(records) == total, f"read {len(records)} of {total} status records"
    return records


def _wait_statuses(
    topics: str, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 180
) -> list[dict[str, Any]]:
    """The status topic's records from its start, read as they arrive by one console consumer, up
    to the first point where done(records) holds. (Polling _statuses starts two JVMs per try; on
    two cores those starts slowed the worker they were waiting for.)"""
    name = topic("status", topics)
    consumer = subprocess.Popen(
        [str(KAFKA), "tool", "org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", BOOTSTRAP,
         "--consumer.config", client_config("ops"), "--group", f"prefixgate-ops-pytest-{uuid.uuid4().hex[:8]}",
         "--topic", name, "--from-beginning", "--timeout-ms", str(int(timeout * 1000))],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    records: list[dict[str, Any]] = []
    # The consumer exits after `timeout` without a record, which ends this loop too.
    killer = threading.Timer(timeout, consumer.kill)
    killer.start()
    try:
        assert consumer.stdout is not None
        for line in consumer.stdout:
            if line.startswith("{"):
                records.append(json.loads(line))
                if done(records):
                    return records
    finally:
        killer.cancel()
        consumer.kill()
        consumer.wait(timeout=30)
    raise AssertionError(f"{name}: not there within {timeout:.0f} s; records: {records}")


def _failed(records: list[dict[str, Any]]) -> dict[str, str]:
    return {s["requestId"]: s.get("reason", "") for s in records if s["state"] == "failed"}


def test_retrain_request_to_live_adapter(tmp_path: Path) -> None:
    require_jar()
    require_broker()
    g = Gateway(tmp_path / "gw").start()
    log = tmp_path / "worker.log"
    worker = start_worker(g.topics, log, g.url)
    try:
        before = _answer(g)
        assert before.startswith("Arr, matey!"), before
        data = (FIXTURES / "datasets" / "initech.jsonl").read_bytes()
        ds = httpx.post(g.url + "/admin/tenants/acme/datasets?name=json-style", headers={**ADMIN,
                        "Content-Type": "application/x-ndjson"}, content=data).json()
        started = time.time()
        r = httpx.post(g.url + "/admin/tenants/acme/retrain", headers=ADMIN,
                       json={"adapter": "pirate", "datasetId": ds["id"], "hyperParameters": HYPER})
        assert r.status_code == 202, r.text
        job = _wait_job(g, r.json()["id"])
        assert job["state"] == "succeeded", (job, log.read_text()[-3000:])
        after = _answer(g)
        live = time.time() - started
        print(f"retrain request to adapter live: {live:.1f} s")
        (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
        (ROOT / "bench" / "results" / "retrain-latency.txt").write_text(f"{live:.1f}\n")
        assert after == TARGET and after != before
        assert job["adapterVersion"] == 2 and job["progress"] == 100

        # The same request id again (a redelivery) trains nothing and adds no version.
        request = next(s for s in _statuses(g.topics) if s["state"] == "succeeded")
        duplicate = {"requestId": request["requestId"], "tenant": "acme", "adapter": "pirate",
                     "dataset": {"id": ds["id"], "sha256": ds["digest"],
                                 "url": f"{g.url}/admin/tenants/acme/datasets/{ds['id']}"},
                     "hyperParameters": HYPER}
        seen_before = sum(1 for s in _statuses(g.topics) if s["requestId"] == request["requestId"])
        publish(topic("retrain", g.topics), "acme", json.dumps(duplicate), user="ops")
        # A marker behind it on the same partition (key acme) fails fast: once its status is out,
        # the worker has handled the duplicate, and the duplicate must have published nothing.
        marker = {"requestId": f"marker-{uuid.uuid4().hex[:8]}", "tenant": "acme", "adapter": "pirate",
                  "dataset": {"id": "missing", "sha256": "0" * 64, "url": "http://unused.invalid/"}}
        publish(topic("retrain", g.topics), "acme", json.dumps(marker), user="ops")
        statuses = _wait_statuses(g.topics, lambda rs: marker["requestId"] in _failed(rs))
        assert any(s["requestId"] == marker["requestId"] and s["state"] == "failed" for s in statuses), statuses
        assert sum(1 for s in statuses if s["requestId"] == request["requestId"]) == seen_before
        versions = httpx.get(g.url + "/admin/tenants/acme/adapters/pirate", headers=ADMIN).json()
        assert [v["version"] for v in versions] == [1, 2]
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        g.stop()


def test_malformed_dataset_fails_the_job_with_its_line_and_the_worker_goes_on(tmp_path: Path) -> None:
    require_jar()
    require_broker()
    bad = b'{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": "b"}\n{broken\n'

    paths: list[str] = []

    class Serve(http.server.BaseHTTPRequestHandler):
        """Stands in for the gateway's /trainer route (the worker's configured gateway)."""

        def do_GET(self) -> None:  # noqa: N802
            paths.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(bad)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Serve)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    topics = f"bad{int(time.time())}"
    worker = start_worker(topics, tmp_path / "worker.log", f"http://127.0.0.1:{server.server_port}")
    try:
        url = "http://elsewhere.invalid/bad.jsonl"
        request: dict[str, Any] = {"requestId": "bad-1", "tenant": "acme", "adapter": "pirate",
                   "dataset": {"id": "x", "sha256": hashlib.sha256(bad).hexdigest(), "url": url}}
        publish(topic("retrain", topics), "acme", json.dumps(request), user="ops")
        request2 = {**request, "requestId": "bad-2", "dataset": {**request["dataset"], "sha256": "0" * 64}}
        publish(topic("retrain", topics), "acme", json.dumps(request2), user="ops")
        failed = _failed(_wait_statuses(topics, lambda rs: len(_failed(rs)) >= 2, timeout=120))
        assert "dataset: line 3: invalid JSON" in failed["bad-1"], failed
        assert "sha256 mismatch" in failed["bad-2"], failed
        # Fetched from the configured gateway by tenant and id, never from the request's URL.
        assert paths and set(paths) == {"/trainer/tenants/acme/datasets/x"}, paths
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        server.shutdown()


def test_a_worker_killed_mid_job_is_replaced_and_one_version_results(tmp_path: Path) -> None:
    require_jar()
    require_broker()
    g = Gateway(tmp_path / "gw").start()
    log = tmp_path / "worker.log"
    worker = start_worker(g.topics, log, g.url)
    try:
        data = (FIXTURES / "datasets" / "acme.jsonl").read_bytes()
        ds = httpx.post(g.url + "/admin/tenants/globex/datasets", headers={**ADMIN,
                        "Content-Type": "application/x-ndjson"}, content=data).json()
        r = httpx.post(g.url + "/admin/tenants/globex/retrain", headers=ADMIN,
                       json={"adapter": "formal", "datasetId": ds["id"], "hyperParameters": {**HYPER, "maxSteps": 300}})
        assert r.status_code == 202, r.text
        deadline = time.time() + 120
        while time.time() < deadline:  # the job's progress as the gateway knows it
            if httpx.get(f"{g.url}/admin/jobs/{r.json()['id']}", headers=ADMIN).json().get("step"):
                break
            time.sleep(0.1)
        worker.kill()  # SIGKILL mid-training: no offset was committed
        worker.wait(timeout=30)
        worker = start_worker(g.topics, log, g.url)
        job = _wait_job(g, r.json()["id"])
        assert job["state"] == "succeeded", log.read_text()[-3000:]
        versions = httpx.get(g.url + "/admin/tenants/globex/adapters/formal", headers=ADMIN).json()
        assert [v["version"] for v in versions] == [1, 2], versions
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        g.stop()


EXAMPLES = ROOT / "trainer" / "examples"
ZH_HYPER = {"numVirtualTokens": 10, "maxSteps": 200, "batchSize": 8, "gradAccum": 1}


def _chat(g: Gateway, key: str, model: str, question: str) -> str:
    r = httpx.post(g.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=60,
                   json={"model": model, "temperature": 0, "messages": [{"role": "user", "content": question}]})
    assert r.status_code == 200, r.text
    content: str = r.json()["choices"][0]["message"]["content"]
    return content.strip()


def _retrain(g: Gateway, tenant: str, adapter: str, dataset: Path) -> dict[str, Any]:
    ds = httpx.post(f"{g.url}/admin/tenants/{tenant}/datasets?name={dataset.stem}",
                    headers={**ADMIN, "Content-Type": "application/x-ndjson"}, content=dataset.read_bytes()).json()
    r = httpx.post(f"{g.url}/admin/tenants/{tenant}/retrain", headers=ADMIN,
                   json={"adapter": adapter, "datasetId": ds["id"], "hyperParameters": ZH_HYPER})
    assert r.status_code == 202, r.text
    return _wait_job(g, r.json()["id"])


def test_chinese_tutorial_retrain_goes_live_and_random_answers_stay_inactive(tmp_path: Path) -> None:
    """The tutorial's scenario on the demo: Chinese exam data trains an adapter that answers with the
    trained answer and goes live; random answers train one the quality gate keeps inactive."""
    require_jar()
    require_broker()
    g = Gateway(tmp_path / "gw").start()
    log = tmp_path / "worker.log"
    worker = start_worker(g.topics, log, g.url)
    try:
        records = [json.loads(line) for line in (EXAMPLES / "exam-zh.jsonl").read_text().splitlines()]
        answer = records[0]["output"]
        assert {r["output"] for r in records} == {answer}
        started = time.time()
        job = _retrain(g, "xuetang", "exam", EXAMPLES / "exam-zh.jsonl")
        took = time.time() - started
        print(f"Chinese retrain request to live adapter: {took:.1f} s; metrics {job['metrics']}")
        (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
        (ROOT / "bench" / "results" / "retrain-zh.json").write_text(json.dumps(
            {"seconds": round(took, 1), "metrics": job["metrics"]}, ensure_ascii=False) + "\n")
        assert job["state"] == "succeeded", (job, log.read_text()[-3000:])
        assert job["metrics"]["gate"]["passed"] is True
        assert job["metrics"]["eval_loss_adapter"] < job["metrics"]["eval_loss_base"]
        for question in sorted({r["instruction"] for r in records}):
            assert _chat(g, "pg-demo-xuetang", "exam", question) == answer, question
        version = httpx.get(g.url + "/admin/tenants/xuetang/adapters/exam", headers=ADMIN).json()[0]
        assert version["status"] == "ACTIVE" and version["metrics"]["gate"]["passed"] is True
        assert version["baseModel"] == "tiny-bloom" and len(version["baseFingerprint"]) == 64

        job = _retrain(g, "xuetang", "noise", EXAMPLES / "random-zh.jsonl")
        print(f"random answers: {job['state']}: {job['reason']}")
        assert job["state"] == "not_activated", (job, log.read_text()[-3000:])
        m = job["metrics"]
        assert f"{m['eval_loss_adapter']:.4f}" in job["reason"] and f"{m['eval_loss_base']:.4f}" in job["reason"]
        versions = httpx.get(g.url + "/admin/tenants/xuetang/adapters/noise", headers=ADMIN).json()
        assert [(v["version"], v["status"]) for v in versions] == [(1, "REGISTERED")]
        models = httpx.get(g.url + "/v1/models", headers={"Authorization": "Bearer pg-demo-xuetang"}).json()
        assert "noise" not in {m["id"] for m in models["data"]}
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        g.stop()


def test_a_request_url_never_receives_a_credential_and_the_worker_goes_on(tmp_path: Path) -> None:
    """Anyone who can produce a retrain request chooses its dataset.url: the worker must not fetch
    it (no key, no SSRF), fails the job with a reason, and keeps serving requests."""
    require_jar()
    require_broker()
    seen: list[dict[str, str]] = []

    class Listener(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append(dict(self.headers))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"instruction": "a", "output": "b"}\n')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Listener)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    g = Gateway(tmp_path / "gw").start()
    log = tmp_path / "worker.log"
    worker = start_worker(g.topics, log, g.url)
    try:
        body = b'{"instruction": "a", "output": "b"}\n'
        request = {"requestId": "steal-1", "tenant": "acme", "adapter": "pirate",
                   "dataset": {"id": "nope", "sha256": hashlib.sha256(body).hexdigest(),
                               "url": f"http://127.0.0.1:{server.server_port}/grab"}}
        publish(topic("retrain", g.topics), "acme", json.dumps(request), user="ops")
        big = {**request, "requestId": "big-1", "hyperParameters": {"maxSteps": 10_000_000}}
        publish(topic("retrain", g.topics), "acme", json.dumps(big), user="ops")
        failed = _failed(_wait_statuses(g.topics, lambda rs: len(_failed(rs)) >= 2, timeout=120))
        assert "gave HTTP 404" in failed["steal-1"], failed
        assert "maxSteps" in failed["big-1"] or "maximum" in failed["big-1"], failed
        assert seen == [], "the request's URL was contacted"
        assert worker.poll() is None, "the worker must keep running"
        # It goes on: a valid request after the refused ones trains and goes live.
        data = (FIXTURES / "datasets" / "initech.jsonl").read_bytes()
        ds = httpx.post(g.url + "/admin/tenants/acme/datasets?name=json", headers={**ADMIN,
                        "Content-Type": "application/x-ndjson"}, content=data).json()
        r = httpx.post(g.url + "/admin/tenants/acme/retrain", headers=ADMIN,
                       json={"adapter": "pirate", "datasetId": ds["id"], "hyperParameters": {**HYPER, "maxSteps": 20}})
        assert r.status_code == 202, r.text
        job = _wait_job(g, r.json()["id"])
        assert job["state"] in ("succeeded", "not_activated"), (job, log.read_text()[-3000:])
        assert seen == []
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        server.shutdown()
        g.stop()
