"""After a restart the gateway serves the same adapters: they come from the database, not memory."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from .gateway import ADMIN_KEY, ROOT, Gateway, require_jar

FIXTURES = ROOT / "trainer" / "fixtures"
GOLDEN = json.loads((FIXTURES / "golden.json").read_text())


def _greedy_ids(url: str, key: str, model: str, prompt: str) -> list[int]:
    r = httpx.post(
        url + "/v1/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": model, "prompt": prompt, "temperature": 0, "max_tokens": 32,
              "ignore_eos": True, "return_token_ids": True},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    ids: list[int] = r.json()["choices"][0]["token_ids"]
    return ids


def test_registry_survives_a_restart(tmp_path: Path) -> None:
    require_jar()
    case = next(c for c in GOLDEN["cases"] if c["id"] == "initech/1")
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    first = Gateway(tmp_path).start()
    try:
        r = httpx.post(first.url + "/admin/tenants", headers=admin, json={"id": "restart", "name": "R"})
        assert r.status_code == 201, r.text
        key = r.json()["apiKey"]
        adapter = FIXTURES / "adapters" / "initech"
        files = {
            "adapter_config": ("adapter_config.json", (adapter / "adapter_config.json").read_bytes()),
            "adapter_model": ("adapter_model.safetensors", (adapter / "adapter_model.safetensors").read_bytes()),
        }
        r = httpx.post(first.url + "/admin/tenants/restart/adapters/js", headers=admin, files=files)
        assert r.status_code == 201, r.text
        assert _greedy_ids(first.url, key, "js", case["prompt"]) == case["new_ids"]
    finally:
        first.stop()
    second = Gateway(tmp_path).start()
    try:
        assert _greedy_ids(second.url, key, "js", case["prompt"]) == case["new_ids"]
        versions = httpx.get(second.url + "/admin/tenants/restart/adapters/js", headers=admin).json()
        assert [(v["version"], v["status"]) for v in versions] == [(1, "ACTIVE")]
    finally:
        second.stop()
