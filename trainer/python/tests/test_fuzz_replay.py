"""Every committed fuzz input (seeds and former crashers) replayed over HTTP against the packaged
gateway: request bodies to both /v1 routes, archives and safetensors files as adapter uploads,
data sets as data-set uploads. No input may produce a 5xx; each refusal is a JSON error body."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .gateway import ADMIN_KEY, ROOT, Gateway, require_jar

INPUTS = ROOT / "src" / "test" / "resources" / "dev" / "prefixgate"
FIXTURES = ROOT / "trainer" / "fixtures"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def _files(folder: str) -> list[Path]:
    return sorted(p for p in (INPUTS / folder).rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    require_jar()
    g = Gateway(tmp_path_factory.mktemp("replay")).start()
    r = httpx.post(g.url + "/admin/tenants", headers=ADMIN, json={"id": "replay"})
    assert r.status_code == 201, r.text
    yield g
    g.stop()


def _check(r: httpx.Response, what: str) -> None:
    assert r.status_code < 500, f"{what}: {r.status_code} {r.text[:300]}"
    if r.status_code >= 400:
        assert r.json()["error"]["message"], what


def test_request_bodies_never_give_a_5xx(gateway: Gateway) -> None:
    inputs = _files("api/CompletionRequestFuzzTestInputs")
    assert inputs, "no committed inputs"
    with httpx.Client(timeout=60, headers={"Authorization": "Bearer pg-demo-acme",
                                          "Content-Type": "application/json"}) as c:
        for p in inputs:
            for route in ("/v1/chat/completions", "/v1/completions"):
                _check(c.post(gateway.url + route, content=p.read_bytes()), f"{route} {p.name}")


def test_adapter_uploads_never_give_a_5xx(gateway: Gateway) -> None:
    config = (FIXTURES / "adapters" / "acme" / "adapter_config.json").read_bytes()
    archives = _files("adapter/AdapterArchiveFuzzTestInputs")
    tensors = _files("engine/SafetensorsFuzzTestInputs") + _files("engine/PrefixAdapterFuzzTestInputs")
    assert archives and tensors, "no committed inputs"
    with httpx.Client(timeout=60, headers=ADMIN) as c:
        url = gateway.url + "/admin/tenants/replay/adapters/fuzz"
        for p in archives:
            _check(c.post(url, files={"archive": (p.name, p.read_bytes())}), f"archive {p.name}")
        for p in tensors:
            files = {"adapter_config": ("adapter_config.json", config),
                     "adapter_model": ("adapter_model.safetensors", p.read_bytes())}
            _check(c.post(url, files=files), f"safetensors {p.name}")


def test_data_set_uploads_never_give_a_5xx(gateway: Gateway) -> None:
    inputs = _files("retrain/DatasetsFuzzTestInputs")
    assert inputs, "no committed inputs"
    with httpx.Client(timeout=60, headers={**ADMIN, "Content-Type": "application/x-ndjson"}) as c:
        for p in inputs:
            _check(c.post(gateway.url + "/admin/tenants/replay/datasets", content=p.read_bytes()), p.name)
