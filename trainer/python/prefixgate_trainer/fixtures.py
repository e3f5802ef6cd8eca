"""Builds every committed fixture from nothing: tokenizer, demo BLOOM (HF + ONNX), adapters, goldens.

    python -m prefixgate_trainer.fixtures --out ../fixtures

Seeded and single-threaded, so the same library versions give the same bytes (MANIFEST.json lists
each file's sha256; tests/test_regenerate.py rebuilds into a temp dir and compares).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from pathlib import Path

import torch

from . import base_model, corpus, export, golden, tokenizer
from .train import TrainParams, mean_loss, save_adapter, train_prefix

BASE_NAME = "prefixgate/tiny-bloom-demo"
VOCAB_SIZE = 4096
HIDDEN, N_LAYER, N_HEAD = 128, 3, 4


# tenant -> (answer style, num_virtual_tokens): the styles make the adapters' answers visibly differ.
TENANTS: dict[str, tuple[str, int]] = {
    "acme": ("pirate", 8),
    "globex": ("formal", 16),
    "initech": ("json", 4),
}
DATASET_SIZE = 160
ADAPTER_PARAMS = dict(batch_size=8, grad_accum=1, max_steps=200, lr=1e-2)

# A batch mixing adapters, prefix lengths and prompt lengths; each row must equal its case alone.
BATCH_ROWS = ["acme/0", "globex/3", "base/1", "initech/2", "globex/1", "acme/3"]


def build(out: Path) -> None:
    """Builds into a scratch folder and swaps it in, so a failed build leaves the old fixtures."""
    scratch = out.with_name(out.name + ".building")
    if scratch.exists():
        shutil.rmtree(scratch)
    _build(scratch)
    if out.exists():
        shutil.rmtree(out)
    scratch.rename(out)
    print(f"fixtures written to {out}")


def _build(out: Path) -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    started = time.time()
    model_dir = out / "tiny-bloom"
    model_dir.mkdir(parents=True)

    texts = corpus.pretraining_texts(seed=1, n=20000, eos="</s>")
    tok = tokenizer.train_tokenizer(texts + tokenizer.lexicon_texts(seed=2, n=4000), VOCAB_SIZE)
    tokenizer.save(tok, model_dir)

    config = base_model.bloom_config(tok.get_vocab_size(), HIDDEN, N_LAYER, N_HEAD)
    model = base_model.new_model(config, seed=3)
    base_model.pretrain(model, tok, texts, steps=800, batch_size=16, lr=3e-3, max_len=96, seed=4)
    model.config.name_or_path = BASE_NAME
    model.save_pretrained(str(model_dir), safe_serialization=True)
    export.export_onnx(model, model_dir / "model.onnx")
    print(f"base model ready ({time.time() - started:.0f}s)")

    base, hf_tok = golden.load_base(model_dir)
    cases, logits = golden.cases_for("base", base, hf_tok)
    metrics = {}
    for i, (tenant, (style, p)) in enumerate(sorted(TENANTS.items())):
        records = corpus.tenant_dataset(style, seed=100 + i, n=DATASET_SIZE)
        corpus.write_jsonl(records, out / "datasets" / f"{tenant}.jsonl")
        base, _ = golden.load_base(model_dir)
        # PEFT records the base's name in adapter_config.json and README.md: keep it host-independent.
        base.name_or_path = BASE_NAME
        base.config.name_or_path = BASE_NAME
        params = TrainParams(num_virtual_tokens=p, seed=200 + i, **ADAPTER_PARAMS)
        trained = train_prefix(base, hf_tok, records, params)
        adapter_dir = out / "adapters" / tenant
        save_adapter(trained, adapter_dir)
        held_out = corpus.tenant_dataset(style, seed=900 + i, n=16)
        base_loss = mean_loss(golden.load_base(model_dir)[0], hf_tok, held_out)
        reloaded = golden.with_adapter(golden.load_base(model_dir)[0], adapter_dir)
        metrics[tenant] = {
            "num_virtual_tokens": p,
            "eval_loss_base": round(base_loss, 4),
            "eval_loss_adapter": round(mean_loss(reloaded, hf_tok, held_out), 4),
        }
        c, lg = golden.cases_for(tenant, reloaded, hf_tok)
        cases += c
        logits.update(lg)
        print(f"adapter {tenant} ready ({time.time() - started:.0f}s): {metrics[tenant]}")

    by_id = {c["id"]: c for c in cases}
    doc = {
        "description": (
            "Greedy PEFT/PyTorch generate() outputs for the demo model. new_ids are the first "
            f"{golden.MAX_NEW_TOKENS} tokens with eos NOT stopping generation (eos id 2); a server that "
            "stops at eos must return new_ids up to and including the first 2. prompt_ids are the "
            "tokenizer's ids for prompt (no special tokens added). batch lists case ids that, run "
            "together in one left-padded batch with their own prefixes, must each give their case's "
            "new_ids. First-step logits (the distribution of the first new token) are in "
            "golden-logits.json under the same case ids."
        ),
        "base_model": BASE_NAME,
        "max_new_tokens": golden.MAX_NEW_TOKENS,
        "eos_token_id": 2,
        "cases": cases,
        "batch": [{"case": cid, "adapter": by_id[cid]["adapter"]} for cid in BATCH_ROWS],
        "adapter_metrics": metrics,
    }
    (out / "golden.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    (out / "golden-logits.json").write_text(
        json.dumps({k: [float(f"{x:.6g}") for x in v] for k, v in logits.items()}) + "\n"
    )
    write_manifest(out)
    print(f"fixtures built in {time.time() - started:.0f}s")


def write_manifest(out: Path) -> None:
    files = {}
    for f in sorted(p for p in out.rglob("*") if p.is_file() and p.name != "MANIFEST.json"):
        data = f.read_bytes()
        files[f.relative_to(out).as_posix()] = {
            "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
        }
    versions = {}
    for lib in ("torch", "transformers", "peft", "tokenizers", "safetensors", "onnx", "onnxscript"):
        versions[lib] = __import__(lib).__version__
    manifest = {"files": files, "versions": versions}
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "fixtures")
    build(parser.parse_args().out)


if __name__ == "__main__":
    main()
