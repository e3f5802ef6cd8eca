"""logprobs and top_logprobs from the gateway equal PyTorch's log-softmax of the model's logits,
for the base model and for a PEFT prefix adapter, chat-free (raw prompt) and through chat."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import torch

from prefixgate_trainer.loading import load_base, with_adapter

from .gateway import ROOT, Gateway, require_jar

FIXTURES = ROOT / "trainer" / "fixtures"
PROMPT = "Ada paints a"
TOP = 5


def _reference(model: Any, prompt_ids: list[int], new_ids: list[int]) -> torch.Tensor:
    """log_softmax of the logits at every generated position, (len(new_ids), vocab)."""
    ids = torch.tensor([prompt_ids + new_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    start = len(prompt_ids) - 1
    return torch.log_softmax(logits[start : start + len(new_ids)].float(), dim=-1)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Any:
    require_jar()
    g = Gateway(tmp_path_factory.mktemp("logprobs")).start()
    yield g
    g.stop()


@pytest.mark.parametrize("model_name,adapter", [("base", None), ("pirate", "acme")])
def test_completion_logprobs_equal_torch_log_softmax(gateway: Gateway, model_name: str, adapter: str | None) -> None:
    r = httpx.post(
        gateway.url + "/v1/completions", headers={"Authorization": "Bearer pg-demo-acme"}, timeout=60,
        json={"model": model_name, "prompt": PROMPT, "temperature": 0, "max_tokens": 12, "ignore_eos": True,
              "return_token_ids": True, "logprobs": TOP},
    )
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    new_ids: list[int] = choice["token_ids"]
    lp = choice["logprobs"]
    base, tok = load_base(FIXTURES / "tiny-bloom")
    model = base if adapter is None else with_adapter(base, FIXTURES / "adapters" / adapter)
    prompt_ids: list[int] = tok(PROMPT).input_ids
    ref = _reference(model, prompt_ids, new_ids)
    worst = 0.0
    for i, token in enumerate(new_ids):
        chosen = float(ref[i, token])
        worst = max(worst, abs(lp["token_logprobs"][i] - chosen))
        # The alternatives: the same values as torch's top 5 at that position (ids may swap on ties).
        want = sorted(torch.topk(ref[i], TOP).values.tolist(), reverse=True)
        got = sorted(lp["top_logprobs"][i].values(), reverse=True)
        assert len(got) == TOP, lp["top_logprobs"][i]
        for g, w in zip(got, want, strict=True):
            worst = max(worst, abs(g - w))
    print(f"[logprobs] {model_name}: largest |gateway - torch| = {worst:.2e} over {len(new_ids)} positions")
    assert worst < 1e-3, worst


def test_chat_logprobs_streamed_equal_not_streamed(gateway: Gateway) -> None:
    body = {"model": "pirate", "temperature": 0, "max_tokens": 8, "logprobs": True, "top_logprobs": 2,
            "messages": [{"role": "user", "content": "Hi"}]}
    headers = {"Authorization": "Bearer pg-demo-acme"}
    full = httpx.post(gateway.url + "/v1/chat/completions", headers=headers, json=body, timeout=60).json()
    entries = full["choices"][0]["logprobs"]["content"]
    text = bytes(b for e in entries for b in e["bytes"]).decode("utf-8", errors="replace")
    assert text == full["choices"][0]["message"]["content"]
    streamed: list[float] = []
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", headers=headers,
                      json={**body, "stream": True}, timeout=60) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                choice = json.loads(line[6:])["choices"]
                if choice and choice[0].get("logprobs"):
                    streamed += [e["logprob"] for e in choice[0]["logprobs"]["content"]]
    assert streamed == [e["logprob"] for e in entries]
