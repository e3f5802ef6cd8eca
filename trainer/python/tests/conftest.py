from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
MODEL_DIR = FIXTURES / "tiny-bloom"

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def golden() -> dict:
    return json.loads((FIXTURES / "golden.json").read_text())


@pytest.fixture(scope="session")
def golden_logits() -> dict[str, list[float]]:
    return json.loads((FIXTURES / "golden-logits.json").read_text())


@pytest.fixture(scope="session")
def cases_by_id(golden: dict) -> dict[str, dict]:
    return {c["id"]: c for c in golden["cases"]}


def adapter_dir(name: str) -> Path:
    return FIXTURES / "adapters" / name
