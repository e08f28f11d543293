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
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from headroom.errors import StoreError
from headroom.proxy import hidden_turns, upstream
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


@dataclass(frozen=True, slots=True)
class Hop:
    """One upstream answer: the assistant message as it goes back upstream, why it stopped,
    and the usage it was billed."""

    message: dict[str, Any]
    stop: str | None
    usage: dict[str, Any] | None


class StreamRelay(Protocol):
    """One streamed client answer over however many upstream hops it takes."""

    complete: bool
    """The current hop's stream ended the way a whole answer ends."""
    failed: bool
    """An error event went to the client."""

    def feed(self, event: Event) -> bytes:
        """What the client gets now for one event of the current hop."""
        ...

    def end_hop(self) -> Hop:
        """The hop whose stream ended; the next hop's events follow."""
        ...

    def tail(self) -> bytes:
        """The current hop's closing events, held back, as they came."""
        ...

    def finish(self, stop: str | None, usage: dict[str, Any] | None) -> bytes:
        """Closing events for the whole client answer."""
        ...

    def error(self, message: str, body: bytes = b"") -> bytes:
        """An error event: the upstream's error `body` when it is one, else `message`."""
        ...


class Dialect(hidden_turns.Shape, Protocol):
    """How one provider's requests, answers and streams carry tool calls and results."""

    tool: Mapping[str, Any]
    """The retrieve tool's definition in this provider's shape."""
    tool_stop: str
    """The stop reason of an answer that calls tools."""
    end_stop: str
    """The stop reason of an answer that is done."""

    def results(self, answered: list[tuple[Call, Answer]]) -> list[dict[str, Any]]:
        """The message(s) that carry the answers to these calls."""
        ...

    def visible(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The one assistant message a client sees for these upstream answers: their
        content in order, every retrieve call left out."""
        ...

    def continuation(self, forwarded: Mapping[str, Any], extra: list[Any]) -> dict[str, Any]:
        """The request body that continues `forwarded` with the hidden messages `extra`."""
        ...

    def read(self, answer: Mapping[str, Any]) -> Hop | None:
        """A JSON answer as a hop; None when it is not an answer to loop on."""
        ...

    def write(
        self,
        first: Mapping[str, Any],
        last: Mapping[str, Any],
        visible: Mapping[str, Any],
        stop: str | None,
        usage: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The JSON answer the client gets for the hops from `first` to `last`."""
        ...

    def stream(self) -> StreamRelay:
        """A relay for one streamed answer."""
        ...


@dataclass(frozen=True, slots=True)
class Plan:
    """A request as the conversation layer gets it, and what the loop needs to know of it."""

    body: dict[str, Any]
    """The client's body, remembered exchanges spliced back and the retrieve tool offered."""
    conversation: str
    """The conversation's name (`hidden_turns.conversation`) where the tool is offered."""
    client: list[Any]
    """The client's own messages."""
    offered: bool
    """Whether the retrieve tool is offered: only then does the loop run."""


@dataclass(frozen=True)
class RetrieveLoop:
    """Retrieve in the loop for one provider."""

    dialect: Dialect

    def plan(self, body: dict[str, Any], store: Store, session: str | None) -> Plan:
        """The body to prepare: remembered exchanges spliced back, the tool offered."""
        messages = body.get("messages")
        single = body.get("n") in (None, 1)  # one answer per request: a loop can continue it
        tools = offer(body.get("tools"), self.dialect.tool) if single else None
        if not isinstance(messages, list) or tools is None:
            # Without the tool offered nothing is spliced: a retrieve call in the history
            # would name a tool the request does not define.
            return Plan(body, "", [], False)
        name = hidden_turns.conversation(session, body)
        spliced = hidden_turns.splice(store, name, messages, self.dialect)
        return Plan({**body, "messages": spliced, "tools": tools}, name, messages, True)

    def relay(self, store: Store, plan: Plan, forwarded: dict[str, Any]) -> Relay:
        """A relay for one request whose forwarded body is `forwarded`."""

        async def run(
            client: httpx.AsyncClient,
            request: Request,
            url: str,
            content: bytes,
            finished: upstream.Finished | None = None,
        ) -> Response:
            relayed = await upstream.relay(client, request, url, content)
            if not isinstance(relayed, upstream.Relayed) or relayed.status_code >= 400:
                return relayed
            loop = _Loop(self.dialect, store, plan, forwarded, client, request, url)
            first = relayed.answer
            if first.headers.get("content-type", "").startswith("text/event-stream"):
                return loop.stream(first, finished)
            return await loop.whole(first, finished)

        return run


class _Loop:
    """One client request's hops."""

    def __init__(
        self,
        dialect: Dialect,
        store: Store,
        plan: Plan,
        forwarded: dict[str, Any],
        client: httpx.AsyncClient,
        request: Request,
        url: str,
    ) -> None:
        self.dialect, self.store, self.plan, self.forwarded = dialect, store, plan, forwarded
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

    async def conclude(self) -> tuple[dict[str, Any], str | None, dict[str, Any] | None]:
        """The visible message, stop reason and summed usage; the exchange remembered."""
        visible = self.dialect.visible([hop.message for hop in self.hops])
        last = self.hops[-1]
        stop = last.stop
        if stop == self.dialect.tool_stop and not self.dialect.calls(visible):
            stop = self.dialect.end_stop
        exchange = hidden_turns.Exchange([*self.extra, last.message], self.results or [])
        # A note the store cannot keep costs the next turn its splice, not this answer.
        with contextlib.suppress(StoreError):
            await run_in_threadpool(
                hidden_turns.record, self.store, self.plan.conversation, self.plan.client,
                visible, exchange, self.dialect,
            )  # fmt: skip
        return visible, stop, total_usage(hop.usage for hop in self.hops)

    async def whole(self, first: httpx.Response, finished: upstream.Finished | None) -> Response:
        """The JSON answers' loop."""
        first_raw = await _read(first)
        first_answer = last = _object(first_raw)
        hop = self.dialect.read(last) if last is not None else None
        while hop is not None and await self.step(hop):
            relayed = await upstream.relay(self.client, self.request, self.url, self.continuation())
            if not isinstance(relayed, upstream.Relayed):
                return relayed  # the client left
            raw = await _read(relayed.answer)
            last = _object(raw)
            hop = self.dialect.read(last) if last is not None else None
            if relayed.status_code >= 400 or hop is None:
                return _whole(relayed.answer, raw, None)  # the client's answer, as it came
        if first_answer is None or last is None or not self.hidden:
            return _whole(first, first_raw, finished)
        visible, stop, usage = await self.conclude()
        written = self.dialect.write(first_answer, last, visible, stop, usage)
        return _whole(first, json.dumps(written).encode(), finished)

    def stream(self, first: httpx.Response, finished: upstream.Finished | None) -> Response:
        """The streamed answers' loop, relayed as the client reads it."""
        headers = [(k, v) for k, v in first.headers.multi_items() if k not in _NOT_RELAYED]
        chunks = _Chunks(self._events(first, self.dialect.stream()), first)
        return upstream.Relayed(
            httpx.Response(first.status_code, headers=headers, stream=chunks), finished
        )

    async def _events(
        self, answer: httpx.Response, relay: StreamRelay
    ) -> AsyncGenerator[bytes, None]:
        try:
            while True:
                async for event in events(answer.aiter_bytes()):
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
            _, stop, usage = await self.conclude()
            yield relay.finish(stop, usage)
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
            body = await _read(answer)
            return relay.error(f"the upstream answered {answer.status_code}: {body[:500]!r}", body)
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


def _object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _whole(answer: httpx.Response, content: bytes, finished: upstream.Finished | None) -> Response:
    """A whole answer with the upstream's status and headers (decoded: no content-encoding)."""
    task = BackgroundTask(finished, content) if finished is not None else None
    response = Response(content, status_code=answer.status_code, background=task)
    response.raw_headers = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in answer.headers.multi_items()
        if name not in _NOT_RELAYED
    ] + [(b"content-length", str(len(content)).encode())]
    return response
