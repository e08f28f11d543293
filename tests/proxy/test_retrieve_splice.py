"""The hidden exchanges of retrieve in the loop, spliced back into later turns: results held
for the client's next message, the loop's last round, clients that re-serialise what they
got, and requests that cannot carry a splice.

Driven by the real `anthropic` and `openai` SDKs against the fake APIs (tests/proxy/
retrieve_rig.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from headroom.conversation.prefix import without_cache_control
from headroom.proxy.retrieve_loop import MAX_ROUNDS
from tests.proxy.retrieve_rig import (
    Rig,
    assert_prefixes_stable,
    claude_turn,
    elided_line,
    gpt_tool_conversation,
    gpt_turn,
    result_text,
    texts,
    tool_conversation,
)
from tests.proxy.retrieving_model import LOOKING, RETRIEVE
from tests.proxy.test_anthropic import grep_def

pytestmark = pytest.mark.integration


def test_retrieve_beside_a_client_call_is_answered_and_spliced_into_the_next_turn(
    rig: Rig,
) -> None:
    messages = tool_conversation()
    reply = claude_turn(rig, "retrieve-mixed", messages, stream=True)
    assert [b.type for b in reply.content] == ["text", "tool_use"]
    assert reply.content[1].name == "Bash" and reply.stop_reason == "tool_use"
    assert len(rig.fake_claude.received) == 1  # the client's tool result is needed to go on
    bash = reply.content[1]
    # Sent back as Claude Code does: nulls dropped, a breakpoint on the newest block.
    resent = [b.model_dump(exclude_none=True) for b in reply.content]
    resent[-1]["cache_control"] = {"type": "ephemeral"}
    messages.append({"role": "assistant", "content": resent})
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


@pytest.mark.parametrize("compact", [False, True], ids=["as-sent", "re-serialised"])
def test_an_openai_retrieve_beside_a_client_call_is_spliced_into_the_next_turn(
    rig: Rig, compact: bool
) -> None:
    messages = gpt_tool_conversation()
    reply = gpt_turn(rig, "retrieve-mixed", messages, stream=True)
    message = reply.choices[0].message
    assert [c.function.name for c in message.tool_calls or []] == ["Bash"]
    assert message.content == LOOKING and reply.choices[0].finish_reason == "tool_calls"
    resent = message.model_dump(exclude_none=True)
    if compact:  # as clients that parse the arguments and dump them again do
        for call in resent["tool_calls"]:
            arguments = json.loads(call["function"]["arguments"])
            call["function"]["arguments"] = json.dumps(arguments, separators=(",", ":"))
    messages.append(resent)
    bash = (message.tool_calls or [])[0]
    messages.append({"role": "tool", "tool_call_id": bash.id, "content": "no output"})
    reply = gpt_turn(rig, "retrieve-mixed", messages, stream=False)
    forwarded = rig.fake_gpt.received[-1].body["messages"]
    calls = forwarded[-3]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == [RETRIEVE, "Bash"]
    assert [m["tool_call_id"] for m in forwarded[-2:]] == [calls[0]["id"], bash.id]
    assert reply.choices[0].message.content == f"Retrieved: {forwarded[-2]['content']}"


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


@pytest.mark.parametrize("tools", [False, True], ids=["no-tools", "own-retrieve"])
def test_a_request_that_cannot_offer_the_tool_goes_without_the_hidden_exchange(
    rig: Rig, tools: bool
) -> None:
    messages = tool_conversation()
    reply = claude_turn(rig, "retrieve-lines", messages, stream=False)
    assert len(rig.fake_claude.received) == 2  # the exchange is hidden
    messages += [
        {"role": "assistant", "content": [b.model_dump() for b in reply.content]},
        {"role": "user", "content": "Summarise."},
    ]
    own: Any = {"name": f"mcp__headroom__{RETRIEVE}", "input_schema": {"type": "object"}}
    extra = {"tools": [own]} if tools else {"tools": []}
    claude_turn(rig, "claude-sonnet-4-6", messages, stream=False, **extra)
    forwarded = rig.fake_claude.received[-1].body
    assert RETRIEVE not in json.dumps(forwarded["messages"])  # no call to a tool not offered
    assert [m["role"] for m in forwarded["messages"]] == [m["role"] for m in messages]
