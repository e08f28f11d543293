"""The proxy in front of a fake OpenAI API, driven by the real `openai` SDK."""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from headroom.config import Settings
from headroom.conversation.accounts import load_ledger
from headroom.proxy import create_app
from headroom.proxy.openai import usage_of
from headroom.store import open_store
from headroom.store.base import Store
from tests.proxy.conftest import serve, stop
from tests.proxy.fake_anthropic import Fake
from tests.proxy.fake_openai import ANSWER, FakeOpenAI
from tests.proxy.test_anthropic import grep_def

MODEL = "gpt-4o"
TOOL = {
    "type": "function",
    "function": {
        "name": "Bash",
        "description": "Run a command",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
    },
}


@pytest.fixture
def fake_openai() -> Iterator[tuple[FakeOpenAI, str]]:
    upstream = FakeOpenAI()
    served = serve(upstream.app())
    yield upstream, served.url
    stop(served)


@pytest.fixture
def store() -> Store:
    return open_store("memory://")


@pytest.fixture
def proxy(
    fake: tuple[Fake, str], fake_openai: tuple[FakeOpenAI, str], store: Store
) -> Iterator[str]:
    settings = Settings(store="memory://", anthropic_url=fake[1], openai_url=f"{fake_openai[1]}/v1")
    served = serve(create_app(settings, store=store))
    yield served.url
    stop(served)


def client(proxy_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy_url}/v1", api_key="sk-test", max_retries=0)


def tool_conversation() -> list[dict[str, Any]]:
    arguments = json.dumps({"command": "grep -rn def json email"})
    call = {
        "id": "call_0000",
        "type": "function",
        "function": {"name": "Bash", "arguments": arguments},
    }
    output = grep_def("json") + "\n" + grep_def("email")
    return [
        {"role": "system", "content": "You are a careful engineer."},
        {"role": "user", "content": "Where are the parsers defined?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_0000", "content": output},
    ]


def turns_recorded(store: Store, turns: int) -> Any:
    """The ledger's total once it has `turns` turns (accounting runs after the answer)."""
    for _ in range(100):
        total = load_ledger(store).total()
        if total.turns >= turns:
            return total
        time.sleep(0.05)
    raise AssertionError(f"the ledger never recorded {turns} turns")


@pytest.mark.integration
def test_a_large_tool_message_reaches_the_upstream_compressed(
    fake_openai: tuple[FakeOpenAI, str], proxy: str, store: Store
) -> None:
    messages = tool_conversation()
    reply = client(proxy).chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == ANSWER
    assert reply.choices[0].finish_reason == "stop" and reply.usage is not None
    assert reply.usage.completion_tokens == 7
    received = fake_openai[0].received[-1]
    assert received.path == "/v1/chat/completions"
    assert received.headers["authorization"] == "Bearer sk-test"
    forwarded = received.body["messages"][3]["content"]
    original = messages[3]["content"]
    text = forwarded if isinstance(forwarded, str) else forwarded[0]["text"]
    assert text.startswith("[headroom ") and len(text) < len(original) // 2
    total = turns_recorded(store, 1)
    assert total.simulated_turns == 0 and total.usage.output == 7


@pytest.mark.integration
def test_a_stream_reaches_the_client_whole_and_its_usage_is_accounted(
    fake_openai: tuple[FakeOpenAI, str], proxy: str, store: Store
) -> None:
    messages = [{"role": "user", "content": "What is the answer?"}]
    stream = client(proxy).chat.completions.create(
        model=MODEL,
        messages=messages,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER and len(chunks) == 6
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7
    assert fake_openai[0].received[-1].body["stream"] is True
    total = turns_recorded(store, 1)
    assert total.simulated_turns == 0 and total.usage.output == 7


@pytest.mark.integration
def test_a_stream_without_usage_is_still_accounted(proxy: str, store: Store) -> None:
    messages = [{"role": "user", "content": "What is the answer?"}]
    stream = client(proxy).chat.completions.create(model=MODEL, messages=messages, stream=True)  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in stream) == ANSWER
    assert turns_recorded(store, 1).simulated_turns == 1


@pytest.mark.integration
def test_a_rate_limit_reaches_the_sdk_with_its_retry_after(proxy: str) -> None:
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.RateLimitError) as caught:
        client(proxy).chat.completions.create(model="rate-limited", messages=messages)  # type: ignore[arg-type]
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "17"
    assert caught.value.code == "rate_limit_exceeded"


@pytest.mark.integration
@pytest.mark.parametrize(
    "raw", [b'{"model": ', b"[1, 2]", b'{"model": "gpt-4o", "messages": "hi"}']
)
def test_a_malformed_body_gets_a_400_in_openais_shape(
    fake_openai: tuple[FakeOpenAI, str], proxy: str, raw: bytes
) -> None:
    response = httpx.post(f"{proxy}/v1/chat/completions", content=raw, timeout=10)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] is None and error["code"] is None
    assert fake_openai[0].received == []


@pytest.mark.integration
def test_the_sdk_raises_bad_request_for_a_malformed_body(proxy: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(proxy).chat.completions.create(model=MODEL, messages="hi")  # type: ignore[arg-type]
    assert caught.value.status_code == 400


@pytest.mark.integration
def test_an_agent_loop_keeps_the_forwarded_prefix_byte_identical(
    fake_openai: tuple[FakeOpenAI, str], proxy: str
) -> None:
    sdk = client(proxy)
    messages: list[Any] = [
        {"role": "system", "content": "You are a careful engineer."},
        {"role": "user", "content": "Where are the parsers defined?"},
    ]
    for _ in range(3):
        reply = sdk.chat.completions.create(model=MODEL, messages=messages, tools=[TOOL])  # type: ignore[arg-type,list-item]
        message = reply.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if reply.choices[0].finish_reason != "tool_calls":
            break
        call = (message.tool_calls or [])[0]
        assert call.type == "function"
        command = json.loads(call.function.arguments)["command"]
        output = grep_def(command.split()[-1])
        messages.append({"role": "tool", "tool_call_id": call.id, "content": output})
    assert reply.choices[0].message.content == ANSWER
    turns = [[json.dumps(m) for m in r.body["messages"]] for r in fake_openai[0].received]
    assert len(turns) == 3
    for before, after in itertools.pairwise(turns):
        assert after[: len(before)] == before
    tools = [r.body["tools"] for r in fake_openai[0].received]
    assert tools[0] == tools[1] == tools[2]


@pytest.mark.integration
def test_the_session_header_names_the_session_and_stops_at_the_proxy(
    fake_openai: tuple[FakeOpenAI, str], proxy: str, store: Store
) -> None:
    sdk = client(proxy)
    messages = [{"role": "user", "content": "hi"}]
    headers = {"x-headroom-session-id": "my-session"}
    sdk.chat.completions.create(model=MODEL, messages=messages, extra_headers=headers)  # type: ignore[arg-type]
    assert turns_recorded(store, 1) is not None
    assert [s.session for s in load_ledger(store).sessions()] == ["my-session"]
    assert not [h for h in fake_openai[0].received[-1].headers if h.startswith("x-headroom-")]


@pytest.mark.integration
def test_responses_are_passed_through_byte_for_byte(
    fake_openai: tuple[FakeOpenAI, str], proxy: str
) -> None:
    reply = client(proxy).responses.create(model=MODEL, input="What is the answer?")
    assert reply.output_text == ANSWER
    received = fake_openai[0].received[-1]
    assert received.path == "/v1/responses"
    assert received.body == {"model": MODEL, "input": "What is the answer?"}


@pytest.mark.integration
def test_bypass_forwards_the_body_byte_identical(
    fake_openai: tuple[FakeOpenAI, str], proxy: str
) -> None:
    raw = json.dumps({"model": MODEL, "messages": tool_conversation()}).encode()
    headers = {"x-headroom-bypass": "true", "content-type": "application/json"}
    url = f"{proxy}/v1/chat/completions"
    response = httpx.post(url, content=raw, headers=headers, timeout=10)
    assert response.status_code == 200
    assert fake_openai[0].received[-1].raw == raw


@pytest.mark.integration
def test_other_paths_go_to_the_upstream_the_auth_header_names(
    fake: tuple[Fake, str], fake_openai: tuple[FakeOpenAI, str], proxy: str
) -> None:
    models = client(proxy).models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert fake_openai[0].received[-1].path == "/v1/models"
    raw = json.dumps({"model": "claude-sonnet-4-6", "messages": []}).encode()
    bearer = {"authorization": "Bearer oauth-token", "anthropic-version": "2023-06-01"}
    for headers in ({"x-api-key": "sk-ant"}, bearer):
        url = f"{proxy}/v1/messages/count_tokens"
        response = httpx.post(url, content=raw, headers=headers, timeout=10)
        assert response.status_code == 200
    assert len(fake[0].received) == 2 and len(fake_openai[0].received) == 1


@pytest.mark.integration
def test_an_unreachable_upstream_gets_a_502_in_openais_shape() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings = Settings(store="memory://", openai_url=f"http://127.0.0.1:{port}/v1")
    served = serve(create_app(settings, store=open_store("memory://")))
    try:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        response = httpx.post(f"{served.url}/v1/chat/completions", json=body, timeout=10)
    finally:
        stop(served)
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "server_error"


def test_usage_is_read_from_json_and_from_the_last_chunk_that_carries_it() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 3}
    assert usage_of(json.dumps({"usage": usage}).encode()) == usage
    stream = (
        b'data: {"choices": [], "usage": null}\n\n'
        + f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode()
        + b"data: [DONE]\n\n"
    )
    assert usage_of(stream) == usage
    assert usage_of(b'data: {"choices": []}\n\ndata: [DONE]\n\n') is None
    assert usage_of(b'{"error": {"message": "no"}}') is None
    assert usage_of(b"{not json") is None
