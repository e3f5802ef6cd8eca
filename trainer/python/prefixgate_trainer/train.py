"""PEFT prefix-tuning with the tutorial's recipe, on alpaca-style instruction records."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftModel, PrefixTuningConfig, TaskType, get_peft_model
from transformers import BloomForCausalLM, PreTrainedTokenizerFast

from .corpus import Record, prompt_of

MAX_LENGTH = 256


# Upper bounds, the same as deploy/schemas/retrain-request.schema.json (tests/test_job.py checks).
MAXIMUMS: dict[str, float] = {
    "num_virtual_tokens": 512, "epochs": 100, "max_steps": 100_000, "batch_size": 64,
    "grad_accum": 64,
}


@dataclass(frozen=True)
class TrainParams:
    num_virtual_tokens: int = 8
    epochs: float = 1.0
    max_steps: int = 0  # optimizer steps; 0 means derive from epochs
    batch_size: int = 1
    grad_accum: int = 8
    lr: float = 1e-2
    seed: int = 0

    def __post_init__(self) -> None:
        for name, top in MAXIMUMS.items():
            if getattr(self, name) > top:
                raise ValueError(f"{name} {getattr(self, name)} is over the maximum of {top:g}")
        if not 1 <= self.num_virtual_tokens <= 512:
            raise ValueError(f"num_virtual_tokens {self.num_virtual_tokens} not in [1, 512]")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("batch_size and grad_accum must be >= 1")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ValueError("either epochs or max_steps must be positive")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr {self.lr} not in (0, 1)")


def encode_record(tok: PreTrainedTokenizerFast, r: Record) -> tuple[list[int], list[int]]:
    """Prompt + ' response' + eos, truncated to MAX_LENGTH; labels -100 on the prompt."""
    prompt = tok(prompt_of(r.instruction, r.input), add_special_tokens=False)["input_ids"]
    answer = tok(" " + r.output, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids = (prompt + answer)[:MAX_LENGTH]
    labels = ([-100] * len(prompt) + answer)[:MAX_LENGTH]
    return ids, labels


def train_prefix(
    base: BloomForCausalLM,
    tok: PreTrainedTokenizerFast,
    records: list[Record],
    params: TrainParams,
    progress: Callable[[int, int, float], None] | None = None,
) -> PeftModel:
    """Trains a prefix adapter; `progress(step, total, loss)` is called after each optimizer step."""
    torch.manual_seed(params.seed)
    rng = random.Random(params.seed)
    config = PrefixTuningConfig(
        task_type=TaskType.CAUSAL_LM,
        num_virtual_tokens=params.num_virtual_tokens,
        prefix_projection=True,
    )
    model = get_peft_model(base, config)
    examples = [encode_record(tok, r) for r in records]
    per_step = params.batch_size * params.grad_accum
    total = params.max_steps or max(1, int(len(examples) * params.epochs) // per_step)
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=params.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: max(0.0, 1 - s / total))
    model.train()
    order: list[int] = []
    for step in range(total):
        running = 0.0
        for _ in range(params.grad_accum):
            batch = []
            for _ in range(params.batch_size):
                if not order:
                    order = list(range(len(examples)))
                    rng.shuffle(order)
                batch.append(examples[order.pop()])
            loss = _batch_loss(model, batch, tok.pad_token_id) / params.grad_accum
            loss.backward()
            running += loss.item()
        optim.step()
        sched.step()
        optim.zero_grad(set_to_none=True)
        if progress:
            progress(step + 1, total, running)
    model.eval()
    return model


def _batch_loss(model: torch.nn.Module, batch: list[tuple[list[int], list[int]]], pad: int) -> torch.Tensor:
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (x, y) in enumerate(batch):
        ids[row, : len(x)] = torch.tensor(x)
        labels[row, : len(y)] = torch.tensor(y)
        mask[row, : len(x)] = 1
    loss: torch.Tensor = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    return loss


def mean_loss(model: torch.nn.Module, tok: PreTrainedTokenizerFast, records: list[Record]) -> float:
    """Mean answer-token loss over records (for base-vs-adapter eval metrics)."""
    with torch.no_grad():
        losses = [_batch_loss(model, [encode_record(tok, r)], tok.pad_token_id).item() for r in records]
    return sum(losses) / len(losses)


def save_adapter(model: PeftModel, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
