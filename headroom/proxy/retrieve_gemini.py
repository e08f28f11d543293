"""Retrieve in the loop for Gemini's `generateContent` and `streamGenerateContent`:
`functionCall` parts in a `model` content, `functionResponse` parts in a `user` content, the
GenerateContentResponse JSON, and its stream of response chunks (SSE with `alt=sse`, else
one JSON array sent element by element).

The retrieve tool is offered to a request that declares functions, as a
`{"functionDeclarations": [...]}` group of its own after the client's: the client's groups
keep their bytes, and ours are the same on every turn whatever the client's hold (built-in
tools such as `googleSearch` sit in groups of their own anyway).

Gemini calls carry no id unless the model gives one, and every response must answer the
call turn's calls in number, so a call is known by its `id`, else by its name and how many
calls of that name came before it (`name#N`), and results that wait for the client's next
content are merged into it in call order. Gemini stops with `STOP` whether or not it calls
functions; the loop reads a `STOP` answer with calls as `FUNCTION_CALL`.

A streamed answer is relayed chunk by chunk, a retrieve call's part taken out of its chunk
(and a chunk left empty dropped). A continuation's chunks carry the first answer's
`responseId`, and the client's answer ends with one chunk carrying the last hop's finish
reason and the usage summed over hops.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx

from headroom.messages import is_retrieve_tool
from headroom.messages_gemini import FUNCTION_CALL, FUNCTION_RESPONSE, SYSTEM
from headroom.proxy.retrieve_dialect import Hop, HopRelay, Outcome, StreamRelay, error_of
from headroom.proxy.retrieve_loop import Framing, RetrieveLoop
from headroom.proxy.retrieve_tool import GEMINI_TOOL, NAME, Answer, Call
from headroom.proxy.sse import Event, events

TOOL_STOP = "FUNCTION_CALL"
END = "end"
"""The name of the event that closes a streamed JSON array (`]`)."""
_ARRAY_GAP = frozenset(" \t\r\n[,")


class GeminiDialect:
    """Gemini's shapes, as `retrieve_loop.Dialect` describes them."""

    tool: Mapping[str, Any] = GEMINI_TOOL
    tool_stop = TOOL_STOP
    end_stop = "STOP"

    def calls(self, message: Mapping[str, Any]) -> list[Call]:
        found = [call for part in _parts(message) if (call := _get(part, FUNCTION_CALL))]
        keys = _keys(found)
        return [
            Call(k, str(c.get("name")), c.get("args")) for k, c in zip(keys, found, strict=True)
        ]

    def results(self, answered: list[tuple[Call, Answer]]) -> list[dict[str, Any]]:
        parts = []
        for call, answer in answered:
            response: dict[str, Any] = {
                "name": call.name,
                "response": {"error" if answer.error else "output": answer.text},
            }
            if not call.id.startswith(f"{call.name}#"):  # the model gave the call an id
                response["id"] = call.id
            parts.append({"functionResponse": response})
        return [{"role": "user", "parts": parts}]

    def visible(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        parts = [part for m in messages for part in _parts(m) if not _is_retrieve(part)]
        return {"role": "model", "parts": parts}

    def identity(self, message: Mapping[str, Any]) -> Any:
        # Thoughts and signatures are left out: clients may drop them from earlier turns.
        parts = _parts(message)
        text = "".join(
            p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought")
        )
        return [text, [[c.name, c.arguments] for c in self.calls(message)]]

    def join(
        self, pending: list[dict[str, Any]], following: Sequence[Any], order: Sequence[str]
    ) -> tuple[list[Any], int]:
        nearest = following[0] if following else None
        if not isinstance(nearest, Mapping) or not any(map(_response, _parts(nearest))):
            return pending, 0
        owed = [part for content in pending for part in _parts(content)]
        given = _parts(nearest)
        answers = [*_keyed(owed), *_keyed([p for p in given if _response(p)])]
        placed = [part for key in order for k, part in answers if k == key]
        rest = [part for part in given if not any(part is p for p in placed)]
        return [{**nearest, "parts": placed + rest}], 1

    def continuation(self, forwarded: Mapping[str, Any], extra: list[Any]) -> dict[str, Any]:
        return {**forwarded, "contents": [*forwarded["contents"], *extra]}

    def read(self, answer: Mapping[str, Any]) -> Hop | None:
        candidate = _candidate(answer)
        if candidate is None:
            return None
        parts = _parts(candidate.get("content"))
        return _hop(parts, candidate.get("finishReason"), answer.get("usageMetadata"))

    def write(
        self, first: Mapping[str, Any], last: Mapping[str, Any], end: Outcome
    ) -> dict[str, Any]:
        candidate = {**(_candidate(last) or {}), "content": dict(end.visible)}
        candidate["finishReason"] = finish_of(end.stop)
        usage = end.usage_or(first.get("usageMetadata"))
        return {**first, "candidates": [candidate], "usageMetadata": usage}

    def stream(self) -> GeminiStream:
        return GeminiStream(array=False)


class GeminiLoop(RetrieveLoop):
    """The loop for Gemini: `contents`, `systemInstruction`, the tool in a group of its
    own, and both stream framings."""

    messages = "contents"

    def system(self, body: Mapping[str, Any]) -> Any:
        return _get(body, SYSTEM)

    def offer(self, body: Mapping[str, Any]) -> list[Any] | None:
        config = _get(body, ("generationConfig", "generation_config"))
        count = _get(config, ("candidateCount", "candidate_count")) if config else None
        tools = body.get("tools")
        if count not in (None, 1) or not isinstance(tools, list):
            return None
        names = [str(d.get("name")) for tool in tools for d in _declarations(tool)]
        if not names or any(is_retrieve_tool(name) for name in names):
            return None
        return [*tools, dict(self.dialect.tool)]

    def streaming(self, url: str, answer: httpx.Response) -> tuple[Framing, StreamRelay] | None:
        if answer.headers.get("content-type", "").startswith("text/event-stream"):
            return events, self.dialect.stream()
        if ":streamGenerateContent" in url:
            return array_events, GeminiStream(array=True)
        return None


class GeminiStream(HopRelay):
    """One streamed client answer over its hops (`retrieve_loop.StreamRelay`), written as
    SSE or as the elements of one JSON array (`array`)."""

    def __init__(self, array: bool) -> None:
        self.array = array
        self.written = 0
        """Chunks the client has been sent."""
        self._hid = False
        """Whether a retrieve call was taken out of the answer."""
        self._id: Any = None
        self._closing: dict[str, Any] = {}
        super().__init__()

    def _new_hop(self) -> None:
        super()._new_hop()
        self._parts: list[dict[str, Any]] = []
        self._stop: str | None = None
        self._usage: dict[str, Any] | None = None
        self._ended = not self.array

    @property
    def _hiding(self) -> bool:
        """Whether the client's answer differs from the upstream's."""
        return self.hops > 0 or self._hid

    def feed(self, event: Event) -> bytes:
        if event.name == END:
            self._ended = True
            self.complete = self._stop is not None
            return self.hold(event.raw)
        data = event.json()
        if data is None:
            return event.raw
        self._id = self._id if self._id is not None else data.get("responseId")
        candidate = _candidate(data)
        if candidate is None:
            self.failed = self.failed or "error" in data
            return self._passed(event, data)
        parts = _parts(candidate.get("content"))
        self._parts += parts
        shown = [part for part in parts if not _is_retrieve(part)]
        self._hid = self._hid or len(shown) < len(parts)
        if isinstance(data.get("usageMetadata"), dict):
            self._usage = data["usageMetadata"]
        if candidate.get("finishReason") is None:
            return self._passed(event, data, candidate, shown) if shown or not parts else b""
        self._stop, self._closing = candidate["finishReason"], data
        self.complete = self._ended
        if not self._hiding:
            return self.hold(event.raw)  # content and all, sent as it came with the tail
        # The last content may share the finishing chunk: it goes now, the finish waits.
        if not any(part != {"text": ""} for part in shown):
            return b""
        return self._write(data, {**candidate, "finishReason": None}, shown)

    def _passed(
        self,
        event: Event,
        data: dict[str, Any],
        candidate: Mapping[str, Any] | None = None,
        shown: list[dict[str, Any]] | None = None,
    ) -> bytes:
        """A chunk as it came, or rewritten for the client's answer."""
        if not self._hiding:
            self.written += 1
            return event.raw
        if candidate is None:
            return self._chunk({**data, "responseId": self._id})
        return self._write(data, candidate, shown or [])

    def _write(
        self, data: Mapping[str, Any], candidate: Mapping[str, Any], parts: list[dict[str, Any]]
    ) -> bytes:
        content = {**(candidate.get("content") or {}), "parts": parts}
        piece = {k: v for k, v in candidate.items() if v is not None}
        return self._chunk({**data, "candidates": [{**piece, "content": content}],
                            "responseId": self._id})  # fmt: skip

    def _chunk(self, data: Mapping[str, Any]) -> bytes:
        """One chunk in the client's framing."""
        text = json.dumps({k: v for k, v in data.items() if v is not None}, separators=(",", ":"))
        self.written += 1
        if not self.array:
            return f"data: {text}\r\n\r\n".encode()
        return (b"[" if self.written == 1 else b"\n,\r\n") + text.encode()

    def _hop(self) -> Hop:
        return _hop(self._parts, self._stop, self._usage)

    def finish(self, stop: str | None, usage: dict[str, Any] | None) -> bytes:
        candidate = {**(_candidate(self._closing) or {"index": 0}), "finishReason": finish_of(stop)}
        candidate["content"] = {"parts": [{"text": ""}], "role": "model"}
        closing = {**self._closing, "candidates": [candidate], "responseId": self._id}
        if usage is not None:
            closing["usageMetadata"] = usage
        return self._chunk(closing) + (b"\n]" if self.array else b"")

    def error(self, message: str, body: bytes = b"") -> bytes:
        self.failed = True
        error = error_of(body, {"code": 502, "message": message, "status": "UNAVAILABLE"})
        return self._chunk({"error": error}) + (b"\n]" if self.array else b"")


async def array_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[Event]:
    """The elements of a streamed JSON array, each as soon as it is whole: its bytes with the
    separator before it (`[` or `,`), then the closing `]` as an `END` event."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    parser = json.JSONDecoder()
    buffer = ""
    async for chunk in chunks:
        added = decoder.decode(chunk)
        buffer += added
        while "}" in added or "]" in added:  # an element or the array can only end there
            start = next((i for i, c in enumerate(buffer) if c not in _ARRAY_GAP), len(buffer))
            if start == len(buffer):
                break
            if buffer[start] == "]":
                yield Event(buffer[: start + 1].encode(), END, "")
                buffer = buffer[start + 1 :]
                continue
            try:
                _, end = parser.raw_decode(buffer, start)
            except ValueError:
                break  # the element is not whole yet
            yield Event(buffer[:end].encode(), None, buffer[start:end])
            buffer = buffer[end:]
    if buffer.strip():
        yield Event(buffer.encode(), None, buffer)


def stop_of(finish: Any, parts: Sequence[Mapping[str, Any]]) -> str | None:
    """An answer's stop reason: `TOOL_STOP` for one that stopped to call functions."""
    calls = any(_get(part, FUNCTION_CALL) for part in parts)
    return TOOL_STOP if finish == "STOP" and calls else (str(finish) if finish else None)


def finish_of(stop: str | None) -> str:
    """The `finishReason` of an answer that stopped so."""
    return stop if stop is not None and stop != TOOL_STOP else "STOP"


def _hop(parts: list[dict[str, Any]], finish: Any, usage: Any) -> Hop:
    return Hop.of({"role": "model", "parts": parts}, stop_of(finish, parts), usage)


def _get(value: Any, names: tuple[str, str]) -> Any:
    if not isinstance(value, Mapping):
        return None
    camel, snake = names
    return value[camel] if camel in value else value.get(snake)


def _candidate(answer: Mapping[str, Any]) -> dict[str, Any] | None:
    candidates = answer.get("candidates")
    if not isinstance(candidates, list) or len(candidates) != 1:
        return None
    return candidates[0] if isinstance(candidates[0], dict) else None


def _parts(content: Any) -> list[dict[str, Any]]:
    parts = content.get("parts") if isinstance(content, Mapping) else None
    return [part for part in parts if isinstance(part, dict)] if isinstance(parts, list) else []


def _declarations(tool: Any) -> list[Mapping[str, Any]]:
    found = _get(tool, ("functionDeclarations", "function_declarations"))
    return [d for d in found if isinstance(d, Mapping)] if isinstance(found, list) else []


def _response(part: Mapping[str, Any]) -> Mapping[str, Any] | None:
    found = _get(part, FUNCTION_RESPONSE)
    return found if isinstance(found, Mapping) else None


def _is_retrieve(part: Mapping[str, Any]) -> bool:
    call = _get(part, FUNCTION_CALL)
    return isinstance(call, Mapping) and call.get("name") == NAME


def _keys(calls: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each call's (or response's) key: its id, else its name and how many of that name came
    before it."""
    seen: dict[str, int] = {}
    keys = []
    for call in calls:
        name = str(call.get("name"))
        count = seen.get(name, 0)
        seen[name] = count + 1
        keys.append(str(call["id"]) if call.get("id") else f"{name}#{count}")
    return keys


def _keyed(parts: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Function response parts with their keys."""
    answers = [_response(part) or {} for part in parts]
    return list(zip(_keys(answers), parts, strict=True))
