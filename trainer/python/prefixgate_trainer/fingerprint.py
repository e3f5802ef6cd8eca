"""The base-model fingerprint carried by adapter events (same definition as the gateway's
ModelFingerprint): architecture shape plus the exact tokenizer, not the weights."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def model_fingerprint(model_dir: Path) -> str:
    cfg = json.loads((model_dir / "config.json").read_text())
    tokenizer = hashlib.sha256((model_dir / "tokenizer.json").read_bytes()).hexdigest()
    text = (
        "prefixgate-fingerprint-v1\n"
        f"bloom {cfg['n_layer']} {cfg['n_head']} {cfg['hidden_size']} {cfg['vocab_size']}\n"
        f"{tokenizer}\n"
    )
    return hashlib.sha256(text.encode()).hexdigest()
