"""Retrieve in the loop for OpenAI's Responses API: the proxy answers `headroom_retrieve`
calls itself, the client never sees them (JSON and streams, checked by the openai SDK's own
strict stream accumulator), later turns carry the hidden exchange (spliced into a resent
`input`, or named as the stored response that holds it for `previous_response_id`).

Driven by the real `openai` SDK against the fake API (tests/proxy/retrieve_rig.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from headroom import messages as conversation
from headroom.proxy.openai import OPENAI_RESPONSES
from headroom.proxy.retrieve_responses import ResponsesStream
from headroom.proxy.retrieve_tool import RESPONSES_TOOL
from headroom.proxy.sse import events
from tests.proxy.fake_anthropic import halves
from tests.proxy.fake_responses import response_events, response_object, response_usage
from tests.proxy.retrieve_rig import (
    QUESTIONS,
    Rig,
    elided_line,
    run_tool,
)
from tests.proxy.retrieving_model import LOOKING, RETRIEVE
from tests.proxy.test_anthropic import grep_def

pytestmark = pytest.mark.integration

SHELL = {
    "type": "function",
    "name": "shell",
    "description": "Run a shell command",
    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
}


def turn(rig: Rig, model: str, stream: bool, **request: Any) -> Any:
    """One Response: JSON, or streamed through the SDK's accumulator."""
    arguments = {"model": model, "tools": [SHELL], **request}
    if not stream:
        return rig.gpt.responses.create(**arguments)
    with rig.gpt.responses.stream(**arguments) as events:
        return events.get_final_response()


def outputs(reply: Any) -> list[dict[str, Any]]:
    """A `function_call_output` for each of the reply's calls, the command run."""
    return [
        {"type": "function_call_output", "call_id": item.call_id,
         "output": run_tool(json.loads(item.arguments)["command"])}
        for item in reply.output if item.type == "function_call"
    ]  # fmt: skip


def session(rig: Rig, model: str, stream: bool, stored: bool) -> list[Any]:
    """An agent loop: each question asked, each call run, until the model is done; the
    history resent whole, or continued by `previous_response_id` (`stored`)."""
    items: list[Any] = [{"role": "user", "content": QUESTIONS[0]}]
    request: dict[str, Any] = {"input": items}
    replies, questions = [], iter(QUESTIONS[1:])
    for _ in range(8):
        reply = turn(rig, model, stream, **request)
        replies.append(reply)
        new = outputs(reply)
        if not new:
            question = next(questions, None)
            if question is None:
                return replies
            new = [{"role": "user", "content": question}]
        if stored:
            request = {"previous_response_id": reply.id, "input": new}
        else:
            items += [item.model_dump(exclude_none=True) for item in reply.output] + new
    raise AssertionError("the session never ended")


def texts(reply: Any) -> list[str]:
    return [part.text for item in reply.output if item.type == "message" for part in item.content]


def sent(rig: Rig) -> list[dict[str, Any]]:
    return [r.body for r in rig.fake_gpt.received]


def retrieve_items(body: dict[str, Any]) -> list[Any]:
    return [i for i in body["input"] if RETRIEVE in json.dumps(i)]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_resent_history_retrieves_unseen_and_carries_the_exchange_next_turn(
    rig: Rig, stream: bool
) -> None:
    replies = session(rig, "retrieve-lines", stream, stored=False)
    bodies = sent(rig)
    assert len(replies) == 4 and len(bodies) == 6  # two turns took a hidden hop each
    assert not [i for r in replies for i in r.output if RETRIEVE in json.dumps(i.model_dump())]
    line = elided_line(bodies[1]["input"][2]["output"], grep_def("json"))
    assert texts(replies[1]) == [LOOKING, f"Retrieved: {line}"]
    assert [r.status for r in replies] == ["completed"] * 4
    call, result = bodies[2]["input"][-2:]
    assert (call["name"], result["call_id"], result["output"]) == (RETRIEVE, call["call_id"], line)
    ids = list(rig.fake_gpt.stored)[-len(bodies) :]  # the id of each upstream answer
    assert replies[1].id == ids[1]  # the first hop's, as a stream announces it
    # The next turn resends the two messages it saw: the proxy forwards the whole exchange.
    spliced = bodies[3]["input"][: len(bodies[2]["input"]) + 1]
    assert (
        spliced[:-1] == bodies[2]["input"]
        and spliced[-1]["content"][0]["text"] == texts(replies[1])[1]
    )
    turns = [[json.dumps(item) for item in body["input"]] for body in bodies]
    for before, after in itertools.pairwise(turns):
        assert after[: len(before)] == before
    assert {json.dumps(body["tools"][-1]) for body in bodies} == {json.dumps(RESPONSES_TOOL)}
    hops = [len(json.dumps([None, b["input"], b["tools"]])) // 4 for b in bodies[1:3]]
    assert replies[1].usage.input_tokens == sum(hops) and replies[1].usage.output_tokens == 14


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_stored_chain_names_the_response_that_holds_the_hidden_exchange(
    rig: Rig, stream: bool
) -> None:
    replies = session(rig, "retrieve-lines", stream, stored=True)
    bodies = sent(rig)
    assert len(replies) == 4 and len(bodies) == 6
    line = grep_def("json").split("\n")[-1]
    assert texts(replies[1]) == [LOOKING, f"Retrieved: {line}"]
    hidden_hop = rig.fake_gpt.received[2]
    # The continuation chains on the hop that called: only the retrieve result is new.
    assert bodies[2]["previous_response_id"] == replies[1].id
    assert [i["type"] for i in bodies[2]["input"]] == ["function_call_output"]
    # The next turn names the hop that answered (the fake refuses a call left unanswered).
    ids = list(rig.fake_gpt.stored)[-len(bodies) :]  # the id of each upstream answer
    assert bodies[3]["previous_response_id"] == ids[2] != replies[1].id == ids[1]
    assert hidden_hop.body["input"][0]["output"] == line
    assert texts(replies[3])[-1].startswith("Retrieved: ")


def test_a_retrieve_beside_a_client_call_is_owed_to_the_next_request(rig: Rig) -> None:
    first = turn(rig, "retrieve-mixed", False, input=QUESTIONS[0])
    reply = turn(rig, "retrieve-mixed", False, previous_response_id=first.id,
                 input=outputs(first))  # fmt: skip
    assert [i.type for i in reply.output] == ["message", "function_call"]
    bash = reply.output[1]
    assert bash.name == "Bash" and len(rig.fake_gpt.received) == 2
    answer = {"type": "function_call_output", "call_id": bash.call_id, "output": "no output"}
    request = {"model": "retrieve-mixed", "previous_response_id": reply.id, "input": [answer]}
    plan = OPENAI_RESPONSES.retrieve.plan(request, rig.servers.store, None)  # type: ignore[union-attr]
    assert plan.body["input"] == [answer]  # the owed result skips the conversation layer
    [owed] = plan.pending
    final = turn(rig, "retrieve-mixed", False, **{k: v for k, v in request.items() if k != "model"})
    forwarded = sent(rig)[-1]
    assert forwarded["input"] == [answer, owed] and owed["call_id"] != bash.call_id
    assert texts(final) == [f"Retrieved: {owed['output']}"]


def test_a_stream_reads_as_one_response_numbered_without_gaps(rig: Rig) -> None:
    items = [{"role": "user", "content": QUESTIONS[0]}]
    first = turn(rig, "retrieve-lines", False, input=items)
    items += [item.model_dump(exclude_none=True) for item in first.output] + outputs(first)
    body = {"model": "retrieve-lines", "input": items, "tools": [SHELL], "stream": True}
    headers = {"authorization": "Bearer sk-test", **rig.headers()}
    with httpx.stream("POST", f"{rig.proxy}/v1/responses", json=body, headers=headers) as answer:
        raw = b"".join(answer.iter_bytes())
    events = [
        json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data: ")
    ]
    kinds = [event["type"] for event in events]
    assert kinds.count("response.created") == kinds.count("response.completed") == 1
    assert kinds[-1] == "response.completed"
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert [e["output_index"] for e in added] == [0, 1]
    assert not [e for e in added if e["item"].get("name") == RETRIEVE]
    final = events[-1]["response"]
    assert final["id"] == events[0]["response"]["id"] and len(final["output"]) == 2
    assert [item["id"] for item in final["output"]] == [e["item"]["id"] for e in added]


def test_a_request_without_tools_gets_none_and_a_client_retrieve_no_second(rig: Rig) -> None:
    rig.gpt.responses.create(model="gpt-4o", input="hi")
    assert "tools" not in sent(rig)[-1]
    own = {**SHELL, "name": f"mcp__headroom__{RETRIEVE}"}
    rig.gpt.responses.create(model="gpt-4o", input="hi", tools=[SHELL, own])  # type: ignore[list-item]
    assert [t["name"] for t in sent(rig)[-1]["tools"]] == ["shell", own["name"]]


def test_a_retrieve_result_is_never_a_payload_to_compress() -> None:
    text = grep_def("json")
    for name in (RETRIEVE, f"mcp__headroom__{RETRIEVE}", "shell"):
        call = {"type": "function_call", "call_id": "c1", "name": name, "arguments": "{}"}
        result = {"type": "function_call_output", "call_id": "c1", "output": text}
        found = conversation.read([{"role": "user", "content": "q"}, call, result])
        assert len(found.payloads) == (1 if name == "shell" else 0)


def test_a_stateless_retrieve_beside_a_client_call_is_answered_in_call_order_next_turn(
    rig: Rig,
) -> None:
    items: list[Any] = [{"role": "user", "content": QUESTIONS[0]}]
    first = turn(rig, "retrieve-mixed", False, input=items)
    items += [item.model_dump(exclude_none=True) for item in first.output] + outputs(first)
    reply = turn(rig, "retrieve-mixed", True, input=items)
    assert [(i.type, getattr(i, "name", None)) for i in reply.output] == [
        ("message", None), ("function_call", "Bash")
    ]  # fmt: skip
    bash = reply.output[1]
    items += [item.model_dump(exclude_none=True) for item in reply.output]
    items.append({"type": "function_call_output", "call_id": bash.call_id, "output": "none"})
    final = turn(rig, "retrieve-mixed", False, input=items)
    forwarded = sent(rig)[-1]["input"]
    calls = [i for i in forwarded if i.get("type") == "function_call"][-2:]
    assert [c["name"] for c in calls] == [RETRIEVE, "Bash"]
    assert [i["call_id"] for i in forwarded[-2:]] == [c["call_id"] for c in calls]
    assert texts(final) == [f"Retrieved: {forwarded[-2]['output']}"]


def relayed(relay: ResponsesStream, raw: bytes) -> bytes:
    """What the client gets of one hop's stream while it arrives, then its held tail."""

    async def one() -> AsyncIterator[bytes]:
        yield raw

    async def run() -> bytes:
        return b"".join([relay.feed(event) async for event in events(one())])

    return asyncio.run(run()) + relay.tail()


def test_a_stream_without_a_retrieve_call_passes_as_it_came() -> None:
    item = {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "annotations": [], "text": "Done."}]}  # fmt: skip
    answer = response_object({"model": "m"}, "resp_1", [item], response_usage(3))

    async def upstream() -> bytes:
        return b"".join([chunk async for chunk in response_events(answer, halves)])

    raw = asyncio.run(upstream())
    assert relayed(ResponsesStream(), raw) == raw
