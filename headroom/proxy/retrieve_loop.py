"""Retrieve in the loop: the proxy answers the model's `headroom_retrieve` calls itself, and
the client gets an answer in which those round trips do not appear.

`RetrieveLoop.plan` runs before the conversation layer: when the request carries tools, it
offers the retrieve tool, last, and splices the conversation's remembered exchanges back
into the client's messages (`hidden_turns`). `RetrieveLoop.relay` then stands in
for `upstream.relay`:

- A JSON answer is read whole. While every tool call it makes is a retrieve (at most
  `MAX_ROUNDS` times), the calls are answered from the store and the conversation continues
  upstream. The client gets one answer: the hops' content without the retrieve calls, the
  last hop's stop reason (the end of the turn when only retrieve calls were left) and the
  usage summed over hops. Retrieve calls made beside a client's tool calls are answered
  too; their results wait for the client's next message.
- A stream reaches the client event by event as it arrives, except a retrieve call's own
  block and the hop's closing events. A continuation's events join the same client message,
  and one closing sequence ends it, with the usage summed over hops.

An answer that calls no retrieve reaches the client as the upstream sent it (decoded, if it
came compressed). An error from a continuation is the client's answer (JSON) or an error
event (stream).

A provider brings a `Dialect` (`retrieve_dialect`), and `RetrieveLoop` reads a chat-shaped
body (`messages`, `system`, `tools`, `n`) and SSE streams; a provider whose body or streams
differ subclasses it and changes the step that differs: where the conversation sits
(`messages`, `system`), how the tool is offered (`offer`), how a stream is framed
(`streaming`), how a refused continuation ends a stream (`refused`), what is remembered
(`remember`), or the whole `plan`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from headroom.errors import StoreError
from headroom.proxy import hidden_turns, upstream
from headroom.proxy.retrieve_dialect import Dialect as Dialect
from headroom.proxy.retrieve_dialect import Hop as Hop
from headroom.proxy.retrieve_dialect import Outcome, json_object
from headroom.proxy.retrieve_dialect import StreamRelay as StreamRelay
from headroom.proxy.retrieve_tool import NAME, Answer, Call, answer, offer
from headroom.proxy.sse import Event, events
from headroom.store.base import Store

MAX_ROUNDS = 5
"""Continuations a request may take for retrieve calls; then the client gets what there is."""
_NOT_RELAYED = upstream.HOP_BY_HOP | {"content-length", "content-encoding"}

Relay = Callable[
    [httpx.AsyncClient, Request, str, bytes, upstream.Finished | None], Awaitable[Response]
]
"""`upstream.relay`'s signature."""
Framing = Callable[[AsyncIterator[bytes]], AsyncIterator[Event]]
"""How a stream's bytes divide into events (`sse.events` for server-sent events)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """A request as the conversation layer gets it, and what the loop needs to know of it."""

    body: dict[str, Any]
    """The client's body, remembered exchanges spliced back and the retrieve tool offered."""
    conversation: str
    """The conversation's name (`hidden_turns.conversation`) where exchanges are spliced
    and remembered; empty where they are not (the upstream keeps the history)."""
    client: list[Any]
    """The client's own messages."""
    offered: bool
    """Whether the loop runs: the retrieve tool is offered, or `pending` waits to be sent."""
    pending: list[Any] = field(default_factory=list)
    """Retrieve results the upstream needs with this request, added after the conversation
    layer (which would take them for tool outputs to compress: their calls are not in the
    request)."""


@dataclass(frozen=True)
class RetrieveLoop:
    """Retrieve in the loop for one provider: a chat-shaped body (`messages`, `system`,
    `tools`, `n`) and SSE streams; the other providers' loops change what differs."""

    dialect: Dialect
    messages: ClassVar[str] = "messages"
    """The body's field that holds the conversation."""

    def plan(self, body: dict[str, Any], store: Store, session: str | None) -> Plan:
        """The body to prepare: remembered exchanges spliced back, the tool offered."""
        messages = body.get(self.messages)
        tools = self.offer(body)
        if not isinstance(messages, list) or tools is None:
            # Without the tool offered nothing is spliced: a retrieve call in the history
            # would name a tool the request does not define.
            return Plan(body, "", [], False)
        named = {"system": self.system(body), "messages": messages}
        name = hidden_turns.conversation(session, named)
        spliced = hidden_turns.splice(store, name, messages, self.dialect)
        return Plan({**body, self.messages: spliced, "tools": tools}, name, messages, True)

    def system(self, body: Mapping[str, Any]) -> Any:
        """The request's system prompt, which names its conversation with the messages."""
        return body.get("system")

    def offer(self, body: Mapping[str, Any]) -> list[Any] | None:
        """The request's tools with the retrieve tool offered, or None where it is not: no
        tools, a retrieve tool of the client's own, or several answers asked for (`n`)."""
        single = body.get("n") in (None, 1)  # one answer per request: a loop can continue it
        return offer(body.get("tools"), self.dialect.tool) if single else None

    def streaming(self, url: str, answer: httpx.Response) -> tuple[Framing, StreamRelay] | None:
        """How a streamed answer is read and relayed; None for a whole (JSON) answer."""
        if answer.headers.get("content-type", "").startswith("text/event-stream"):
            return events, self.dialect.stream()
        return None

    def refused(self, relay: StreamRelay, answer: httpx.Response, body: bytes) -> bytes:
        """The event that ends a streamed client answer whose continuation the upstream
        refused with `answer` (its `body` read)."""
        return relay.error(f"the upstream answered {answer.status_code}: {body[:500]!r}", body)

    def remember(
        self, store: Store, plan: Plan, visible: dict[str, Any], exchange: hidden_turns.Exchange
    ) -> None:
        """Keep the exchange behind `visible` for the conversation's later requests."""
        if plan.conversation:
            hidden_turns.record(
                store, plan.conversation, plan.client, visible, exchange, self.dialect
            )

    def relay(self, store: Store, plan: Plan, forwarded: dict[str, Any]) -> Relay:
        """A relay for one request whose forwarded body is `forwarded`."""
        if plan.pending:
            forwarded = self.dialect.continuation(forwarded, plan.pending)

        async def run(
            client: httpx.AsyncClient,
            request: Request,
            url: str,
            content: bytes,
            finished: upstream.Finished | None = None,
        ) -> Response:
            if plan.pending:
                content = json.dumps(forwarded).encode()
            relayed = await upstream.relay(client, request, url, content)
            if not isinstance(relayed, upstream.Relayed) or relayed.status_code >= 400:
                return relayed
            loop = _Loop(self, store, plan, forwarded, client, request, url)
            first = relayed.answer
            streaming = self.streaming(url, first)
            if streaming is not None:
                return loop.stream(first, finished, *streaming)
            return await loop.whole(first, finished)

        return run


class _Loop:
    """One client request's hops."""

    def __init__(
        self,
        loop: RetrieveLoop,
        store: Store,
        plan: Plan,
        forwarded: dict[str, Any],
        client: httpx.AsyncClient,
        request: Request,
        url: str,
    ) -> None:
        self.loop, self.dialect = loop, loop.dialect
        self.store, self.plan, self.forwarded = store, plan, forwarded
        self.client, self.request, self.url = client, request, url
        self.hops: list[Hop] = []
        self.extra: list[Any] = []
        """The hidden messages sent upstream so far."""
        self.results: list[dict[str, Any]] | None = None
        """The result messages for the last hop's retrieve calls, if it made any."""

    async def step(self, hop: Hop) -> bool:
        """Answers the hop's retrieve calls; whether the conversation continues upstream."""
        self.hops.append(hop)
        calls = self.dialect.calls(hop.message)
        wanted = [call for call in calls if call.name == NAME]
        self.results = None
        if not wanted:
            return False
        answers = await run_in_threadpool(_answer_all, self.store, wanted)
        self.results = self.dialect.results(list(zip(wanted, answers, strict=True)))
        # Only an answer that stopped for its calls, all of them retrieves, is continued.
        done = hop.stop != self.dialect.tool_stop or len(wanted) < len(calls)
        if done or len(self.hops) > MAX_ROUNDS:
            return False
        self.extra += [hop.message, *self.results]
        return True

    @property
    def hidden(self) -> bool:
        """Whether any retrieve call was answered."""
        return len(self.hops) > 1 or self.results is not None

    def continuation(self) -> bytes:
        """The body of the next hop's request: the forwarded one and the hidden messages."""
        return json.dumps(self.dialect.continuation(self.forwarded, self.extra)).encode()

    async def conclude(self) -> Outcome:
        """What the client's answer says of the hops; the exchange remembered."""
        visible = self.dialect.visible([hop.message for hop in self.hops])
        last = self.hops[-1]
        stop = last.stop
        if stop == self.dialect.tool_stop and not self.dialect.calls(visible):
            stop = self.dialect.end_stop
        exchange = hidden_turns.Exchange([*self.extra, last.message], self.results or [])
        # A note the store cannot keep costs the next turn its splice, not this answer.
        with contextlib.suppress(StoreError):
            await run_in_threadpool(self.loop.remember, self.store, self.plan, visible, exchange)
        return Outcome(visible, stop, total_usage(hop.usage for hop in self.hops))

    async def whole(self, first: httpx.Response, finished: upstream.Finished | None) -> Response:
        """The JSON answers' loop."""
        first_raw = await _read(first)
        first_answer = last = json_object(first_raw)
        hop = self.dialect.read(last) if last is not None else None
        while hop is not None and await self.step(hop):
            relayed = await upstream.relay(self.client, self.request, self.url, self.continuation())
            if not isinstance(relayed, upstream.Relayed):
                return relayed  # the client left
            raw = await _read(relayed.answer)
            last = json_object(raw)
            hop = self.dialect.read(last) if last is not None else None
            if relayed.status_code >= 400 or hop is None:
                return _whole(relayed.answer, raw, None)  # the client's answer, as it came
        if first_answer is None or last is None or not self.hidden:
            return _whole(first, first_raw, finished)
        written = self.dialect.write(first_answer, last, await self.conclude())
        return _whole(first, json.dumps(written).encode(), finished)

    def stream(
        self,
        first: httpx.Response,
        finished: upstream.Finished | None,
        framing: Framing,
        relay: StreamRelay,
    ) -> Response:
        """The streamed answers' loop, relayed as the client reads it."""
        headers = _relayed_headers(first.headers)
        chunks = _Chunks(self._events(first, framing, relay), first)
        return upstream.Relayed(
            httpx.Response(first.status_code, headers=headers, stream=chunks), finished
        )

    async def _events(
        self, answer: httpx.Response, framing: Framing, relay: StreamRelay
    ) -> AsyncGenerator[bytes, None]:
        try:
            while True:
                async for event in framing(answer.aiter_bytes()):
                    out = relay.feed(event)
                    if out:
                        yield out
                await answer.aclose()
                tail = relay.tail()
                if relay.failed or not relay.complete:
                    yield tail  # an error or a cut stream ends the answer here
                    return
                if not await self.step(relay.end_hop()):
                    break
                opened = await self._open(relay)
                if isinstance(opened, bytes):
                    yield opened
                    return
                answer = opened
            if not self.hidden:
                yield tail
                return
            end = await self.conclude()
            yield relay.finish(end.stop, end.usage)
        finally:
            await answer.aclose()

    async def _open(self, relay: StreamRelay) -> httpx.Response | bytes:
        """The continuation's streamed answer, or the error event that ends the client's."""
        outgoing = self.client.build_request(
            self.request.method, self.url, content=self.continuation(),
            headers=upstream.request_headers(self.request.headers),
        )  # fmt: skip
        try:
            answer = await self.client.send(outgoing, stream=True)
        except httpx.TransportError as exc:
            return relay.error(f"headroom could not continue the answer upstream: {exc!r}")
        if answer.status_code >= 400:
            return self.loop.refused(relay, answer, await _read(answer))
        return answer


class _Chunks(httpx.AsyncByteStream):
    """A generator of bytes as an httpx response body, so `upstream.Relayed` relays it;
    closing it closes the first upstream answer too, in case the generator never ran."""

    def __init__(self, chunks: AsyncGenerator[bytes, None], first: httpx.Response) -> None:
        self._chunks, self._first = chunks, first

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            yield chunk

    async def aclose(self) -> None:
        await self._chunks.aclose()
        await self._first.aclose()


def total_usage(usages: Iterable[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Usage summed over hops: counts added (nested ones too), anything else the latest."""
    total: dict[str, Any] | None = None
    for usage in usages:
        if usage:
            total = _add(total or {}, usage)
    return total


def _add(total: Mapping[str, Any], usage: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(total)
    for key, value in usage.items():
        before = result.get(key)
        if value is None:
            result.setdefault(key, None)
        elif _count(value) and _count(before):
            result[key] = before + value
        elif isinstance(value, Mapping) and isinstance(before, Mapping):
            result[key] = _add(before, value)
        else:
            result[key] = value
    return result


def _count(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _answer_all(store: Store, calls: list[Call]) -> list[Answer]:
    return [answer(store, call.arguments) for call in calls]


async def _read(response: httpx.Response) -> bytes:
    try:
        return await response.aread()
    finally:
        await response.aclose()


def _relayed_headers(headers: httpx.Headers) -> list[tuple[bytes, bytes]]:
    """The upstream's headers for a rewritten answer, as their bytes (not Latin-1 text)."""
    return [
        (name, value)
        for name, value in headers.raw
        if name.lower().decode("latin-1") not in _NOT_RELAYED
    ]


def _whole(answer: httpx.Response, content: bytes, finished: upstream.Finished | None) -> Response:
    """A whole answer with the upstream's status and headers (decoded: no content-encoding)."""
    task = BackgroundTask(finished, content) if finished is not None else None
    response = Response(content, status_code=answer.status_code, background=task)
    response.raw_headers = [
        *_relayed_headers(answer.headers),
        (b"content-length", str(len(content)).encode()),
    ]
    return response
