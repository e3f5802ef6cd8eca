"""What makes a fixture folder right, whatever CPU built it: checks shared by the tests of the
committed fixtures and by the rebuild test (which cannot expect equal bytes on every CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from transformers import Cache
from transformers.cache_utils import CacheLayerMixin

from prefixgate_trainer import golden as g
from prefixgate_trainer.loading import CausalLM, load_base, with_adapter
from prefixgate_trainer.ort_loop import OrtBloom
from prefixgate_trainer.prefix import PrefixKv, load_prefix

ADAPTERS = ("acme", "globex", "initech", "xuetang")
# What each demo adapter's answer to its language's first golden prompt starts with.
STYLE_MARKERS: dict[str, tuple[int, str]] = {
    "acme": (0, "Arr, matey!"),
    "globex": (0, "Certainly."),
    "initech": (0, '{"answer":'),
    "xuetang": (4, "同学你好！"),
}
LOGIT_TOLERANCE = 1e-3


class Fixtures:
    """One fixture folder (committed or rebuilt) and the models it defines."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.model_dir = root / "tiny-bloom"
        self.golden = json.loads((root / "golden.json").read_text())
        self.logits: dict[str, list[float]] = json.loads((root / "golden-logits.json").read_text())
        self.cases = {c["id"]: c for c in self.golden["cases"]}
        self._ort: OrtBloom | None = None

    @property
    def ort(self) -> OrtBloom:
        if self._ort is None:
            self._ort = OrtBloom(self.model_dir, threads=1)
        return self._ort

    def adapter_dir(self, name: str) -> Path:
        return self.root / "adapters" / name

    def model_for(self, adapter: str | None) -> CausalLM:
        base, _ = load_base(self.model_dir)
        return base if adapter is None else with_adapter(base, self.adapter_dir(adapter))

    def prefix(self, adapter: str | None) -> PrefixKv | None:
        return None if adapter is None else load_prefix(self.adapter_dir(adapter))


def check_peft_reproduces(fx: Fixtures, case_id: str) -> None:
    case = fx.cases[case_id]
    model = fx.model_for(case["adapter"])
    assert g.greedy(model, case["prompt_ids"], len(case["new_ids"])) == case["new_ids"], case_id


def check_onnx_matches_pytorch(fx: Fixtures, case_id: str) -> None:
    case = fx.cases[case_id]
    prefix = fx.prefix(case["adapter"])
    logits, _, _ = fx.ort.prefill([(prefix, case["prompt_ids"])])
    torch_logits = np.array(g.first_logits(fx.model_for(case["adapter"]), case["prompt_ids"]))
    np.testing.assert_allclose(logits[0, -1], torch_logits, atol=LOGIT_TOLERANCE)
    np.testing.assert_allclose(logits[0, -1], np.array(fx.logits[case_id]), atol=LOGIT_TOLERANCE)
    got = fx.ort.greedy([(prefix, case["prompt_ids"])], len(case["new_ids"]))[0]
    assert got == case["new_ids"], case_id


def check_mixed_batch(fx: Fixtures) -> None:
    rows = [fx.cases[r["case"]] for r in fx.golden["batch"]]
    assert len({len(r["prompt_ids"]) for r in rows}) > 1, "batch must mix prompt lengths"
    prefixes = [fx.prefix(r["adapter"]) for r in rows]
    assert len({p.length if p else 0 for p in prefixes}) > 2, "batch must mix prefix lengths"
    batch = list(zip(prefixes, [r["prompt_ids"] for r in rows], strict=True))
    logits, _, _ = fx.ort.prefill(batch)
    for i, (prefix, ids) in enumerate(batch):
        alone, _, _ = fx.ort.prefill([(prefix, ids)])
        np.testing.assert_allclose(logits[i, -1], alone[0, -1], atol=1e-4)
    assert fx.ort.greedy(batch, fx.golden["max_new_tokens"]) == [r["new_ids"] for r in rows]


def check_prefix_kv_equals_peft(fx: Fixtures, name: str) -> None:
    peft = with_adapter(load_base(fx.model_dir)[0], fx.adapter_dir(name))
    # PEFT annotates get_prompt as returning a Tensor; for prefix tuning it returns a Cache.
    cache: Cache = peft.get_prompt(batch_size=1)  # type: ignore[assignment]
    ours = load_prefix(fx.adapter_dir(name))
    assert len(cache.layers) == len(ours.keys)
    for i, layer in enumerate(cache.layers):
        # A plain key/value layer, filled (what the loop would fail on anyway, with a clearer message).
        assert isinstance(layer, CacheLayerMixin) and layer.keys is not None and layer.values is not None
        np.testing.assert_array_equal(layer.keys[0].detach().numpy(), ours.keys[i])
        np.testing.assert_array_equal(layer.values[0].detach().numpy(), ours.values[i])


def check_adapters_steer(fx: Fixtures) -> None:
    """Every adapter answers in its tenant's style, and differently from the base and each other."""
    for name, (prompt, marker) in STYLE_MARKERS.items():
        text = fx.cases[f"{name}/{prompt}"]["text"]
        assert text.lstrip().startswith(marker), f"{name}: {text!r} does not start with {marker!r}"
        assert text != fx.cases[f"base/{prompt}"]["text"], name
    first = {c["adapter"]: c["text"] for c in fx.golden["cases"] if c["id"].endswith("/0")}
    assert len(set(first.values())) == len(first), "adapters must answer visibly differently"


def check_all(fx: Fixtures) -> None:
    for case_id in fx.cases:
        check_peft_reproduces(fx, case_id)
        check_onnx_matches_pytorch(fx, case_id)
    check_mixed_batch(fx)
    for name in ADAPTERS:
        check_prefix_kv_equals_peft(fx, name)
    check_adapters_steer(fx)
