"""The training entry point the worker runs: loss goes down, files are stock PEFT, bad data is named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from peft import PeftModel

from prefixgate_trainer import corpus, golden
from prefixgate_trainer.fingerprint import model_fingerprint

from .conftest import MODEL_DIR


def _run(tmp: Path, dataset: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prefixgate_trainer.job", "--model-dir", str(MODEL_DIR), "--dataset",
         str(dataset), "--out", str(tmp / "out"), "--tenant", "t", "--adapter", "a", *extra],
        capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[1],
    )


def test_job_trains_stock_peft_files_and_reports_progress(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    corpus.write_jsonl(corpus.tenant_dataset("json", seed=7, n=40), data)
    r = _run(tmp_path, data, "--max-steps", "40", "--batch-size", "4", "--grad-accum", "1", "--request-id", "r1")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    progress = [x for x in lines if x["type"] == "progress"]
    assert [x["step"] for x in progress] == list(range(1, 41))
    assert sum(x["loss"] for x in progress[-5:]) < sum(x["loss"] for x in progress[:5]), "loss must decrease"
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["eval_loss_adapter"] < metrics["eval_loss_base"]
    event = json.loads((tmp_path / "out" / "event.json").read_text())
    assert event["requestId"] == "r1" and event["baseModel"]["fingerprint"] == model_fingerprint(MODEL_DIR)
    base, _ = golden.load_base(MODEL_DIR)
    PeftModel.from_pretrained(base, str(tmp_path / "out" / "adapter"))  # stock PEFT loads it


def test_same_request_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    corpus.write_jsonl(corpus.tenant_dataset("pirate", seed=8, n=16), data)
    digests = []
    for run in ("a", "b"):
        r = _run(tmp_path / run, data, "--max-steps", "3", "--batch-size", "2", "--grad-accum", "1")
        assert r.returncode == 0, r.stderr[-2000:]
        digests.append(json.loads((tmp_path / run / "out" / "event.json").read_text())["sha256"])
    assert digests[0] == digests[1]


def test_malformed_dataset_fails_with_the_line_number(tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": "b"}\n{oops\n')
    r = _run(tmp_path, data)
    assert r.returncode == 2
    assert "dataset: line 3: invalid JSON" in r.stderr
