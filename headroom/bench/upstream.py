"""A stand-in for the Anthropic Messages API on loopback, for `headroom bench --proxy` (it runs
where there is no API key) and the proxy's fault and disconnect tests.

`POST /v1/messages` answers as the real API does: a Messages JSON body, or with
`stream: true` the SSE sequence (message_start, content_block_start, ping,
content_block_delta..., content_block_stop, message_delta with usage, message_stop), with
`input_tokens` estimated cheaply from the body's size. Error bodies are Anthropic's
(`{"type": "error", "error": {"type", "message"}, "request_id"}`).

A request picks a fault with the `x-bench-fault` header:

    stall:MS    wait MS milliseconds before answering
    hang        never answer (until the client leaves)
    gap:MS      stream, waiting MS milliseconds before each event after the first
    500 | 529   api_error / overloaded_error
    429         rate_limit_error with `retry-after`
    cut:N       send the first N SSE events (or half the JSON body), then close the connection

With an `x-bench-id` header, the digest of what was sent is recorded under that id, and so is
a client that left before the answer was complete; `GET /bench/record` returns both (what a
client should have received, and which calls were cancelled).
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

FAULT_HEADER = "x-bench-fault"
ID_HEADER = "x-bench-id"
ANSWER = ("The payload", " was read", " in full.")
RETRY_AFTER = "17"
_ERRORS = {
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
}


@dataclass
class Sent:
    """What the upstream sent for one request: status, body digest and size, and whether it
    cut the answer short."""

    status: int
    sha256: str
    length: int
    cut: bool = False


@dataclass
class Upstream:
    """The fake API as an ASGI app, and what it has sent and seen cancelled, by bench id."""

    sent: dict[str, Sent] = field(default_factory=dict)
    left: dict[str, str] = field(default_factory=dict)
    """Bench ids whose client left early: `before headers` or `mid-stream`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        raw = await _body(receive)
        route = (scope["method"], scope["path"])
        if route == ("GET", "/livez"):
            await _json(send, 200, {"status": "ok"})
        elif route == ("GET", "/bench/record"):
            record = {"sent": {k: asdict(v) for k, v in self.sent.items()}, "left": self.left}
            await _json(send, 200, record)
        elif route == ("POST", "/v1/messages/count_tokens"):
            await _json(send, 200, {"input_tokens": len(raw) // 4})
        elif route == ("POST", "/v1/messages"):
            await self._messages(scope, raw, receive, send)
        else:
            await _json(send, 404, _error("not_found_error", f"Not found: {scope['path']}"))

    async def _messages(self, scope: Scope, raw: bytes, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        ident = headers.get(ID_HEADER, "")
        fault, _, arg = headers.get(FAULT_HEADER, "").partition(":")
        out = _Recorder(send, self, ident)
        try:
            body = json.loads(raw)
            model, stream = str(body["model"]), bool(body.get("stream"))
        except (ValueError, KeyError, TypeError) as exc:
            await out.whole(400, _error("invalid_request_error", f"bad request body: {exc}"))
            return
        if fault == "hang" or fault == "stall":
            wait = float("inf") if fault == "hang" else int(arg) / 1000
            if await _client_leaves(receive, wait):
                self.left[ident] = "before headers"
                return
        if fault in ("500", "529", "429"):
            kind, text = _ERRORS[int(fault)]
            extra = {"retry-after": RETRY_AFTER} if fault == "429" else {}
            await out.whole(int(fault), _error(kind, text), extra)
            return
        usage = {"input_tokens": len(raw) // 4, "output_tokens": len(ANSWER)}
        cut = int(arg) if fault == "cut" else None
        if not stream:
            await out.whole(200, message(model, usage), cut=cut)
            return
        gap = int(arg) / 1000 if fault == "gap" else 0.0
        await out.stream(events(model, usage), receive, gap, cut)


class _Recorder:
    """Sends one answer and records what was sent under the request's bench id."""

    def __init__(self, send: Send, upstream: Upstream, ident: str) -> None:
        self.send, self.upstream, self.ident = send, upstream, ident

    async def whole(
        self, status: int, body: Any, headers: dict[str, str] | None = None, cut: int | None = None
    ) -> None:
        data = json.dumps(body).encode()
        sent = data if cut is None else data[: len(data) // 2]
        await _start(
            self.send,
            status,
            "application/json",
            {**(headers or {}), "content-length": str(len(data))},
        )
        await self.send({"type": "http.response.body", "body": sent, "more_body": cut is not None})
        self._record(status, sent, cut is not None)
        # A cut answer returns without its last message: the server closes the connection.

    async def stream(
        self, chunks: list[bytes], receive: Receive, gap: float, cut: int | None
    ) -> None:
        planned = chunks if cut is None else chunks[:cut]
        sent: list[bytes] = []
        await _start(
            self.send, 200, "text/event-stream; charset=utf-8", {"cache-control": "no-cache"}
        )
        async with anyio.create_task_group() as group:
            left = anyio.Event()

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                left.set()

            group.start_soon(watch)
            for chunk in planned:
                if sent and gap:
                    with anyio.move_on_after(gap):
                        await left.wait()
                if left.is_set():
                    self.upstream.left[self.ident] = "mid-stream"
                    break
                await self.send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent.append(chunk)
            if len(sent) == len(chunks):
                await self.send({"type": "http.response.body", "body": b"", "more_body": False})
            group.cancel_scope.cancel()
        self._record(200, b"".join(sent), len(sent) < len(chunks))

    def _record(self, status: int, data: bytes, cut: bool) -> None:
        if self.ident:
            digest = hashlib.sha256(data).hexdigest()
            self.upstream.sent[self.ident] = Sent(status, digest, len(data), cut)


async def _client_leaves(receive: Receive, seconds: float) -> bool:
    """Waits up to `seconds`; True as soon as the client disconnects."""
    with anyio.move_on_after(seconds):
        while (await receive())["type"] != "http.disconnect":
            pass
        return True
    return False


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        kind = (await receive())["type"]
        if kind == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif kind == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _start(send: Send, status: int, content_type: str, headers: dict[str, str]) -> None:
    pairs = {"content-type": content_type, "request-id": "req_bench0001", **headers}
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})


async def _json(send: Send, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    await _start(send, status, "application/json", {"content-length": str(len(data))})
    await send({"type": "http.response.body", "body": data, "more_body": False})


def _error(kind: str, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_bench0001",
    }


def message(model: str, usage: dict[str, int], stop: str | None = "end_turn") -> dict[str, Any]:
    """A Messages API answer with one text block (empty and unfinished for message_start)."""
    text = "".join(ANSWER) if stop else ""
    return {
        "id": "msg_bench0001",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}] if stop else [],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {**usage, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }


def events(model: str, usage: dict[str, int]) -> list[bytes]:
    """The SSE events of a streamed text answer, each one chunk as the API sends them."""
    start = message(model, {**usage, "output_tokens": 1}, stop=None)
    block = {"type": "text", "text": ""}
    data: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"message": start}),
        ("content_block_start", {"index": 0, "content_block": block}),
        ("ping", {}),
        *(
            ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}})
            for piece in ANSWER
        ),
        ("content_block_stop", {"index": 0}),
        (
            "message_delta",
            {
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        ),
        ("message_stop", {}),
    ]
    return [
        f"event: {name}\ndata: {json.dumps({'type': name, **fields})}\n\n".encode()
        for name, fields in data
    ]


def serve(port: int = 0) -> None:
    """Serves a fresh fake API on 127.0.0.1:`port` (0: any free port) until interrupted,
    after printing the port it listens on."""
    import uvicorn

    # IPPROTO_TCP, not the default 0: asyncio turns Nagle off only for sockets that name TCP,
    # and with Nagle on, a keep-alive answer waits for the client's delayed ACK (40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    print(sock.getsockname()[1], flush=True)
    # Cut answers end without their last message on purpose; uvicorn would log each one.
    config = uvicorn.Config(Upstream(), log_level="critical", ws="none", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


def main() -> None:
    """`python -m headroom.bench.upstream [PORT]`."""
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0)


if __name__ == "__main__":
    main()
