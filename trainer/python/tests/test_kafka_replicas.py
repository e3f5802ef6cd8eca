"""Several gateway replicas on one broker converge on adapters from the compacted topic alone."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from prefixgate_trainer.events import adapter_event

from .gateway import ADMIN_KEY, ROOT, Gateway, publish, require_broker, require_jar, topic

FIXTURES = ROOT / "trainer" / "fixtures"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
CASE = next(c for c in json.loads((FIXTURES / "golden.json").read_text())["cases"] if c["id"] == "initech/1")


def _serves_golden(g: Gateway) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        r = httpx.get(g.url + "/admin/tenants/replica/adapters", headers=ADMIN)
        if r.status_code == 200 and r.json():
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"replica {g.url} never registered the adapter")
    key = httpx.post(g.url + "/admin/tenants/replica/keys", headers=ADMIN).json()["apiKey"]
    r = httpx.post(
        g.url + "/v1/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "js", "prompt": CASE["prompt"], "temperature": 0, "max_tokens": 32,
              "ignore_eos": True, "return_token_ids": True},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["token_ids"] == CASE["new_ids"]


def test_two_replicas_serve_a_published_adapter_and_a_late_third_replays_it(tmp_path: Path) -> None:
    require_jar()
    require_broker()
    first = Gateway(tmp_path / "a").start()
    second = Gateway(tmp_path / "b", topics=first.topics).start()
    third = None
    try:
        # Events never create tenants: each replica's own database gets the tenant from its admin.
        for replica in (first, second):
            r = httpx.post(replica.url + "/admin/tenants", headers=ADMIN, json={"id": "replica"})
            assert r.status_code == 201, r.text
        event = adapter_event("replica", "js", FIXTURES / "adapters" / "initech", FIXTURES / "tiny-bloom")
        publish(topic("adapters", first.topics), "replica/js", json.dumps(event))
        _serves_golden(first)
        _serves_golden(second)
        (tmp_path / "c").mkdir()
        third = Gateway(tmp_path / "c", topics=first.topics).start()  # empty database
        # It reads the topic at start and refuses the event (no such tenant, nothing created) ...
        deadline = time.time() + 60
        while httpx.get(third.url + "/admin/events/rejected", headers=ADMIN).json() == [] and time.time() < deadline:
            time.sleep(0.5)
        assert httpx.get(third.url + "/admin/tenants/replica", headers=ADMIN).status_code == 404
        # ... and once its admin creates the tenant, replays the compacted topic for it.
        assert httpx.post(third.url + "/admin/tenants", headers=ADMIN, json={"id": "replica"}).status_code == 201
        _serves_golden(third)
        versions = httpx.get(third.url + "/admin/tenants/replica/adapters", headers=ADMIN).json()
        assert [(v["version"], v["status"], v["source"], v["producer"]) for v in versions] == [
            (1, "ACTIVE", "kafka", "prefixgate-trainer")
        ]
    finally:
        for g in (first, second, third):
            if g:
                g.stop()
