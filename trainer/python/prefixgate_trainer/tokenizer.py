"""A byte-level BPE tokenizer shaped like BLOOM's (same special ids, no BOS added on encode)."""

from __future__ import annotations

import random
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]  # ids 0..3, as in BLOOM
UNK, BOS, EOS, PAD = 0, 1, 2, 3

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "st", "tr"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
_ACCENTED = ["café", "naïve", "über", "señor", "façade", "crème", "smörgås", "jalapeño", "Zürich"]


def pseudo_words(seed: int, n: int) -> list[str]:
    """Made-up words that give the BPE enough distinct material to reach a BLOOM-like vocab size."""
    rng = random.Random(seed)
    return [
        "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(rng.randrange(1, 4)))
        for _ in range(n)
    ]


def lexicon_texts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    words = pseudo_words(seed, 6000) + _ACCENTED
    return [" ".join(rng.choice(words) for _ in range(12)) for _ in range(n)]


def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if tok.token_to_id("</s>") != EOS or tok.token_to_id("<pad>") != PAD:
        raise AssertionError("special tokens did not get BLOOM's ids")
    return tok


def save(tok: Tokenizer, model_dir: Path) -> None:
    """tokenizer.json plus the small HF side files, so PreTrainedTokenizerFast loads the folder."""
    import json

    tok.save(str(model_dir / "tokenizer.json"))
    (model_dir / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "unk_token": "<unk>",
                "bos_token": "<s>",
                "eos_token": "</s>",
                "pad_token": "<pad>",
                "padding_side": "left",
                "add_bos_token": False,
                "model_max_length": 1024,
            },
            indent=2,
        )
        + "\n"
    )
