"""The broker stops and comes back while a stream runs: the stream completes, later events land."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from prefixgate_trainer.events import adapter_event

from .gateway import ADMIN_KEY, KAFKA, ROOT, Gateway, publish, require_broker, require_jar, topic

# SIGKILLs or stops the broker on $KAFKA_PORT: deploy/local/test runs these beside the other lanes on
# a broker of their own (port 9192), never on the one the other tests share.
pytestmark = pytest.mark.kills_broker

FIXTURES = ROOT / "trainer" / "fixtures"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def test_broker_restart_during_a_stream(tmp_path: Path) -> None:
    require_jar()
    require_broker()
    g = Gateway(tmp_path).start()
    chunks: list[str] = []

    def stream() -> None:
        with httpx.stream(
            "POST", g.url + "/v1/completions", timeout=120,
            headers={"Authorization": "Bearer pg-demo-acme"},
            json={"model": "pirate", "prompt": "Ada paints a", "stream": True, "temperature": 0,
                  "max_tokens": 1500, "ignore_eos": True},
        ) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    chunks.append(line[6:])

    try:
        t = threading.Thread(target=stream)
        t.start()
        time.sleep(0.3)
        subprocess.run([str(KAFKA), "stop"], check=True, timeout=60)
        t.join(timeout=120)
        assert chunks and chunks[-1] == "[DONE]", chunks[-3:]
        assert json.loads(chunks[-2])["choices"][0]["finish_reason"] == "length"
    finally:
        subprocess.run([str(KAFKA), "start"], check=True, timeout=120)
    try:
        assert httpx.post(g.url + "/admin/tenants", headers=ADMIN, json={"id": "outage"}).status_code == 201
        event = adapter_event("outage", "js", FIXTURES / "adapters" / "initech", FIXTURES / "tiny-bloom")
        publish(topic("adapters", g.topics), "outage/js", json.dumps(event))
        deadline = time.time() + 90
        while time.time() < deadline:
            r = httpx.get(g.url + "/admin/tenants/outage/adapters", headers=ADMIN)
            if r.status_code == 200 and r.json():
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the event published after the restart was never consumed")
    finally:
        g.stop()
