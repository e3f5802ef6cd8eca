"""The official `openai` package against a real gateway (the packaged jar, demo profile).

Needs the gateway built (target/quarkus-app). deploy/local/test builds it first and sets
PREFIXGATE_SERVER_TESTS=1, which turns a missing jar into a failure instead of a skip.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .gateway import ROOT, Gateway, require_jar

GOLDEN = json.loads((ROOT / "trainer" / "fixtures" / "golden.json").read_text())


def _golden_text(case_id: str) -> str:
    case = next(c for c in GOLDEN["cases"] if c["id"] == case_id)
    text: str = case["text"].split("</s>")[0]
    return text


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_jar()
    gateway = Gateway(tmp_path_factory.mktemp("gw")).start()
    try:
        yield gateway.url
    finally:
        gateway.stop()


def test_openai_sdk_non_streaming(base_url: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=base_url + "/v1", api_key="pg-demo-acme")
    r = client.chat.completions.create(
        model="pirate", temperature=0, messages=[{"role": "user", "content": "What color is the apple?"}]
    )
    assert r.choices[0].message.content == _golden_text("acme/0")
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.completion_tokens > 0


def test_openai_sdk_streaming(base_url: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=base_url + "/v1", api_key="pg-demo-initech")
    stream = client.chat.completions.create(
        model="json", temperature=0, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "List three tools."}],
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text == _golden_text("initech/2")
    assert finish == "stop"
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_openai_sdk_errors(base_url: str) -> None:
    import openai
    from openai import OpenAI

    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=base_url + "/v1", api_key="nope").models.list()
    client = OpenAI(base_url=base_url + "/v1", api_key="pg-demo-acme")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="formal", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(
            model="pirate", temperature=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert {m.id for m in client.models.list()} == {"base", "pirate"}
