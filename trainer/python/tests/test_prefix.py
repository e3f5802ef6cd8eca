"""The gateway's view of an adapter (reshape of prompt_embeddings) equals what PEFT feeds the model."""

from __future__ import annotations

import numpy as np
import pytest

from prefixgate_trainer import golden as g
from prefixgate_trainer.prefix import load_prefix

from .conftest import MODEL_DIR, adapter_dir


@pytest.mark.parametrize("name", ["acme", "globex", "initech"])
def test_prefix_kv_equals_peft_get_prompt(name: str) -> None:
    base, _ = g.load_base(MODEL_DIR)
    peft = g.with_adapter(base, adapter_dir(name))
    cache = peft.get_prompt(batch_size=1)
    ours = load_prefix(adapter_dir(name))
    assert len(cache.layers) == len(ours.keys)
    for i, layer in enumerate(cache.layers):
        np.testing.assert_array_equal(layer.keys[0].detach().numpy(), ours.keys[i])
        np.testing.assert_array_equal(layer.values[0].detach().numpy(), ours.values[i])


def test_adapters_have_different_prefix_lengths() -> None:
    lengths = {load_prefix(adapter_dir(n)).length for n in ("acme", "globex", "initech")}
    assert len(lengths) == 3
