"""Retrieve in the loop for Anthropic's Messages API: `tool_use` blocks and `tool_result`
blocks in a user message, the Message JSON, and the SSE event sequence (`message_start`,
`content_block_start/delta/stop`, `message_delta`, `message_stop`).

A streamed answer is relayed event by event. A `tool_use` block that calls the retrieve tool
is kept from the client (its input is rebuilt on the side); every other block reaches the
client as it arrives, its index renumbered to follow the blocks the client has seen, across
hops. A continuation's `message_start` and pings are dropped, and the client's message ends
with one `message_delta` (the last hop's stop reason, the usage summed over hops) and
`message_stop`. A continuation's request marks its newest block as a cache breakpoint while
the request has fewer than the four markers allowed, so later hops and turns read the
hidden exchange from the cache.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from headroom.conversation import breakpoints
from headroom.proxy.retrieve_dialect import Hop, HopRelay, Outcome, json_object, sse_event
from headroom.proxy.retrieve_tool import ANTHROPIC_TOOL, NAME, Answer, Call
from headroom.proxy.sse import Event

_THINKING = frozenset({"thinking", "redacted_thinking"})


class AnthropicDialect:
    """The Messages API's shapes, as `retrieve_loop.Dialect` describes them."""

    tool: Mapping[str, Any] = ANTHROPIC_TOOL
    tool_stop = "tool_use"
    end_stop = "end_turn"

    def calls(self, message: Mapping[str, Any]) -> list[Call]:
        return [
            Call(str(block.get("id")), str(block.get("name")), block.get("input"))
            for block in _blocks(message)
            if block.get("type") == "tool_use"
        ]

    def results(self, answered: list[tuple[Call, Answer]]) -> list[dict[str, Any]]:
        blocks = []
        for call, answer in answered:
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call.id}
            block["content"] = answer.text
            if answer.error:
                block["is_error"] = True
            blocks.append(block)
        return [{"role": "user", "content": blocks}]

    def visible(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        content = [block for m in messages for block in _blocks(m) if not _is_retrieve(block)]
        return {"role": "assistant", "content": content}

    def identity(self, message: Mapping[str, Any]) -> Any:
        # Thinking blocks are left out: clients may drop them from earlier turns (the API
        # ignores them there), and the text and tool calls identify the message.
        return [_identity(b) for b in _blocks(message) if b.get("type") not in _THINKING]

    def join(
        self, pending: list[dict[str, Any]], following: Sequence[Any], order: Sequence[str]
    ) -> tuple[list[Any], int]:
        nearest = following[0] if following else None
        if not isinstance(nearest, Mapping) or nearest.get("role") != "user":
            return pending, 0
        blocks = _blocks(nearest)
        results = {
            block.get("tool_use_id"): block
            for block in [*_blocks(pending[0]), *blocks]
            if block.get("type") == "tool_result"
        }
        placed = [results[id_] for id_ in order if id_ in results]
        rest = [
            block
            for block in blocks
            if block.get("type") != "tool_result" or block.get("tool_use_id") not in order
        ]
        return [{**nearest, "content": placed + rest}], 1

    def continuation(self, forwarded: Mapping[str, Any], extra: list[Any]) -> dict[str, Any]:
        messages = [*forwarded["messages"], *extra]
        body = {**forwarded, "messages": messages}
        if breakpoints.count_breakpoints(body) < breakpoints.MAX_BREAKPOINTS:
            newest = messages[-1]
            blocks = list(newest["content"])
            blocks[-1] = {**blocks[-1], "cache_control": {"type": "ephemeral"}}
            messages[-1] = {**newest, "content": blocks}
        return body

    def read(self, answer: Mapping[str, Any]) -> Hop | None:
        content = answer.get("content")
        if answer.get("type") != "message" or not isinstance(content, list):
            return None
        message = {"role": "assistant", "content": content}
        return Hop.of(message, answer.get("stop_reason"), answer.get("usage"))

    def write(
        self, first: Mapping[str, Any], last: Mapping[str, Any], end: Outcome
    ) -> dict[str, Any]:
        return {
            **first,
            "content": end.visible["content"],
            "stop_reason": end.stop,
            "stop_sequence": last.get("stop_sequence"),
            "usage": end.usage_or(first.get("usage")),
        }

    def stream(self) -> AnthropicStream:
        return AnthropicStream()


class AnthropicStream(HopRelay):
    """One streamed client message over its hops (`retrieve_loop.StreamRelay`)."""

    def __init__(self) -> None:
        self.shown = 0
        """Content blocks the client has seen start."""
        self._closing: dict[str, Any] = {"type": "message_delta", "delta": {}}
        super().__init__()

    def _new_hop(self) -> None:
        super()._new_hop()
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, list[str]] = {}
        self._index: dict[int, int | None] = {}
        """Upstream block index -> the client's (None: a retrieve call, kept back)."""
        self._usage: dict[str, Any] = {}
        self._stop: str | None = None

    def feed(self, event: Event) -> bytes:
        data = event.json() or {}
        kind = data.get("type")
        if kind == "message_start":
            self._usage = dict((data.get("message") or {}).get("usage") or {})
            return event.raw if self.hops == 0 else b""
        if kind == "ping":
            return event.raw if self.hops == 0 else b""
        if kind == "content_block_start":
            return self._start(event, data)
        if kind in ("content_block_delta", "content_block_stop"):
            block = self._blocks.get(data.get("index", -1))
            if block is not None and kind == "content_block_delta":
                _apply(block, data.get("delta") or {}, self._json.setdefault(data["index"], []))
            return self._renumbered(event, data)
        if kind in ("message_delta", "message_stop"):
            if kind == "message_delta":
                self._stop = (data.get("delta") or {}).get("stop_reason")
                usage = data.get("usage") or {}
                self._usage.update({k: v for k, v in usage.items() if v is not None})
                self._closing = data
            self.complete = kind == "message_stop"
            return self.hold(event.raw)
        self.failed = self.failed or kind == "error"
        return event.raw

    def _start(self, event: Event, data: dict[str, Any]) -> bytes:
        index = data.get("index", -1)
        block = dict(data.get("content_block") or {})
        self._blocks[index] = block
        if _is_retrieve(block):
            self._index[index] = None
            return b""
        self._index[index] = self.shown
        self.shown += 1
        return self._renumbered(event, data)

    def _renumbered(self, event: Event, data: dict[str, Any]) -> bytes:
        index = data.get("index")
        target = self._index.get(index) if isinstance(index, int) else index
        if target is None:
            return b""
        if target == index:
            return event.raw
        return sse_event(event.name or str(data.get("type")), {**data, "index": target})

    def _hop(self) -> Hop:
        content = []
        for index in sorted(self._blocks):
            block = self._blocks[index]
            if self._json.get(index):
                block["input"] = _input("".join(self._json[index]))
            content.append(block)
        return Hop({"role": "assistant", "content": content}, self._stop, self._usage or None)

    def finish(self, stop: str | None, usage: dict[str, Any] | None) -> bytes:
        closing = {**self._closing, "delta": {**(self._closing.get("delta") or {})}}
        closing["delta"]["stop_reason"] = stop
        if usage is not None:
            closing["usage"] = usage
        ending = sse_event("message_stop", {"type": "message_stop"})
        return sse_event("message_delta", closing) + ending

    def error(self, message: str, body: bytes = b"") -> bytes:
        self.failed = True
        error = json_object(body)
        if error is None or error.get("type") != "error":
            error = {"type": "error", "error": {"type": "api_error", "message": message}}
        return sse_event("error", error)


def _blocks(message: Any) -> list[dict[str, Any]]:
    """A message's content blocks (string content is one text block)."""
    content = message.get("content") if isinstance(message, Mapping) else None
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        return []
    return [block for block in content if isinstance(block, dict)]


def _is_retrieve(block: Mapping[str, Any]) -> bool:
    return block.get("type") == "tool_use" and block.get("name") == NAME


def _identity(block: Mapping[str, Any]) -> Any:
    kind = block.get("type")
    if kind == "text":
        return [kind, block.get("text")]
    if kind == "tool_use":
        return [kind, block.get("id"), block.get("name"), block.get("input")]
    return {k: v for k, v in block.items() if v is not None and k != "cache_control"}


def _apply(block: dict[str, Any], delta: Mapping[str, Any], json_parts: list[str]) -> None:
    """One content_block_delta applied to the block being rebuilt."""
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = str(block.get("text") or "") + str(delta.get("text") or "")
    elif kind == "input_json_delta":
        json_parts.append(str(delta.get("partial_json") or ""))
    elif kind == "thinking_delta":
        block["thinking"] = str(block.get("thinking") or "") + str(delta.get("thinking") or "")
    elif kind == "signature_delta":
        block["signature"] = delta.get("signature")
    elif kind == "citations_delta":
        block["citations"] = [*(block.get("citations") or []), delta.get("citation")]


def _input(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return {}  # a malformed input: a retrieve call answers that it needs a key
