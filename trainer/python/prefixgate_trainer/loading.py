"""Loading a saved base model and its PEFT adapters with stock transformers and PEFT.

Shared by the retraining job, the fixture build, the PyTorch benchmark and the tests, so every one of
them sees the same float32 model in eval mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeAlias

import torch
from peft import PeftModel
from transformers import BloomForCausalLM, PreTrainedTokenizerFast

# What load_base or with_adapter returns: a causal LM with `generate`, with or without a prefix.
CausalLM: TypeAlias = BloomForCausalLM | PeftModel


def load_base(model_dir: Path) -> tuple[BloomForCausalLM, PreTrainedTokenizerFast]:
    model = BloomForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    tok = PreTrainedTokenizerFast.from_pretrained(str(model_dir))
    return model, tok


def with_adapter(base: BloomForCausalLM, adapter_dir: Path) -> PeftModel:
    return PeftModel.from_pretrained(base, str(adapter_dir)).eval()
