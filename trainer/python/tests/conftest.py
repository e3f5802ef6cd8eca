from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
MODEL_DIR = FIXTURES / "tiny-bloom"

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def golden() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / "golden.json").read_text())
    return doc


@pytest.fixture(scope="session")
def golden_logits() -> dict[str, list[float]]:
    logits: dict[str, list[float]] = json.loads((FIXTURES / "golden-logits.json").read_text())
    return logits


@pytest.fixture(scope="session")
def cases_by_id(golden: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in golden["cases"]}


def adapter_dir(name: str) -> Path:
    return FIXTURES / "adapters" / name


@pytest.fixture(scope="session")
def rebuilt_fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture command's output, built once per session (minutes).

    deploy/local/test starts the build in the background while Maven runs and hands its folder over
    in PREFIXGATE_REBUILT_FIXTURES; without it the build runs here, in a fresh process so that the
    command's kernel pins take effect.
    """
    given = os.environ.get("PREFIXGATE_REBUILT_FIXTURES")
    if given:
        out = Path(given)
        log = out.with_name(out.name + ".log")
    else:
        out = tmp_path_factory.mktemp("rebuild") / "fx"
        log = out.with_name("build.log")
        with log.open("w") as f:
            subprocess.run([sys.executable, "-m", "prefixgate_trainer.fixtures", "--out", str(out)],
                           cwd=Path(__file__).resolve().parents[1], stdout=f, stderr=subprocess.STDOUT,
                           check=False)
    if not (out / "MANIFEST.json").exists():
        tail = log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"
        pytest.fail(f"the fixture command did not produce {out}:\n{tail}")
    return out
