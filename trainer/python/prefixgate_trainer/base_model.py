"""The demo base model: a small BLOOM, briefly pre-trained so its text is varied, then frozen."""

from __future__ import annotations

import random

import torch
from tokenizers import Tokenizer
from transformers import BloomConfig, BloomForCausalLM

from .tokenizer import BOS, EOS, PAD, UNK


def bloom_config(vocab_size: int, hidden: int, n_layer: int, n_head: int) -> BloomConfig:
    # unk_token_id and torch_dtype are not fields of the config dataclass; PretrainedConfig takes them
    # through **kwargs at run time, which its dataclass_transform signature does not show.
    return BloomConfig(  # type: ignore[call-arg]
        vocab_size=vocab_size,
        hidden_size=hidden,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
        unk_token_id=UNK,
        # A wider init than the 0.02 default: a random tiny BLOOM with 0.02 repeats one token forever.
        initializer_range=0.08,
        torch_dtype="float32",
    )


def new_model(config: BloomConfig, seed: int) -> BloomForCausalLM:
    torch.manual_seed(seed)
    model: BloomForCausalLM = BloomForCausalLM(config).float()
    return model


def pretrain(
    model: BloomForCausalLM,
    tok: Tokenizer,
    texts: list[str],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    max_len: int,
    seed: int,
    log_every: int = 100,
) -> list[float]:
    """Causal-LM pre-training on a packed stream of documents, so text follows an eos too.

    Without packing a tiny model learns that nothing follows eos and repeats it forever, which makes
    golden continuations past eos meaningless.
    """
    rng = random.Random(seed)
    torch.manual_seed(seed)
    stream = [i for t in texts for i in tok.encode(t).ids]
    optim = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: min(1.0, (s + 1) / 50) * max(0.05, 1 - s / steps)
    )
    model.train()
    losses = []
    for step in range(steps):
        starts = [rng.randrange(len(stream) - max_len) for _ in range(batch_size)]
        ids = torch.tensor([stream[s : s + max_len] for s in starts])
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        sched.step()
        optim.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(f"pretrain step {step + 1}/{steps} loss {sum(losses[-log_every:]) / log_every:.3f}")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return losses
