"""The training entry point the worker runs: loss goes down, files are stock PEFT, bad data is named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from peft import PeftModel

from prefixgate_trainer import corpus, job
from prefixgate_trainer.fingerprint import model_fingerprint
from prefixgate_trainer.loading import load_base

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
    # The base is named, never located: no path of this machine in what the adapter records.
    assert event["baseModel"]["name"] == MODEL_DIR.name
    assert event["peftConfig"]["base_model_name_or_path"] == MODEL_DIR.name
    assert metrics["held_out_records"] == 4 and len(metrics["samples"]) == 3
    assert metrics["gate"]["passed"] is True and event["activate"] == "always"
    base, _ = load_base(MODEL_DIR)
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


def test_held_out_split_is_seeded_and_disjoint() -> None:
    records = [corpus.Record(f"question {i}", "", f"answer {i}") for i in range(50)]
    train, held = job.split(records, seed=0)
    assert len(held) == 5 and len(train) == 45
    assert not {r.to_json() for r in held} & {r.to_json() for r in train}
    assert job.split(records, seed=0) == (train, held)
    assert held != records[-5:], "the held-out tenth is drawn, not the file's tail"
    assert job.split(records[:1], seed=0) == (records[:1], records[:1])
    many = [corpus.Record(f"q{i}", "", "a") for i in range(2000)]
    assert len(job.split(many, seed=0)[1]) == job.MAX_HELD_OUT


def test_gate_keeps_an_adapter_that_learned_too_little_inactive() -> None:
    passed = job.gate("gate", 2.0, 0.5, 0.2, None, False)
    assert passed["passed"] is True and "0.5000 vs base 2.0000" in str(passed["reason"])
    held = job.gate("gate", 2.0, 1.7, 0.2, None, False)
    assert held["passed"] is False and "not better than the base" in str(held["reason"])
    assert "1.7000" in str(held["reason"]) and "1.6000" in str(held["reason"])
    useless = job.gate("gate", 17.7, 7.2, 0.2, None, False)
    assert useless["passed"] is False and "learned too little" in str(useless["reason"])
    assert job.gate("gate", 17.7, 7.2, 0.2, None, False, max_eval_loss=8)["passed"] is True
    assert job.gate("always", 2.0, 3.0, 0.2, None, False)["passed"] is True
    assert job.gate("never", 2.0, 0.1, 0.2, None, False)["passed"] is False


def test_if_better_compares_with_the_active_version_on_the_same_held_out_records() -> None:
    worse = job.gate("if-better", 2.0, 0.5, 0.2, 0.55, True)
    assert worse["passed"] is False and "active version" in str(worse["reason"])
    assert job.gate("if-better", 2.0, 0.5, 0.2, 1.0, True)["passed"] is True
    other = job.gate("if-better", 2.0, 0.5, 0.2, 0.1, False)
    assert other["passed"] is True and "not compared" in str(other["reason"])


def test_hyper_parameter_maximums_agree_with_the_schema() -> None:
    from prefixgate_trainer.train import MAXIMUMS

    schema = json.loads((Path(__file__).resolve().parents[3] / "deploy" / "schemas"
                         / "retrain-request.schema.json").read_text())
    props = schema["properties"]["hyperParameters"]["properties"]
    names = {"numVirtualTokens": "num_virtual_tokens", "epochs": "epochs", "maxSteps": "max_steps",
             "batchSize": "batch_size", "gradAccum": "grad_accum"}
    assert {names[k]: v["maximum"] for k, v in props.items() if "maximum" in v} == MAXIMUMS


def test_a_job_over_the_maximums_fails_fast(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    corpus.write_jsonl(corpus.tenant_dataset("json", seed=7, n=8), data)
    r = _run(tmp_path, data, "--max-steps", "1000000")
    assert r.returncode == 2
    assert "hyper-parameters: max_steps 1000000 is over the maximum of 100000" in r.stderr
