"""The proxy in front of a fake OpenAI Responses API, driven by the real `openai` SDK."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import ResponseCompletedEvent, ResponseTextDeltaEvent

from headroom import markers
from headroom.config import Settings
from headroom.conversation.accounts import load_ledger
from headroom.proxy import create_app
from headroom.proxy.openai import responses_usage_of
from headroom.store import open_store
from headroom.store.base import Store
from tests.proxy.conftest import serve, stop
from tests.proxy.fake_openai import ANSWER, FakeOpenAI
from tests.proxy.test_anthropic import grep_def
from tests.proxy.test_openai import client, turns_recorded

MODEL = "gpt-4o"
SHELL = {
    "type": "function",
    "name": "shell",
    "description": "Run a shell command",
    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
}
STREAM_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.fixture(scope="module")
def openai_server() -> Iterator[tuple[FakeOpenAI, str]]:
    upstream = FakeOpenAI()
    served = serve(upstream.app())
    yield upstream, served.url
    stop(served)


@pytest.fixture
def fake_openai(openai_server: tuple[FakeOpenAI, str]) -> tuple[FakeOpenAI, str]:
    """The module's fake, as new: one server for every test, which is faster."""
    openai_server[0].received.clear()
    openai_server[0].stored.clear()
    return openai_server


@pytest.fixture
def store() -> Store:
    return open_store("memory://")


@pytest.fixture
def proxy(fake_openai: tuple[FakeOpenAI, str], store: Store) -> Iterator[str]:
    settings = Settings(store="memory://", openai_url=f"{fake_openai[1]}/v1")
    served = serve(create_app(settings, store=store))
    yield served.url
    stop(served)


def shell_output() -> str:
    return grep_def("json") + "\n" + grep_def("email")


def tool_input(output: Any) -> list[dict[str, Any]]:
    arguments = json.dumps({"command": "grep -rn def json email"})
    return [
        {"role": "user", "content": "Where are the parsers defined?"},
        {"type": "function_call", "call_id": "call_0000", "name": "shell", "arguments": arguments},
        {"type": "function_call_output", "call_id": "call_0000", "output": output},
    ]


@pytest.mark.integration
def test_a_large_function_call_output_reaches_the_upstream_compressed(
    fake_openai: tuple[FakeOpenAI, str], proxy: str, store: Store
) -> None:
    reply = client(proxy).responses.create(
        model=MODEL,
        instructions="You are careful.",
        input=tool_input(shell_output()),  # type: ignore[arg-type]
    )
    assert reply.output_text == ANSWER and reply.usage is not None
    received = fake_openai[0].received[-1]
    assert received.path == "/v1/responses"
    assert received.headers["authorization"] == "Bearer sk-test"
    forwarded = received.body["input"]
    output = forwarded[2]["output"]
    assert output.startswith("[headroom ") and len(output) < len(shell_output()) // 2
    assert forwarded[:2] == tool_input("")[:2]
    key = markers.header_key(output)
    retrieved = httpx.get(f"{proxy}/v1/retrieve/{key}", timeout=10)
    assert retrieved.status_code == 200 and retrieved.json()["content"] == shell_output()
    total = turns_recorded(store, 1)
    assert total.simulated_turns == 0 and total.usage.output == 7
    assert total.usage.uncached == reply.usage.input_tokens


@pytest.mark.integration
def test_a_stream_keeps_its_event_sequence_and_its_usage_is_accounted(
    fake_openai: tuple[FakeOpenAI, str], proxy: str, store: Store
) -> None:
    parts = [{"type": "input_text", "text": shell_output()}]
    stream = client(proxy).responses.create(model=MODEL, input=tool_input(parts), stream=True)  # type: ignore[arg-type]
    events = [event for event in stream if not isinstance(event, tuple)]
    assert [event.type for event in events] == STREAM_EVENTS
    deltas = "".join(e.delta for e in events if isinstance(e, ResponseTextDeltaEvent))
    assert deltas == ANSWER
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent) and completed.response.usage is not None
    sent = fake_openai[0].received[-1].body
    assert sent["stream"] is True
    assert sent["input"][2]["output"][0]["text"].startswith("[headroom ")
    total = turns_recorded(store, 1)
    assert total.simulated_turns == 0
    assert total.usage.uncached == completed.response.usage.input_tokens


@pytest.mark.integration
def test_an_agent_loop_keeps_the_forwarded_prefix_byte_identical(
    fake_openai: tuple[FakeOpenAI, str], proxy: str
) -> None:
    sdk = client(proxy)
    items: list[Any] = [{"role": "user", "content": "Where are the parsers defined?"}]
    for _ in range(3):
        reply = sdk.responses.create(model=MODEL, input=items, tools=[SHELL], store=False)  # type: ignore[list-item]
        items += [item.model_dump(exclude_none=True) for item in reply.output]
        calls = [item for item in reply.output if item.type == "function_call"]
        if not calls:
            break
        command = json.loads(calls[0].arguments)["command"]
        output = grep_def(command.split()[-1])
        items.append(
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": output}
        )
    assert reply.output_text == ANSWER
    turns = [[json.dumps(i) for i in r.body["input"]] for r in fake_openai[0].received]
    assert [len(t) for t in turns] == [1, 3, 5]
    for before, after in itertools.pairwise(turns):
        assert after[: len(before)] == before
    assert all(
        r.body["input"][2]["output"].startswith("[headroom ") for r in fake_openai[0].received[1:]
    )
    tools = [r.body["tools"] for r in fake_openai[0].received]
    assert tools[0] == tools[1] == tools[2]


@pytest.mark.integration
def test_a_chain_of_stored_responses_compresses_each_new_output_without_busts(
    fake_openai: tuple[FakeOpenAI, str], proxy: str, store: Store
) -> None:
    sdk = client(proxy)
    headers = {"x-headroom-session-id": "chain"}
    request: dict[str, Any] = {"input": "Where are the parsers defined?"}
    for _ in range(3):
        reply = sdk.responses.create(model=MODEL, tools=[SHELL], extra_headers=headers, **request)  # type: ignore[list-item]
        calls = [item for item in reply.output if item.type == "function_call"]
        if not calls:
            break
        output = grep_def(json.loads(calls[0].arguments)["command"].split()[-1])
        result = {"type": "function_call_output", "call_id": calls[0].call_id, "output": output}
        request = {"previous_response_id": reply.id, "input": [result]}
    assert reply.output_text == ANSWER and len(fake_openai[0].received) == 3
    later = [r.body for r in fake_openai[0].received[1:]]
    assert [len(body["input"]) for body in later] == [1, 1]
    assert all(body["input"][0]["output"].startswith("[headroom ") for body in later)
    turns_recorded(store, 3)
    [session] = load_ledger(store).sessions()
    assert session.session == "chain" and session.events["cache_bust"][0] == 0


@pytest.mark.integration
@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": ',
        b'{"model": "gpt-4o", "input": 42}',
        b'{"model": "gpt-4o", "input": [1]}',
        b'{"model": "gpt-4o", "input": [{"type": "function_call_output", "call_id": "c", "output": 5}]}',
    ],
)
def test_a_malformed_body_gets_a_400_in_openais_shape(
    fake_openai: tuple[FakeOpenAI, str], proxy: str, raw: bytes
) -> None:
    response = httpx.post(f"{proxy}/v1/responses", content=raw, timeout=10)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert fake_openai[0].received == []


@pytest.mark.integration
def test_upstream_errors_reach_the_sdk_unchanged(proxy: str) -> None:
    sdk = client(proxy)
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.responses.create(model="rate-limited", input="hi")
    assert limited.value.response.headers["retry-after"] == "17"
    with pytest.raises(openai.BadRequestError) as unknown:
        sdk.responses.create(model=MODEL, input="hi", previous_response_id="resp_unknown")
    assert unknown.value.code == "previous_response_not_found"


def test_usage_is_read_from_the_json_answer_and_the_completed_event() -> None:
    usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 3}
    assert responses_usage_of(json.dumps({"object": "response", "usage": usage}).encode()) == usage
    created = {"type": "response.created", "response": {"usage": None}}
    completed = {"type": "response.completed", "response": {"usage": usage}}
    stream = "".join(
        f"event: {event['type']}\ndata: {json.dumps(event)}\n\n" for event in (created, completed)
    ).encode()
    assert responses_usage_of(stream) == usage
    cut = f"event: response.created\ndata: {json.dumps(created)}\n\n".encode()
    assert responses_usage_of(cut) is None
