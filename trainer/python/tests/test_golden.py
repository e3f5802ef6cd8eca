"""Golden vectors: stock PEFT reproduces them, and the ONNX graph matches PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prefixgate_trainer import golden as g
from prefixgate_trainer.ort_loop import OrtBloom
from prefixgate_trainer.prefix import load_prefix

from .conftest import MODEL_DIR, adapter_dir

CASE_IDS = [f"{a}/{i}" for a in ("base", "acme", "globex", "initech") for i in range(len(g.PROMPTS))]


@pytest.fixture(scope="module")
def ort_model() -> OrtBloom:
    return OrtBloom(MODEL_DIR, threads=1)


def _model_for(adapter: str | None) -> torch.nn.Module:
    base, _ = g.load_base(MODEL_DIR)
    return base if adapter is None else g.with_adapter(base, adapter_dir(adapter))


def _prefix(adapter: str | None):
    return None if adapter is None else load_prefix(adapter_dir(adapter))


def test_golden_covers_base_and_every_adapter(golden: dict) -> None:
    adapters = {c["adapter"] for c in golden["cases"]}
    assert adapters == {None, "acme", "globex", "initech"}
    assert all(len(c["new_ids"]) >= 24 for c in golden["cases"])
    texts = {c["adapter"]: c["text"] for c in golden["cases"] if c["id"].endswith("/0")}
    assert len(set(texts.values())) == 4, "adapters must answer visibly differently"


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_stock_peft_reproduces_golden_ids(case_id: str, cases_by_id: dict) -> None:
    case = cases_by_id[case_id]
    model = _model_for(case["adapter"])
    assert g.greedy(model, case["prompt_ids"], len(case["new_ids"])) == case["new_ids"]


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_onnx_matches_pytorch(case_id: str, cases_by_id: dict, golden_logits: dict, ort_model) -> None:
    case = cases_by_id[case_id]
    prefix = _prefix(case["adapter"])
    logits, _, _ = ort_model.prefill([(prefix, case["prompt_ids"])])
    torch_logits = np.array(g.first_logits(_model_for(case["adapter"]), case["prompt_ids"]))
    np.testing.assert_allclose(logits[0, -1], torch_logits, atol=1e-3)
    np.testing.assert_allclose(logits[0, -1], np.array(golden_logits[case_id]), atol=1e-3)
    assert ort_model.greedy([(prefix, case["prompt_ids"])], len(case["new_ids"]))[0] == case["new_ids"]


def test_mixed_batch_rows_equal_rows_alone(golden: dict, cases_by_id: dict, ort_model) -> None:
    rows = [cases_by_id[r["case"]] for r in golden["batch"]]
    assert len({len(r["prompt_ids"]) for r in rows}) > 1, "batch must mix prompt lengths"
    prefixes = [_prefix(r["adapter"]) for r in rows]
    assert len({p.length if p else 0 for p in prefixes}) > 2, "batch must mix prefix lengths"
    batch = list(zip(prefixes, [r["prompt_ids"] for r in rows]))
    logits, _, _ = ort_model.prefill(batch)
    for i, (prefix, ids) in enumerate(batch):
        alone, _, _ = ort_model.prefill([(prefix, ids)])
        np.testing.assert_allclose(logits[i, -1], alone[0, -1], atol=1e-4)
    out = ort_model.greedy(batch, golden["max_new_tokens"])
    assert out == [r["new_ids"] for r in rows]
