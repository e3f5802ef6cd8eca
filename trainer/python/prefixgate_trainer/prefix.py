"""Prefix KV from PEFT's saved files, computed the way the gateway does it (numpy, no PEFT code)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file


@dataclass(frozen=True)
class PrefixKv:
    """Per-layer prefix: keys[i] and values[i] are [n_head, P, head_dim] float32."""

    keys: list[np.ndarray]
    values: list[np.ndarray]

    @property
    def length(self) -> int:
        return int(self.keys[0].shape[1])


def load_prefix(adapter_dir: Path) -> PrefixKv:
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    if cfg["peft_type"] != "PREFIX_TUNING":
        raise ValueError(f"peft_type {cfg['peft_type']!r} is not PREFIX_TUNING")
    emb = load_file(str(adapter_dir / "adapter_model.safetensors"))["prompt_embeddings"]
    p, layers, heads, dim = (
        cfg["num_virtual_tokens"], cfg["num_layers"], cfg["num_attention_heads"], cfg["token_dim"],
    )
    if emb.shape != (p, 2 * layers * dim):
        raise ValueError(f"prompt_embeddings shape {emb.shape} != {(p, 2 * layers * dim)}")
    kv = emb.astype(np.float32).reshape(p, 2 * layers, heads, dim // heads).transpose(1, 2, 0, 3)
    return PrefixKv(
        keys=[np.ascontiguousarray(kv[2 * i]) for i in range(layers)],
        values=[np.ascontiguousarray(kv[2 * i + 1]) for i in range(layers)],
    )
