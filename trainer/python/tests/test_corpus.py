from __future__ import annotations

from pathlib import Path

import pytest

from prefixgate_trainer import corpus, tokenizer

from .conftest import MODEL_DIR


def test_prompt_format_matches_tutorial() -> None:
    assert corpus.prompt_of("Say hi.", "") == "Human: Say hi.\n\nAssistant:"
    assert corpus.prompt_of("Greet.", "Ada") == "Human: Greet.\nAda\n\nAssistant:"


def test_generation_is_deterministic() -> None:
    assert corpus.tenant_dataset("pirate", 5, 20) == corpus.tenant_dataset("pirate", 5, 20)
    assert corpus.pretraining_texts(1, 50, "</s>") == corpus.pretraining_texts(1, 50, "</s>")


def test_jsonl_round_trip(tmp_path: Path) -> None:
    records = corpus.tenant_dataset("json", 1, 10)
    corpus.write_jsonl(records, tmp_path / "d.jsonl")
    assert corpus.read_jsonl(tmp_path / "d.jsonl") == records


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"instruction": "a", "output": "b"}\nnot json\n', "line 2: invalid JSON"),
        ('{"instruction": "a", "output": "b"}\n{"instruction": "", "output": "b"}\n', "line 2: 'instruction'"),
        ('[1, 2]\n', "line 1: expected a JSON object"),
        ('{"instruction": "a", "output": "b", "input": 3}\n', "line 1: 'input'"),
        ("\n\n", "no records"),
    ],
)
def test_bad_jsonl_names_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        corpus.read_jsonl(path)


def test_tokenizer_has_bloom_specials_and_vocab_size() -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    assert [tok.token_to_id(s) for s in tokenizer.SPECIALS] == [0, 1, 2, 3]
    assert 4000 <= tok.get_vocab_size() <= 8000
    assert tok.encode("Hello").ids[0] != tokenizer.BOS, "BLOOM adds no BOS on encode"
    text = "café über jalapeño"
    assert tok.decode(tok.encode(text).ids) == text
