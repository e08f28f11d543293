"""Retrieve in the loop: the proxy answers the model's `headroom_retrieve` calls itself, the
client never sees them, and later turns carry the hidden exchange where the upstream saw it.

Driven by the real `anthropic` and `openai` SDKs against the fake APIs, whose `retrieve-`
models (tests/proxy/retrieving_model.py) call the tool when a tool result carries a marker.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai
import pytest

from headroom.config import Settings
from headroom.conversation.accounts import load_ledger
from headroom.conversation.prefix import without_cache_control
from headroom.proxy import create_app
from headroom.proxy.retrieve_loop import MAX_ROUNDS
from headroom.proxy.retrieve_tool import ANTHROPIC_TOOL, OPENAI_TOOL
from headroom.store import open_store
from headroom.store.base import Store
from tests.proxy.conftest import Served, serve, stop
from tests.proxy.fake_anthropic import Fake, Received
from tests.proxy.fake_openai import FakeOpenAI
from tests.proxy.retrieving_model import LOOKING, RETRIEVE, UNKNOWN_KEY
from tests.proxy.test_anthropic import TOOL, grep_def
from tests.proxy.test_openai import TOOL as OPENAI_BASH

QUESTIONS = ("Where are the parsers defined?", "And the email ones?")


@dataclass
class Servers:
    """The fake APIs and the proxy in front of them, shared by the module's tests."""

    fake_claude: Fake
    fake_gpt: FakeOpenAI
    proxy: str
    store: Store


@dataclass
class Rig:
    """One test's view: its own session (`x-headroom-session-id`) and SDK clients."""

    servers: Servers
    session: str
    claude: anthropic.Anthropic
    gpt: openai.OpenAI

    @property
    def fake_claude(self) -> Fake:
        return self.servers.fake_claude

    @property
    def fake_gpt(self) -> FakeOpenAI:
        return self.servers.fake_gpt

    @property
    def proxy(self) -> str:
        return self.servers.proxy

    def headers(self) -> dict[str, str]:
        return {"x-headroom-session-id": self.session}

    def billed(self, turns: int) -> Any:
        """The session's usage in the ledger once it has `turns` turns (accounting runs
        after the answer)."""
        for _ in range(100):
            stats = load_ledger(self.servers.store).sessions()
            found = [s for s in stats if s.session == self.session]
            if found and found[0].turns >= turns:
                return found[0].usage
            time.sleep(0.05)
        raise AssertionError(f"the ledger never recorded {turns} turns of {self.session}")


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    fakes = Fake(), FakeOpenAI()
    upstreams = [serve(fakes[0].app()), serve(fakes[1].app())]
    store = open_store("memory://")
    settings = Settings(
        store="memory://", anthropic_url=upstreams[0].url, openai_url=f"{upstreams[1].url}/v1"
    )
    served: list[Served] = [serve(create_app(settings, store=store)), *upstreams]
    yield Servers(fakes[0], fakes[1], served[0].url, store)
    for server in served:
        stop(server)


@pytest.fixture
def rig(servers: Servers, request: pytest.FixtureRequest) -> Iterator[Rig]:
    servers.fake_claude.received.clear()
    servers.fake_gpt.received.clear()
    headers = {"x-headroom-session-id": request.node.name}
    claude = anthropic.Anthropic(
        base_url=servers.proxy, api_key="test", max_retries=0, default_headers=headers
    )
    gpt = openai.OpenAI(
        base_url=f"{servers.proxy}/v1", api_key="sk-test", max_retries=0, default_headers=headers
    )
    with claude, gpt:
        yield Rig(servers, request.node.name, claude, gpt)


def run_tool(command: str) -> str:
    return grep_def(command.split()[-1])


def claude_turn(rig: Rig, model: str, messages: list[Any], stream: bool) -> Any:
    arguments: Any = {"model": model, "max_tokens": 100, "messages": messages, "tools": [TOOL]}
    if not stream:
        return rig.claude.messages.create(**arguments)
    with rig.claude.messages.stream(**arguments) as events:
        return events.get_final_message()


def claude_session(rig: Rig, model: str, stream: bool) -> list[Any]:
    """An agent loop: each question asked, each Bash call run, until the model is done."""
    messages: list[Any] = [{"role": "user", "content": QUESTIONS[0]}]
    replies = []
    questions = iter(QUESTIONS[1:])
    for _ in range(8):
        reply = claude_turn(rig, model, messages, stream)
        replies.append(reply)
        messages.append({"role": "assistant", "content": [b.model_dump() for b in reply.content]})
        calls = [b for b in reply.content if b.type == "tool_use"]
        if calls:
            results = [
                {
                    "type": "tool_result",
                    "tool_use_id": c.id,
                    "content": run_tool(c.input["command"]),
                }
                for c in calls
            ]
            messages.append({"role": "user", "content": results})
        elif (question := next(questions, None)) is not None:
            messages.append({"role": "user", "content": question})
        else:
            return replies
    raise AssertionError("the session never ended")


def texts(reply: Any) -> list[str]:
    return [block.text for block in reply.content if block.type == "text"]


def result_text(content: Any) -> str:
    return content if isinstance(content, str) else content[0]["text"]


def elided_line(compressed: str, original: str) -> str:
    """The line the fake model asks for, the original's last, which compression dropped."""
    line = original.split("\n")[-1]
    assert compressed.startswith("[headroom ") and line not in compressed
    return line


def assert_prefixes_stable(received: list[Received]) -> None:
    """Each forwarded request starts with every message of the one before (cache_control
    set aside): the provider's cache sees one growing prefix."""
    turns = [[json.dumps(without_cache_control(m)) for m in r.body["messages"]] for r in received]
    for before, after in itertools.pairwise(turns):
        assert after[: len(before)] == before


def tools_bytes(received: list[Received], name_of: Any) -> set[str]:
    return {
        json.dumps(without_cache_control(tool))
        for r in received
        for tool in r.body["tools"]
        if name_of(tool) == RETRIEVE
    }


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
    billed = rig.billed(4)
    assert billed.uncached == sum(len(json.dumps(r.body["messages"])) // 4 for r in received)


def gpt_turn(rig: Rig, model: str, messages: list[Any], stream: bool) -> Any:
    arguments: Any = {"model": model, "messages": messages, "tools": [OPENAI_BASH]}
    if not stream:
        return rig.gpt.chat.completions.create(**arguments)
    options: Any = {"include_usage": True}
    with rig.gpt.chat.completions.stream(**arguments, stream_options=options) as chunks:
        return chunks.get_final_completion()


def gpt_session(rig: Rig, model: str, stream: bool) -> list[Any]:
    messages: list[Any] = [
        {"role": "system", "content": "You are a careful engineer."},
        {"role": "user", "content": QUESTIONS[0]},
    ]
    replies = []
    questions = iter(QUESTIONS[1:])
    for _ in range(8):
        reply = gpt_turn(rig, model, messages, stream)
        replies.append(reply)
        message = reply.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls or []:
            output = run_tool(json.loads(call.function.arguments)["command"])
            messages.append({"role": "tool", "tool_call_id": call.id, "content": output})
        if message.tool_calls:
            continue
        if (question := next(questions, None)) is None:
            return replies
        messages.append({"role": "user", "content": question})
    raise AssertionError("the session never ended")


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
    output = grep_def("json")
    call = {"type": "tool_use", "id": "toolu_0000", "name": "Bash", "input": {"command": "ls"}}
    body = {
        "model": "retrieve-lines",
        "max_tokens": 100,
        "stream": True,
        "tools": [TOOL],
        "messages": [
            {"role": "user", "content": QUESTIONS[0]},
            {"role": "assistant", "content": [call]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_0000", "content": output}
                ],
            },
        ],
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


def tool_conversation() -> list[Any]:
    call = {"type": "tool_use", "id": "toolu_0000", "name": "Bash", "input": {"command": "ls"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_0000", "content": grep_def("json")}
    return [
        {"role": "user", "content": QUESTIONS[0]},
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": [result]},
    ]


@pytest.mark.integration
def test_an_unknown_key_is_answered_as_a_tool_error_the_model_reads(rig: Rig) -> None:
    reply = claude_turn(rig, "retrieve-unknown", tool_conversation(), stream=False)
    assert texts(reply)[-1].startswith(f"Retrieved: key {UNKNOWN_KEY} is unknown")
    call, result = rig.fake_claude.received[-1].body["messages"][-2:]
    assert result["content"][0]["is_error"] is True
    assert result["content"][0]["tool_use_id"] == call["content"][1]["id"]


@pytest.mark.integration
def test_retrieve_beside_a_client_call_is_answered_and_spliced_into_the_next_turn(
    rig: Rig,
) -> None:
    messages = tool_conversation()
    reply = claude_turn(rig, "retrieve-mixed", messages, stream=True)
    assert [b.type for b in reply.content] == ["text", "tool_use"]
    assert reply.content[1].name == "Bash" and reply.stop_reason == "tool_use"
    assert len(rig.fake_claude.received) == 1  # the client's tool result is needed to go on
    bash = reply.content[1]
    messages.append({"role": "assistant", "content": [b.model_dump() for b in reply.content]})
    result = {"type": "tool_result", "tool_use_id": bash.id, "content": "no output"}
    messages.append({"role": "user", "content": [result]})
    reply = claude_turn(rig, "retrieve-mixed", messages, stream=False)
    forwarded = rig.fake_claude.received[-1].body["messages"]
    upstream_call = forwarded[-2]["content"]
    assert [b.get("name") for b in upstream_call] == [None, RETRIEVE, "Bash"]
    results = forwarded[-1]["content"]
    assert [r["tool_use_id"] for r in results] == [upstream_call[1]["id"], bash.id]
    line = elided_line(result_text(forwarded[2]["content"][0]["content"]), grep_def("json"))
    assert results[0]["content"] == line and texts(reply) == [f"Retrieved: {line}"]
    assert_prefixes_stable(rig.fake_claude.received)


@pytest.mark.integration
def test_an_openai_stream_hides_a_retrieve_call_beside_a_client_call(rig: Rig) -> None:
    messages: list[Any] = [
        {"role": "user", "content": QUESTIONS[0]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_0000", "type": "function", "function": {"name": "Bash", "arguments": "{}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_0000", "content": grep_def("json")},
    ]  # fmt: skip
    reply = gpt_turn(rig, "retrieve-mixed", messages, stream=True)
    message = reply.choices[0].message
    assert [c.function.name for c in message.tool_calls or []] == ["Bash"]
    assert message.content == LOOKING and reply.choices[0].finish_reason == "tool_calls"
    messages.append(message.model_dump(exclude_none=True))
    bash = (message.tool_calls or [])[0]
    messages.append({"role": "tool", "tool_call_id": bash.id, "content": "no output"})
    reply = gpt_turn(rig, "retrieve-mixed", messages, stream=False)
    forwarded = rig.fake_gpt.received[-1].body["messages"]
    calls = forwarded[-3]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == [RETRIEVE, "Bash"]
    assert [m["tool_call_id"] for m in forwarded[-2:]] == [calls[0]["id"], bash.id]
    assert reply.choices[0].message.content == f"Retrieved: {forwarded[-2]['content']}"


@pytest.mark.integration
def test_the_loop_stops_after_its_rounds_and_the_next_turn_carries_the_last_results(
    rig: Rig,
) -> None:
    messages = tool_conversation()
    reply = claude_turn(rig, "retrieve-forever", messages, stream=False)
    assert len(rig.fake_claude.received) == 1 + MAX_ROUNDS
    assert reply.stop_reason == "end_turn" and texts(reply) == [LOOKING] * (1 + MAX_ROUNDS)
    messages += [
        {"role": "assistant", "content": [b.model_dump() for b in reply.content]},
        {"role": "user", "content": "Thanks."},
    ]
    rig.fake_claude.received.clear()
    claude_turn(rig, "retrieve-lines", messages, stream=False)
    forwarded = rig.fake_claude.received[0].body["messages"]
    assert len(forwarded) == len(tool_conversation()) + 2 * (1 + MAX_ROUNDS)
    last_call = forwarded[-2]["content"][-1]
    pending, question = without_cache_control(forwarded[-1]["content"])
    assert pending["tool_use_id"] == last_call["id"]
    assert question == {"type": "text", "text": "Thanks."}


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
    if provider == "anthropic":
        path, fake, tool = "/v1/messages", rig.fake_claude, TOOL
        headers = {"x-api-key": "test", "anthropic-version": "2023-06-01"}
    else:
        path, fake, tool = "/v1/chat/completions", rig.fake_gpt, OPENAI_BASH
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
    forwarded = fake.received.pop()  # the fake answers the same request the same way again
    assert [t for t in forwarded.body["tools"] if RETRIEVE in json.dumps(t)]  # offered
    content_type = {"content-type": "application/json"}
    url = f"http://{forwarded.headers['host']}{path}"
    upstream = httpx.post(url, content=forwarded.raw, headers=content_type, timeout=10)
    assert via_proxy.status_code == upstream.status_code == 200
    assert via_proxy.content == upstream.content and b"tool" in via_proxy.content
