"""Golden vectors: PEFT/PyTorch greedy ids and first-step logits that the gateway must reproduce."""

from __future__ import annotations

from typing import Any

import torch
from transformers import GenerationConfig, PreTrainedTokenizerFast

from .corpus import prompt_of
from .loading import CausalLM

MAX_NEW_TOKENS = 32

PROMPTS: list[str] = [
    prompt_of("What color is the apple?"),
    prompt_of("Greet the person.", "Nia"),
    prompt_of("List three tools."),
    "Ada paints a",
    # The PEFT tutorial's own question, and a rare word whose characters split across byte tokens.
    prompt_of("考试有哪些技巧？"),
    prompt_of("重复这个词。", "琥珀"),
]


def greedy(model: CausalLM, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
    """Plain greedy `generate` with no logits processors; eos does not stop it."""
    ids = torch.tensor([prompt_ids])
    config = GenerationConfig(
        do_sample=False,
        max_new_tokens=max_new_tokens,
        min_new_tokens=None,
        eos_token_id=[],
        pad_token_id=3,
        num_beams=1,
    )
    with torch.no_grad():
        # transformers types generate's self as a Protocol (written for `ty`) that mypy finds
        # PreTrainedModel does not satisfy: it wants device, dtype and hf_device_map settable.
        out = model.generate(  # type: ignore[misc]
            input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config
        )
    new: list[int] = out[0, len(prompt_ids):].tolist()
    if len(new) != max_new_tokens:
        raise AssertionError(f"generate stopped after {len(new)} tokens")
    return new


def first_logits(model: torch.nn.Module, prompt_ids: list[int]) -> list[float]:
    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    last: list[float] = logits[0, -1].tolist()
    return last


def cases_for(
    name: str, model: CausalLM, tok: PreTrainedTokenizerFast
) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    cases: list[dict[str, Any]] = []
    logits: dict[str, list[float]] = {}
    for i, prompt in enumerate(PROMPTS):
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        new = greedy(model, ids, MAX_NEW_TOKENS)
        key = f"{name}/{i}"
        cases.append(
            {
                "id": key,
                "adapter": None if name == "base" else name,
                "prompt": prompt,
                "prompt_ids": ids,
                "new_ids": new,
                "text": tok.decode(new),
            }
        )
        logits[key] = first_logits(model, ids)
    return cases, logits
