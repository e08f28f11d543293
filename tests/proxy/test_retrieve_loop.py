"""Retrieve in the loop: the proxy answers the model's `headroom_retrieve` calls itself and
the client never sees them, in JSON answers and streams, whatever becomes of the loop
(an unknown key, an upstream error, a client that leaves).

Driven by the real `anthropic` and `openai` SDKs against the fake APIs (tests/proxy/
retrieve_rig.py).
"""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import httpx
import pytest

from headroom.proxy.retrieve_tool import ANTHROPIC_TOOL, OPENAI_TOOL
from tests.proxy.fake_anthropic import Received
from tests.proxy.retrieve_rig import (
    QUESTIONS,
    Rig,
    assert_prefixes_stable,
    claude_session,
    claude_turn,
    elided_line,
    gpt_session,
    gpt_tool_conversation,
    gpt_turn,
    result_text,
    texts,
    tool_conversation,
    tools_bytes,
)
from tests.proxy.retrieving_model import HANGING, LOOKING, RETRIEVE, UNKNOWN_KEY
from tests.proxy.test_anthropic import TOOL, grep_def
from tests.proxy.test_openai import TOOL as OPENAI_BASH


@pytest.mark.integration
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_anthropic_session_retrieves_without_the_client_seeing_it(
    rig: Rig, stream: bool
) -> None:
    replies = claude_session(rig, "retrieve-lines", stream)
    received = rig.fake_claude.received
    assert len(replies) == 4 and len(received) == 6  # two turns took a hidden hop each
    assert not [
        b for r in replies for b in r.content if b.type == "tool_use" and b.name == RETRIEVE
    ]
    compressed = result_text(received[1].body["messages"][2]["content"][0]["content"])
    line = elided_line(compressed, grep_def("json"))
    assert texts(replies[1]) == [LOOKING, f"Retrieved: {line}"]
    stops = [r.stop_reason for r in replies]
    assert stops == ["tool_use", "end_turn", "tool_use", "end_turn"]
    call, result = received[2].body["messages"][-2:]
    assert call["content"][1]["name"] == RETRIEVE
    assert result["content"][0]["content"] == line and "is_error" not in result["content"][0]
    spliced = received[3].body["messages"][len(received[2].body["messages"])]
    assert spliced["content"] == [{"type": "text", "text": f"Retrieved: {line}"}]
    assert_prefixes_stable(received)
    assert tools_bytes(received, lambda t: t["name"]) == {json.dumps(ANTHROPIC_TOOL)}
    assert all(r.body["tools"][-1]["name"] == RETRIEVE for r in received)
    hops = [r.body["messages"] for r in received[1:3]]
    assert replies[1].usage.input_tokens == sum(len(json.dumps(m)) // 4 for m in hops)
    assert replies[1].usage.output_tokens == 14
    session = rig.ledger(4)
    assert session.usage.uncached == sum(len(json.dumps(r.body["messages"])) // 4 for r in received)
    retrieved = {kind.kind: kind.retrieved for kind in session.kinds if kind.retrieved}
    assert sum(retrieved.values()) == 2  # one retrieval per turn that took a hidden hop


@pytest.mark.integration
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_openai_session_retrieves_without_the_client_seeing_it(rig: Rig, stream: bool) -> None:
    replies = gpt_session(rig, "retrieve-lines", stream)
    received = rig.fake_gpt.received
    assert len(replies) == 4 and len(received) == 6
    messages = [r.choices[0].message for r in replies]
    assert not [c for m in messages for c in m.tool_calls or [] if c.function.name == RETRIEVE]
    line = elided_line(received[1].body["messages"][3]["content"], grep_def("json"))
    assert messages[1].content == f"{LOOKING}Retrieved: {line}"
    finishes = [r.choices[0].finish_reason for r in replies]
    assert finishes == ["tool_calls", "stop", "tool_calls", "stop"]
    call, result = received[2].body["messages"][-2:]
    assert call["tool_calls"][0]["function"]["name"] == RETRIEVE
    assert result == {"role": "tool", "tool_call_id": call["tool_calls"][0]["id"], "content": line}
    assert_prefixes_stable(received)
    assert tools_bytes(received, lambda t: t["function"]["name"]) == {json.dumps(OPENAI_TOOL)}
    prompts = [len(json.dumps(r.body["messages"])) // 4 for r in received[1:3]]
    assert replies[1].usage is not None and replies[1].usage.prompt_tokens == sum(prompts)
    assert replies[1].usage.completion_tokens == 14


@pytest.mark.integration
def test_a_stream_relays_one_message_with_contiguous_blocks_and_summed_usage(rig: Rig) -> None:
    body = {
        "model": "retrieve-lines",
        "max_tokens": 100,
        "stream": True,
        "tools": [TOOL],
        "messages": tool_conversation(),
    }
    headers = {"x-api-key": "test", "anthropic-version": "2023-06-01"}
    url = f"{rig.proxy}/v1/messages"
    with httpx.stream("POST", url, json=body, headers={**headers, **rig.headers()}) as response:
        raw = b"".join(response.iter_bytes())
    assert RETRIEVE.encode() not in raw
    parsed = [
        json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data: ")
    ]
    kinds = [event["type"] for event in parsed]
    assert kinds.count("message_start") == kinds.count("message_stop") == 1
    assert kinds[-2:] == ["message_delta", "message_stop"] and kinds.count("ping") == 1
    started = [event["index"] for event in parsed if event["type"] == "content_block_start"]
    assert started == [0, 1]
    inputs = sum(len(json.dumps(r.body["messages"])) // 4 for r in rig.fake_claude.received)
    assert (
        parsed[-2]["usage"]["input_tokens"] == inputs and parsed[-2]["usage"]["output_tokens"] == 14
    )


@pytest.mark.integration
@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_a_stream_whose_first_hop_only_retrieves_shows_the_answer_alone(
    rig: Rig, provider: str
) -> None:
    line = grep_def("json").split("\n")[-1]
    if provider == "anthropic":
        reply = claude_turn(rig, "retrieve-silent", tool_conversation(), stream=True)
        assert [(b.type, b.text) for b in reply.content] == [("text", f"Retrieved: {line}")]
        assert reply.stop_reason == "end_turn" and reply.usage.output_tokens == 14
        assert len(rig.fake_claude.received) == 2
        return
    completion = gpt_turn(rig, "retrieve-silent", gpt_tool_conversation(), stream=True)
    message, usage = completion.choices[0].message, completion.usage
    assert (message.role, message.content, message.tool_calls) == (
        "assistant",
        f"Retrieved: {line}",
        None,
    )
    assert completion.choices[0].finish_reason == "stop" and usage.completion_tokens == 14
    assert len(rig.fake_gpt.received) == 2


def wait_for(condition: Any) -> None:
    """Waits up to five seconds for `condition()` (the servers act on their own threads)."""
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


@pytest.mark.integration
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_client_leaving_during_a_hidden_hop_cancels_the_continuation(
    rig: Rig, stream: bool
) -> None:
    body = {"model": HANGING, "max_tokens": 100, "stream": stream, "tools": [TOOL],
            "messages": tool_conversation()}  # fmt: skip
    headers = {"x-api-key": "test", "anthropic-version": "2023-06-01", **rig.headers()}
    url = f"{rig.proxy}/v1/messages"
    if stream:
        with httpx.stream("POST", url, json=body, headers=headers) as response:
            chunks = response.iter_raw()  # held: a dropped iterator closes the response
            assert next(chunks).startswith(b"event: message_start")
            wait_for(lambda: len(rig.fake_claude.received) == 2)  # the continuation is asked
    else:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url, json=body, headers=headers, timeout=httpx.Timeout(10, read=0.5))
    wait_for(lambda: rig.fake_claude.left == [HANGING])
    rig.fake_claude.left.clear()


@pytest.mark.integration
def test_an_unknown_key_is_answered_as_a_tool_error_the_model_reads(rig: Rig) -> None:
    reply = claude_turn(rig, "retrieve-unknown", tool_conversation(), stream=False)
    assert texts(reply)[-1].startswith(f"Retrieved: key {UNKNOWN_KEY} is unknown")
    call, result = rig.fake_claude.received[-1].body["messages"][-2:]
    assert result["content"][0]["is_error"] is True
    assert result["content"][0]["tool_use_id"] == call["content"][1]["id"]


@pytest.mark.integration
@pytest.mark.parametrize("name", ["mcp__headroom__headroom_retrieve", RETRIEVE])
def test_a_client_that_exposes_a_retrieve_tool_gets_no_second_one(rig: Rig, name: str) -> None:
    own: Any = {"name": name, "description": "Retrieve", "input_schema": {"type": "object"}}
    rig.claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=10, tools=[TOOL, own],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "hi"}],
    )  # fmt: skip
    assert [t["name"] for t in rig.fake_claude.received[-1].body["tools"]] == ["Bash", name]


@pytest.mark.integration
def test_a_request_without_tools_gets_no_tool(rig: Rig) -> None:
    rig.gpt.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert "tools" not in rig.fake_gpt.received[-1].body


@pytest.mark.integration
def test_a_continuation_rate_limit_reaches_a_json_client_unchanged(rig: Rig) -> None:
    with pytest.raises(anthropic.RateLimitError) as caught:
        claude_turn(rig, "retrieve-limited", tool_conversation(), stream=False)
    assert caught.value.response.headers["retry-after"] == "17"
    assert len(rig.fake_claude.received) == 2


@pytest.mark.integration
def test_a_continuation_error_ends_a_stream_with_the_apis_error_event(rig: Rig) -> None:
    arguments: Any = {
        "model": "retrieve-limited",
        "max_tokens": 100,
        "messages": tool_conversation(),
        "tools": [TOOL],
    }
    seen = []
    stream = rig.claude.messages.stream(**arguments)
    with pytest.raises(anthropic.APIStatusError) as caught, stream as events:
        for text in events.text_stream:
            seen.append(text)  # what the client saw before the error
    assert "".join(seen) == LOOKING
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


@pytest.mark.integration
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_an_answer_without_a_retrieve_call_reaches_the_client_byte_for_byte(
    rig: Rig, provider: str, stream: bool
) -> None:
    received: list[Received]
    if provider == "anthropic":
        path, received, tool = "/v1/messages", rig.fake_claude.received, TOOL
        headers = {"x-api-key": "test", "anthropic-version": "2023-06-01"}
    else:
        path, received, tool = "/v1/chat/completions", rig.fake_gpt.received, OPENAI_BASH
        headers = {"authorization": "Bearer sk-test"}
    body = {
        "model": "retrieve-lines",
        "max_tokens": 100,
        "stream": stream,
        "tools": [tool],
        "messages": [{"role": "user", "content": QUESTIONS[0]}],
    }
    headers |= rig.headers()
    via_proxy = httpx.post(f"{rig.proxy}{path}", json=body, headers=headers, timeout=10)
    forwarded = received.pop()  # the fake answers the same request the same way again
    assert [t for t in forwarded.body["tools"] if RETRIEVE in json.dumps(t)]  # offered
    content_type = {"content-type": "application/json"}
    url = f"http://{forwarded.headers['host']}{path}"
    upstream = httpx.post(url, content=forwarded.raw, headers=content_type, timeout=10)
    assert via_proxy.status_code == upstream.status_code == 200
    assert via_proxy.content == upstream.content and b"tool" in via_proxy.content
