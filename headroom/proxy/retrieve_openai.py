"""Retrieve in the loop for OpenAI's Chat Completions: `tool_calls` on an assistant message
and one `tool` message per result, the chat.completion JSON, and the chat.completion.chunk
stream ending in `data: [DONE]`.

A streamed answer is relayed chunk by chunk. The pieces of a tool call to the retrieve tool
(by `tool_calls[].index`, named in its first piece) are kept from the client and rebuilt on
the side; the client's own calls keep flowing, renumbered to follow the calls it has seen. A
continuation's chunks carry the first answer's `id`, lose the opening `role`, and the
client's answer ends with one chunk carrying the last hop's `finish_reason`, then (when the
client asked `stream_options.include_usage`) one carrying the usage summed over hops.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from headroom.proxy.retrieve_dialect import Hop, HopRelay, Outcome, error_of, join_results
from headroom.proxy.retrieve_tool import NAME, OPENAI_TOOL, Answer, Call
from headroom.proxy.sse import Event

DONE = b"data: [DONE]\n\n"


class OpenAIDialect:
    """Chat Completions' shapes, as `retrieve_loop.Dialect` describes them."""

    tool: Mapping[str, Any] = OPENAI_TOOL
    tool_stop = "tool_calls"
    end_stop = "stop"

    def calls(self, message: Mapping[str, Any]) -> list[Call]:
        return [
            Call(str(call.get("id")), str(_function(call).get("name")), _parsed(_function(call)))
            for call in _tool_calls(message)
        ]

    def results(self, answered: list[tuple[Call, Answer]]) -> list[dict[str, Any]]:
        return [
            {"role": "tool", "tool_call_id": call.id, "content": answer.marked}
            for call, answer in answered
        ]

    def visible(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        texts = [m["content"] for m in messages if isinstance(m.get("content"), str)]
        calls = [c for m in messages for c in _tool_calls(m) if _function(c).get("name") != NAME]
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
        if calls:
            message["tool_calls"] = calls
        return message

    def identity(self, message: Mapping[str, Any]) -> Any:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(
                str(part.get("text") or "")
                for part in content
                if isinstance(part, Mapping) and part.get("type") == "text"
            )
        calls = [
            [call.get("id"), _function(call).get("name"), _parsed(_function(call))]
            for call in _tool_calls(message)
        ]
        return [content or None, calls]

    def join(
        self, pending: list[dict[str, Any]], following: Sequence[Any], order: Sequence[str]
    ) -> tuple[list[Any], int]:
        return join_results(pending, following, order, _is_tool_message, "tool_call_id")

    def continuation(self, forwarded: Mapping[str, Any], extra: list[Any]) -> dict[str, Any]:
        return {**forwarded, "messages": [*forwarded["messages"], *extra]}

    def read(self, answer: Mapping[str, Any]) -> Hop | None:
        choices = answer.get("choices")
        if answer.get("object") != "chat.completion" or not isinstance(choices, list):
            return None
        message = choices[0].get("message") if len(choices) == 1 else None
        if not isinstance(message, Mapping):
            return None
        sent: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
        calls = [_call(c.get("id"), _function(c)) for c in _tool_calls(message)]
        if calls:
            sent["tool_calls"] = calls
        return Hop.of(sent, choices[0].get("finish_reason"), answer.get("usage"))

    def write(
        self, first: Mapping[str, Any], last: Mapping[str, Any], end: Outcome
    ) -> dict[str, Any]:
        choice = dict(last["choices"][0])
        message = {k: v for k, v in choice["message"].items() if k != "tool_calls"}
        message["content"] = end.visible["content"]
        if end.visible.get("tool_calls"):
            message["tool_calls"] = end.visible["tool_calls"]
        choice.update(message=message, finish_reason=end.stop)
        return {**first, "choices": [choice], "usage": end.usage_or(first.get("usage"))}

    def stream(self) -> OpenAIStream:
        return OpenAIStream()


class OpenAIStream(HopRelay):
    """One streamed client answer over its hops (`retrieve_loop.StreamRelay`)."""

    def __init__(self) -> None:
        self.shown = 0
        """Tool calls the client has seen start."""
        self._id: Any = None
        self._finish: dict[str, Any] | None = None
        self._usage_chunk: dict[str, Any] | None = None
        super().__init__()

    def _new_hop(self) -> None:
        super()._new_hop()
        self._text: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}
        self._index: dict[int, int | None] = {}
        """Upstream tool call index -> the client's (None: a retrieve call, kept back)."""
        self._stop: str | None = None
        self._usage: dict[str, Any] | None = None

    def feed(self, event: Event) -> bytes:
        if event.data.strip() == "[DONE]":
            self.complete = True
            return self.hold(event.raw)
        data = event.json()
        if data is None or data.get("error") is not None:
            self.failed = self.failed or data is not None
            return event.raw
        self._id = self._id if self._id is not None else data.get("id")
        choices = data.get("choices")
        if not choices:
            if isinstance(data.get("usage"), dict):
                self._usage, self._usage_chunk = data["usage"], data
                return self.hold(event.raw)
            return event.raw
        choice = choices[0]
        delta = choice.get("delta") or {}
        self._build(delta)
        shown = self._shown(delta)
        if choice.get("finish_reason") is not None:
            self._stop, self._finish = choice["finish_reason"], data
            if not self._hiding:
                return self.hold(event.raw)  # content and all, sent as it came with the tail
            # Some upstreams put the last content in this chunk: it goes now, the finish waits.
            self._held.append(self._chunk(data, choice, {}, choice["finish_reason"]))
        elif shown == delta and self.hops == 0:
            return event.raw
        return self._chunk(data, choice, shown) if _meaningful(shown) else b""

    @property
    def _hiding(self) -> bool:
        """Whether the client's answer differs from the upstream's: a continuation, or a
        retrieve call in this hop."""
        return self.hops > 0 or None in self._index.values()

    def _build(self, delta: Mapping[str, Any]) -> None:
        if isinstance(delta.get("content"), str):
            self._text.append(delta["content"])
        for piece in delta.get("tool_calls") or []:
            index, function = piece.get("index"), piece.get("function") or {}
            if index not in self._calls:
                self._calls[index] = _call(piece.get("id"), {"name": function.get("name")})
                hidden = function.get("name") == NAME
                self._index[index] = None if hidden else self.shown
                self.shown += 0 if hidden else 1
            call = self._calls[index]
            call["id"] = piece.get("id") or call["id"]
            call["function"]["name"] = function.get("name") or call["function"]["name"]
            call["function"]["arguments"] += function.get("arguments") or ""

    def _shown(self, delta: Mapping[str, Any]) -> dict[str, Any]:
        """The delta as the client gets it."""
        shown = dict(delta)
        if self.hops:  # a continuation adds to the message the client already has
            shown = {k: v for k, v in shown.items() if k != "role" and v not in (None, "")}
        if "tool_calls" in delta:
            pieces = []
            for piece in delta.get("tool_calls") or []:
                target = self._index.get(piece.get("index"))
                if target is not None:
                    pieces.append(
                        piece if target == piece.get("index") else {**piece, "index": target}
                    )
            shown.pop("tool_calls", None)
            if pieces:
                shown["tool_calls"] = pieces
        return shown

    def _chunk(
        self,
        data: Mapping[str, Any],
        choice: Mapping[str, Any],
        delta: Mapping[str, Any],
        finish: str | None = None,
    ) -> bytes:
        """A chunk of the client's answer: the first hop's id, this delta and finish."""
        piece = {**choice, "delta": delta, "finish_reason": finish}
        return sse({**data, "id": self._id, "choices": [piece]})

    def _hop(self) -> Hop:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self._text) or None}
        if self._calls:
            message["tool_calls"] = [self._calls[index] for index in sorted(self._calls)]
        return Hop(message, self._stop, self._usage)

    def finish(self, stop: str | None, usage: dict[str, Any] | None) -> bytes:
        out = b""
        if self._finish is not None:
            out += self._chunk(self._finish, self._finish["choices"][0], {}, stop)
        if self._usage_chunk is not None and usage is not None:
            out += sse({**self._usage_chunk, "id": self._id, "usage": usage})
        return out + DONE

    def error(self, message: str, body: bytes = b"") -> bytes:
        self.failed = True
        return sse({"error": error_object(message, body)})


def error_object(message: str, body: bytes) -> dict[str, Any]:
    """The error an OpenAI client gets: the upstream's own, else `message` as a server
    error."""
    default = {"message": message, "type": "server_error", "param": None, "code": None}
    return error_of(body, default)


def sse(data: Mapping[str, Any]) -> bytes:
    """One chunk as OpenAI writes it."""
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def _tool_calls(message: Any) -> list[Mapping[str, Any]]:
    calls = message.get("tool_calls") if isinstance(message, Mapping) else None
    return [c for c in calls if isinstance(c, Mapping)] if isinstance(calls, list) else []


def _function(call: Mapping[str, Any]) -> Mapping[str, Any]:
    function = call.get("function")
    return function if isinstance(function, Mapping) else {}


def _parsed(function: Mapping[str, Any]) -> Any:
    """A call's arguments as JSON values (so a client that re-serialises them still matches);
    as written when they are not JSON (a retrieve call then answers that it needs a key)."""
    arguments = function.get("arguments")
    try:
        return json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        return arguments


def _call(id_: Any, function: Mapping[str, Any]) -> dict[str, Any]:
    """A tool call as it goes back upstream."""
    arguments = function.get("arguments") or ""
    return {
        "id": id_,
        "type": "function",
        "function": {"name": function.get("name"), "arguments": arguments},
    }


def _is_tool_message(message: Any) -> bool:
    return isinstance(message, Mapping) and message.get("role") == "tool"


def _meaningful(delta: Mapping[str, Any]) -> bool:
    return any(value not in (None, "", [], {}) for value in delta.values())
