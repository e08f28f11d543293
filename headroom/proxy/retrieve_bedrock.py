"""Retrieve in the loop for Bedrock's invoke and invoke-with-response-stream with an
Anthropic model: the body and the JSON answer are Anthropic's Messages, so Anthropic's
dialect serves; a stream is AWS event-stream, each `chunk` message carrying one Anthropic
event as base64 in its JSON payload.

A stream is read message by message (`event_messages`, botocore's decoder, CRCs checked)
and relayed by Anthropic's relay: an event it passes as it came goes to the client as the
message it came in, byte for byte; an event it rewrites (a renumbered block, the closing
`message_delta` and `message_stop`) goes as a new `chunk` message (`chunk`), and the closing
`message_stop` carries Bedrock's invocation metrics summed over hops. A continuation the
upstream refuses ends the stream with an event-stream exception message, as Bedrock ends a
stream that fails (`throttlingException`, ...). Every continuation goes through the Bedrock
client, whose request hook signs it.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from headroom.proxy.retrieve_anthropic import AnthropicStream
from headroom.proxy.retrieve_dialect import Hop, StreamRelay, json_object, sse_event
from headroom.proxy.retrieve_loop import Framing, RetrieveLoop, total_usage
from headroom.proxy.sse import Event

EVENT_STREAM = "application/vnd.amazon.eventstream"
METRICS = "amazon-bedrock-invocationMetrics"
HELD = ("message_delta", "message_stop")
"""The events Anthropic's relay holds back for the tail."""
EXCEPTION = "exception"
"""The name of an event-stream exception message's event."""


class BedrockLoop(RetrieveLoop):
    """The loop for Bedrock's Anthropic models: event-stream streams, and refusals as
    event-stream exceptions."""

    def streaming(self, url: str, answer: httpx.Response) -> tuple[Framing, StreamRelay] | None:
        if answer.headers.get("content-type", "").startswith(EVENT_STREAM):
            return event_messages, BedrockStream()
        return None

    def refused(self, relay: StreamRelay, answer: httpx.Response, body: bytes) -> bytes:
        kind = answer.headers.get("x-amzn-ErrorType", "").split(":", 1)[0]
        message = (json_object(body) or {}).get("message")
        text = message or f"the upstream answered {answer.status_code}: {body[:500]!r}"
        aws = {"__type": kind or "InternalServerException", "message": text}
        return relay.error(text, json.dumps(aws).encode())


class BedrockStream(AnthropicStream):
    """Anthropic's stream relay over event-stream messages (`retrieve_loop.StreamRelay`)."""

    def __init__(self) -> None:
        self._originals: dict[bytes, bytes] = {}
        """The SSE form of an event -> the message it came in (the closing ones for the
        hop's tail)."""
        self._metrics: list[dict[str, Any]] = []
        super().__init__()

    def feed(self, event: Event) -> bytes:
        data = event.json() if event.name == "chunk" else None
        if data is None:
            self.failed = self.failed or event.name == EXCEPTION
            return event.raw
        kind = str(data.get("type"))
        as_sse = sse_event(kind, data)
        self._originals[as_sse] = event.raw
        if isinstance(data.get(METRICS), dict):
            self._metrics.append(data[METRICS])
        framed = self._framed(super().feed(Event(as_sse, kind, event.data)))
        if kind not in HELD:
            del self._originals[as_sse]  # only the closing events wait for the tail
        return framed

    def end_hop(self) -> Hop:
        self._originals.clear()
        return super().end_hop()

    def tail(self) -> bytes:
        return self._framed(super().tail())

    def finish(self, stop: str | None, usage: dict[str, Any] | None) -> bytes:
        return self._framed(super().finish(stop, usage), total_usage(self._metrics))

    def error(self, message: str, body: bytes = b"") -> bytes:
        self.failed = True
        error = json_object(body) or {}
        kind = str(error.get("__type") or "InternalServerException")
        text = json.dumps({"message": str(error.get("message") or message)}).encode()
        headers = {
            ":exception-type": kind[:1].lower() + kind[1:],
            ":content-type": "application/json",
            ":message-type": "exception",
        }
        return event_message(headers, text)

    def _framed(self, events: bytes, metrics: dict[str, Any] | None = None) -> bytes:
        """Anthropic's SSE events as event-stream messages: each as it came if it did."""
        out = []
        for piece in events.split(b"\n\n")[:-1]:
            raw = piece + b"\n\n"
            if raw in self._originals:
                out.append(self._originals[raw])
                continue
            data = json.loads(raw.split(b"data: ", 1)[1])
            if metrics and data.get("type") == "message_stop":
                data[METRICS] = metrics
            out.append(chunk(data))
        return b"".join(out)


async def event_messages(chunks: AsyncIterator[bytes]) -> AsyncIterator[Event]:
    """The messages of an event-stream, each as soon as it is whole: a `chunk` as its
    Anthropic event (name `chunk`), an exception as its payload (name `exception`), each with
    the bytes it came as. A garbled message ends the stream there."""
    from botocore.eventstream import EventStreamBuffer, ParserError

    buffer = EventStreamBuffer()
    unread = b""
    async for data in chunks:
        buffer.add_data(data)
        unread += data
        try:
            for message in buffer:
                size = message.prelude.total_length
                raw, unread = unread[:size], unread[size:]
                yield _event(raw, message.headers, message.payload)
        except ParserError:
            return


def _event(raw: bytes, headers: Mapping[str, Any], payload: bytes) -> Event:
    if headers.get(":message-type") != "event":
        return Event(raw, EXCEPTION, payload.decode("utf-8", errors="replace"))
    name = str(headers.get(":event-type"))
    try:
        decoded = base64.b64decode(json.loads(payload)["bytes"]).decode()
    except (ValueError, KeyError, TypeError):
        return Event(raw, name, "")  # not a chunk the relay can read: passed as it came
    return Event(raw, name, decoded)


def chunk(event: Mapping[str, Any]) -> bytes:
    """One `chunk` message carrying an Anthropic event, as Bedrock sends it."""
    encoded = base64.b64encode(json.dumps(event, separators=(",", ":")).encode()).decode()
    headers = {
        ":event-type": "chunk",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return event_message(headers, json.dumps({"bytes": encoded}).encode())


def event_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message: the total and headers lengths and their CRC32, the headers
    (strings, type 7), the payload, and the CRC32 of everything before it."""
    encoded = b"".join(
        struct.pack(">B", len(name)) + name.encode()
        + struct.pack(">BH", 7, len(value.encode())) + value.encode()
        for name, value in headers.items()
    )  # fmt: skip
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    body = prelude + struct.pack(">I", binascii.crc32(prelude)) + encoded + payload
    return body + struct.pack(">I", binascii.crc32(body))
