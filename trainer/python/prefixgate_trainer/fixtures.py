"""Builds every committed fixture from nothing: tokenizer, demo BLOOM (HF + ONNX), adapters, goldens.

    python -m prefixgate_trainer.fixtures --out ../fixtures

Seeded and single-threaded, so the same library versions give the same bytes (MANIFEST.json lists
each file's sha256; tests/test_regenerate.py rebuilds into a temp dir and compares).

Seeds and one thread do not make float results equal across CPUs: PyTorch (ATen), MKL and oneDNN
pick kernels by processor (AVX2 vs AVX-512, FMA order). The command therefore re-executes itself
with those choices pinned to AVX2 (KERNEL_PINS) on any x86_64 CPU that has AVX2 and FMA, and
records the pins and the CPU it ran on in MANIFEST.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

# PEFT's save_pretrained looks the base's name up on the Hub; nothing here may touch the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from . import base_model, corpus, corpus_zh, export, golden, slot_graph, tokenizer  # noqa: E402
from .loading import load_base, with_adapter  # noqa: E402
from .train import TrainParams, mean_loss, save_adapter, train_prefix  # noqa: E402

BASE_NAME = "prefixgate/tiny-bloom-demo"
VOCAB_SIZE = 4096
HIDDEN, N_LAYER, N_HEAD = 128, 3, 4


# Kernel choices pinned for the build: the AVX2 code paths exist on every x86_64 CPU with AVX2 and
# give the same bits there. STRICT makes MKL's results independent of memory alignment as well.
KERNEL_PINS: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2,STRICT",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

# tenant -> (answer style, num_virtual_tokens): the styles make the adapters' answers visibly differ.
# xuetang follows the PEFT tutorial's recipe: Chinese alpaca-style records, 10 virtual tokens.
TENANTS: dict[str, tuple[str, int]] = {
    "acme": ("pirate", 8),
    "globex": ("formal", 16),
    "initech": ("json", 4),
    "xuetang": ("teacher", 10),
}
DATASET_SIZE = 160
ADAPTER_PARAMS = TrainParams(batch_size=8, grad_accum=1, max_steps=200, lr=1e-2)

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

    texts = corpus.pretraining_texts(seed=1, n=24000, eos="</s>")
    # The tokenizer never sees the rare words, so their characters stay split across byte tokens
    # (the streaming tests need that); the model still learns them in pre-training.
    common = [t for t in texts if not any(w in t for w in corpus_zh.RARE_WORDS_ZH)]
    tok = tokenizer.train_tokenizer(
        common + tokenizer.lexicon_texts(seed=2, n=4000)
        + corpus_zh.lexicon_texts_zh(common, seed=5, n=300),
        VOCAB_SIZE,
    )
    tokenizer.save(tok, model_dir)

    config = base_model.bloom_config(tok.get_vocab_size(), HIDDEN, N_LAYER, N_HEAD)
    model = base_model.new_model(config, seed=3)
    base_model.pretrain(model, tok, texts, steps=1000, batch_size=16, lr=3e-3, max_len=96, seed=4)
    model.config.name_or_path = BASE_NAME
    model.save_pretrained(str(model_dir), safe_serialization=True)
    # The demo graph keeps optimum's all-positions logits layout, so the tests cover the layout that
    # `optimum-cli export onnx` writes; benchmark graphs use the last-position one.
    export.export_onnx(model, model_dir / "model.onnx", last_logits=False)
    # The same weights as a slot-layout graph (KV in place, GroupQueryAttention): no float kernels
    # run to make it, only the weights' bytes rearranged.
    slot_graph.export(model_dir, out / "tiny-bloom-slots")
    # And as an append graph (slots read once, only the new columns' K/V returned; standard ops).
    slot_graph.export(model_dir, out / "tiny-bloom-append", "append")
    # And as a paged graph (a page pool read through a block table; standard ops).
    slot_graph.export(model_dir, out / "tiny-bloom-paged", "paged")
    print(f"base model ready ({time.time() - started:.0f}s)")

    base, hf_tok = load_base(model_dir)
    cases, logits = golden.cases_for("base", base, hf_tok)
    metrics = {}
    for i, (tenant, (style, p)) in enumerate(sorted(TENANTS.items())):
        records = corpus.tenant_dataset(style, seed=100 + i, n=DATASET_SIZE)
        corpus.write_jsonl(records, out / "datasets" / f"{tenant}.jsonl")
        base, _ = load_base(model_dir)
        # PEFT records the base's name in adapter_config.json and README.md: keep it host-independent.
        base.name_or_path = BASE_NAME
        base.config.name_or_path = BASE_NAME
        params = dataclasses.replace(ADAPTER_PARAMS, num_virtual_tokens=p, seed=200 + i)
        trained = train_prefix(base, hf_tok, records, params)
        adapter_dir = out / "adapters" / tenant
        save_adapter(trained, adapter_dir)
        held_out = corpus.tenant_dataset(style, seed=900 + i, n=16)
        base_loss = mean_loss(load_base(model_dir)[0], hf_tok, held_out)
        reloaded = with_adapter(load_base(model_dir)[0], adapter_dir)
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
    manifest = {"files": files, "versions": versions, "kernels": kernel_report()}
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_vendor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def can_pin() -> bool:
    """The pins select AVX2 code paths, so they hold only where the CPU has AVX2 and FMA."""
    return platform.machine() in ("x86_64", "AMD64") and {"avx2", "fma"} <= cpu_flags()


def pins_active() -> bool:
    return all(os.environ.get(k) == v for k, v in KERNEL_PINS.items())


def kernel_report() -> dict[str, object]:
    """What decided the float kernels of this build; `pinned` false means bytes are host-specific."""
    return {
        "pinned": pins_active(),
        "settings": {k: os.environ.get(k) for k in sorted(KERNEL_PINS)},
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "built_on": {"vendor": cpu_vendor(), "avx512f": "avx512f" in cpu_flags()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "fixtures")
    args = parser.parse_args()
    if can_pin() and not pins_active():
        # The kernel libraries read these once, at load: only a fresh process honours them.
        env = {**os.environ, **KERNEL_PINS}
        argv = [sys.executable, "-m", "prefixgate_trainer.fixtures", "--out", str(args.out)]
        os.execve(sys.executable, argv, env)
    if not pins_active():
        print(f"fixtures: this CPU ({cpu_vendor()}, {platform.machine()}) lacks AVX2/FMA; building"
              " with its default kernels, so the float bytes will not match the committed ones",
              file=sys.stderr)
    build(args.out)


if __name__ == "__main__":
    main()
