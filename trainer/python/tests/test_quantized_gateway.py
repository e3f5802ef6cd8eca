"""The packaged gateway serves an int8 copy of the demo model unchanged: /v1/models says what the
weights are, and the pirate adapter (trained on the float32 base) answers through HTTP exactly
like the plain Python ONNX Runtime loop on the same int8 graph."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from prefixgate_trainer.ort_loop import OrtBloom
from prefixgate_trainer.prefix import load_prefix
from prefixgate_trainer.quantize import quantize_dir

from .gateway import ROOT, Gateway, require_jar

FIXTURES = ROOT / "trainer" / "fixtures"
GOLDEN = json.loads((FIXTURES / "golden.json").read_text())
KEY = "pg-demo-acme"


@pytest.fixture(scope="module")
def int8_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    out = tmp_path_factory.mktemp("int8") / "tiny-bloom-int8"
    quantize_dir(FIXTURES / "tiny-bloom", out, bits=8, block_size=128)
    return out


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, int8_dir: Path) -> Iterator[Gateway]:
    require_jar()
    with pytest.MonkeyPatch.context() as mp:
        # Quarkus reads PREFIXGATE_MODEL_DIR as prefixgate.model.dir.
        mp.setenv("PREFIXGATE_MODEL_DIR", str(int8_dir))
        g = Gateway(tmp_path_factory.mktemp("quantized-gateway")).start()
    yield g
    g.stop()


def test_models_reports_the_quantization(gateway: Gateway, int8_dir: Path) -> None:
    r = httpx.get(gateway.url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert r.status_code == 200, r.text
    meta = json.loads((int8_dir / "prefixgate-model.json").read_text())["quantization"]
    entries = r.json()["data"]
    assert {e["id"] for e in entries} >= {"pirate"}
    for e in entries:
        q = e["quantization"]
        assert (q["weights"], q["bits"], q["method"], q["block_size"]) == ("int8", 8, "MatMulNBits", 128)
        assert q["source_onnx_sha256"] == meta["source"]["onnx_sha256"]


@pytest.mark.parametrize("case_id", ["acme/0", "acme/1", "acme/4"])
def test_the_adapter_answers_like_the_python_loop_on_the_same_graph(
    gateway: Gateway, int8_dir: Path, case_id: str
) -> None:
    case = next(c for c in GOLDEN["cases"] if c["id"] == case_id)
    r = httpx.post(
        gateway.url + "/v1/completions",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"model": "pirate", "prompt": case["prompt"], "temperature": 0, "max_tokens": 32,
              "ignore_eos": True, "return_token_ids": True},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    got = r.json()["choices"][0]["token_ids"]
    want = OrtBloom(int8_dir, threads=1).greedy([(load_prefix(FIXTURES / "adapters" / "acme"), case["prompt_ids"])],
                                                32)[0]
    assert got == want
