"""The retrieve loop's parts on their own: a stream relayed hop by hop (checked with the
openai SDK's own chunk accumulator), what identifies a client's assistant message when its
SDK sends it back changed, and splices kept to their conversation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from headroom.proxy import hidden_turns
from headroom.proxy.retrieve_anthropic import AnthropicDialect
from headroom.proxy.retrieve_loop import StreamRelay
from headroom.proxy.retrieve_openai import OpenAIStream
from headroom.proxy.sse import events
from headroom.store.memory import MemoryStore
from tests.proxy.retrieving_model import RETRIEVE


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    """One chat.completion.chunk as the API writes it."""
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    data = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-4o", "choices": [choice]}  # fmt: skip
    return f"data: {json.dumps(data)}\n\n".encode()


def relayed(relay: StreamRelay, raw: bytes) -> bytes:
    """What the client gets of one hop's stream while it arrives."""

    async def one() -> AsyncIterator[bytes]:
        yield raw

    async def run() -> bytes:
        return b"".join([relay.feed(event) async for event in events(one())])

    return asyncio.run(run())


def completion(raw: bytes) -> Any:
    """The client's stream as the openai SDK's accumulator reads it."""
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for event in raw.split(b"\n\n"):
        if event.startswith(b"data: {"):
            state.handle_chunk(ChatCompletionChunk.model_validate_json(event[6:]))
    return state.get_final_completion()


OPENING = chunk({"role": "assistant", "content": ""})
LAST_WORDS = chunk({"content": " and done."}, "stop")  # some compatible servers end so
DONE = b"data: [DONE]\n\n"


def test_a_last_chunk_with_content_and_no_retrieve_passes_as_it_came() -> None:
    upstream = OPENING + chunk({"content": "Looked"}) + LAST_WORDS + DONE
    relay = OpenAIStream()
    client = relayed(relay, upstream)
    assert client + relay.tail() == upstream


def test_a_last_chunk_with_content_after_a_retrieve_call_is_shown_once() -> None:
    call = {"index": 0, "id": "call_1", "type": "function",
            "function": {"name": RETRIEVE, "arguments": '{"key": "k"}'}}  # fmt: skip
    first = OPENING + chunk({"tool_calls": [call]}) + LAST_WORDS + DONE
    relay = OpenAIStream()
    client = relayed(relay, first)
    hop = relay.end_hop()
    assert hop.message["content"] == " and done." and hop.stop == "stop"
    client += relayed(relay, OPENING + chunk({"content": " Then more."}, "stop") + DONE)
    relay.end_hop()
    client += relay.finish("stop", None)
    message = completion(client).choices[0].message
    assert message.content == " and done. Then more." and message.tool_calls is None
    assert client.count(b'"finish_reason":"stop"') == 1


def test_an_anthropic_message_sent_back_without_its_thinking_keeps_its_splice() -> None:
    dialect, store = AnthropicDialect(), MemoryStore()
    thinking = {"type": "thinking", "thinking": "Look it up.", "signature": "c2ln"}
    text = {"type": "text", "text": "Found it."}
    call = {"type": "tool_use", "id": "toolu_1", "name": RETRIEVE, "input": {"key": "k"}}
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                            "content": "the original"}]}  # fmt: skip
    hidden: list[dict[str, Any]] = [{"role": "assistant", "content": [thinking, call]}, result,
              {"role": "assistant", "content": [text]}]  # fmt: skip
    client = [{"role": "user", "content": "Where?"}]
    visible = {"role": "assistant", "content": [thinking, text]}
    hidden_turns.record(store, "c", client, visible, hidden_turns.Exchange(hidden), dialect)
    resent = {"role": "assistant", "content": [{**text, "citations": None}]}
    assert hidden_turns.splice(store, "c", [*client, resent], dialect) == [*client, *hidden]


def test_a_splice_stays_in_its_conversation_and_a_damaged_note_only_loses_it() -> None:
    dialect, store = AnthropicDialect(), MemoryStore()
    body = {"system": "Be brief.", "messages": [{"role": "user", "content": "Where?"}]}
    mine, theirs = (hidden_turns.conversation(s, body) for s in ("session-a", "session-b"))
    assert mine != theirs
    visible = {"role": "assistant", "content": [{"type": "text", "text": "Here."}]}
    hidden: list[dict[str, Any]] = [
        {"role": "assistant", "content": [{"type": "text", "text": "Hidden."}]}
    ]
    exchange = hidden_turns.Exchange(hidden)
    hidden_turns.record(store, mine, body["messages"], visible, exchange, dialect)
    sent = [*body["messages"], visible]
    assert hidden_turns.splice(store, mine, sent, dialect) == [*body["messages"], *hidden]
    assert hidden_turns.splice(store, theirs, sent, dialect) == sent
    [key] = json.loads(store.recall(f"hidden-index:{mine}") or "[]")
    store.remember(f"hidden:{key}", "{damaged")
    assert hidden_turns.splice(store, mine, sent, dialect) == sent
    store.remember(f"hidden-index:{mine}", "{damaged")
    assert hidden_turns.splice(store, mine, sent, dialect) == sent
