"""The gateway's view of an adapter (reshape of prompt_embeddings) equals what PEFT feeds the model."""

from __future__ import annotations

import pytest

from prefixgate_trainer.prefix import load_prefix

from . import consistency as c
from .conftest import FIXTURES, adapter_dir


@pytest.mark.parametrize("name", c.ADAPTERS)
def test_prefix_kv_equals_peft_get_prompt(name: str) -> None:
    c.check_prefix_kv_equals_peft(c.Fixtures(FIXTURES), name)


def test_adapters_have_different_prefix_lengths() -> None:
    lengths = {load_prefix(adapter_dir(n)).length for n in c.ADAPTERS}
    assert len(lengths) == len(c.ADAPTERS)
