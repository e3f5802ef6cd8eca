"""Golden vectors: PEFT/PyTorch greedy ids and first-step logits that the gateway must reproduce."""

from __future__ import annotations

import torch
from transformers import GenerationConfig, PreTrainedTokenizerFast

from .corpus import prompt_of

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


def greedy(model: torch.nn.Module, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
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
        out = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config
        )
    new = out[0, len(prompt_ids):].tolist()
    if len(new) != max_new_tokens:
        raise AssertionError(f"generate stopped after {len(new)} tokens")
    return new


def first_logits(model: torch.nn.Module, prompt_ids: list[int]) -> list[float]:
    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    return logits[0, -1].tolist()


def cases_for(
    name: str, model: torch.nn.Module, tok: PreTrainedTokenizerFast
) -> tuple[list[dict], dict[str, list[float]]]:
    cases, logits = [], {}
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
