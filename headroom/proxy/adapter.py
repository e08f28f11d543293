"""A provider's endpoints, the same flow for every provider: a request whose body carries a
conversation goes through the conversation layer, anything else is passed through byte for
byte, and the turn is accounted after the client has the whole answer.

What differs per provider (its upstream URL, error shape, where usage sits in an answer, how
a client names its session) is a `Provider` value, defined beside each provider's own
helpers (`anthropic.py`, `openai.py`). A body that is not a JSON object, or whose messages
headroom cannot read, gets a 400 in the provider's error shape; any other failure to
compress (a headroom error, or a body nested deeper than it follows) forwards the client's
body as it came (fail open).

A provider with retrieve in the loop (`Provider.retrieve`, `retrieve_loop`) has the body
planned before the conversation layer (remembered hidden exchanges spliced back, the
`headroom_retrieve` tool offered) and the answer relayed by the loop, which answers the
model's retrieve calls itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from headroom.config import Settings
from headroom.conversation.live_zone import OVER_DEADLINE
from headroom.conversation.request import Prepared, account, prepare
from headroom.errors import HeadroomError, InvalidMessagesError
from headroom.proxy import upstream
from headroom.proxy.admin import Metrics
from headroom.proxy.retrieve_loop import Plan, Relay, RetrieveLoop
from headroom.store.base import Store

logger = logging.getLogger("headroom.proxy")


@dataclass(frozen=True)
class Provider:
    """What one provider's endpoints need to know about it."""

    name: str
    """The provider as `prepare` names it."""
    url_setting: str
    """The Settings field holding the upstream base URL."""
    invalid_request: str
    """The error type of a request headroom cannot read."""
    unreachable: str
    """The error type of an upstream that cannot be reached."""
    error: Callable[[int, str, str], JSONResponse]
    """An error response in the provider's shape: (status, type, message)."""
    usage_of: Callable[[bytes], dict[str, Any] | None]
    """The `usage` of a whole answer (JSON or SSE), if it has one."""
    client_context: Callable[[Request], tuple[str | None, bool]]
    """The session the client names, and whether it compacts its own context."""
    target: Callable[[str, Request], str] = upstream.target
    """The upstream URL of a request, from the base URL."""
    model_of: Callable[[Request], str | None] | None = None
    """The model a request names outside its body (Bedrock's path): the conversation layer
    and the ledger see it in the body, the forwarded body stays without it."""
    retrieve: RetrieveLoop | None = None
    """Retrieve in the loop (the proxy answers `headroom_retrieve` calls), where it is on."""


@dataclass(frozen=True)
class _Rewrite:
    """A conversation request as it goes upstream, and what its accounting needs."""

    plan: Plan | None
    prepared: Prepared
    seen: dict[str, Any]
    """The body as the conversation layer saw it (with the model its path names)."""
    out: dict[str, Any]
    forwarded: bytes


@dataclass(frozen=True)
class Adapter:
    """One provider's endpoints, bound to the upstream client, store and settings."""

    client: httpx.AsyncClient
    store: Store
    settings: Settings
    provider: Provider
    metrics: Metrics | None = None

    async def compress(self, request: Request) -> Response:
        """A conversation request: compress, forward, relay, then account."""
        raw = await request.body()
        timeout = self.settings.compress_timeout_ms / 1000
        deadline = time.monotonic() + timeout if timeout else None
        if request.headers.get("x-headroom-bypass", "").lower() == "true":
            return await self._send(request, raw)
        try:
            # Parsing and serialising a large body take as long as compressing it: off the loop.
            rewrite = await run_in_threadpool(self._rewrite, raw, request, deadline)
        except InvalidMessagesError as exc:
            return self.provider.error(400, self.provider.invalid_request, str(exc))
        except Exception as exc:  # any failure to compress forwards the client's bytes
            if not isinstance(exc, HeadroomError):
                logger.warning("compression failed, forwarding the body as it came: %r", exc)
            if self.metrics:
                self.metrics.fail_open()
            return await self._send(request, raw)
        self._count(rewrite.prepared)
        if self.metrics:
            self.metrics.transferred(len(raw), len(rewrite.forwarded))
        plan, prepared, seen = rewrite.plan, rewrite.prepared, rewrite.seen

        def finished(answer: bytes) -> None:
            self._account(plan.body if plan else seen, prepared, answer)

        relay = self._relay(plan, rewrite.out)
        return await self._send(request, rewrite.forwarded, finished, relay)

    async def passthrough(self, request: Request) -> Response:
        """Any other path: the client's bytes upstream, the upstream's bytes back."""
        return await self._send(request, await request.body())

    def _rewrite(self, raw: bytes, request: Request, deadline: float | None) -> _Rewrite:
        """The client's body parsed, through the conversation layer, and serialised again.
        Raises InvalidMessagesError for a body that is not a JSON object."""
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise InvalidMessagesError(f"the request body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise InvalidMessagesError("the request body must be a JSON object")
        named = self.provider.model_of(request) if self.provider.model_of else None
        seen = {"model": named, **body} if named and "model" not in body else body
        session, compacts = self.provider.client_context(request)
        loop = self.provider.retrieve
        plan = loop.plan(seen, self.store, session) if loop is not None else None
        prepared = prepare(
            plan.body if plan else seen, self.provider.name, self.store, self.settings,
            session=session, client_compacts=compacts, deadline=deadline,
        )  # fmt: skip
        out = prepared.body
        if seen is not body:
            out = {name: value for name, value in out.items() if name != "model"}
        # ASCII JSON: lone surrogates from the client's escapes stay escapes, never bad UTF-8.
        return _Rewrite(plan, prepared, seen, out, json.dumps(out).encode())

    def _count(self, prepared: Prepared) -> None:
        """Fresh compressions, and a turn cut short by the compression deadline."""
        if self.metrics is None:
            return
        fresh = [t for t in prepared.turn.transforms if not t.replayed]
        self.metrics.compressed(sum(1 for t in fresh if t.skipped is None))
        if any(t.skipped == OVER_DEADLINE for t in fresh):
            self.metrics.timed_out()

    def _relay(self, plan: Plan | None, forwarded: dict[str, Any]) -> Relay:
        """`upstream.relay`, or the retrieve loop's when this request offers the tool."""
        loop = self.provider.retrieve
        if loop is None or plan is None or not plan.offered:
            return upstream.relay
        return loop.relay(self.store, plan, forwarded)

    async def _send(
        self,
        request: Request,
        content: bytes,
        finished: upstream.Finished | None = None,
        relay: Relay = upstream.relay,
    ) -> Response:
        base = str(getattr(self.settings, self.provider.url_setting))
        try:
            return await relay(
                self.client, request, self.provider.target(base, request), content, finished
            )
        except httpx.TransportError as exc:
            flag = "--" + self.provider.url_setting.replace("_", "-")
            message = f"headroom could not reach {base}: {exc!r}; check {flag} and the network"
            return self.provider.error(502, self.provider.unreachable, message)

    def _account(self, body: Mapping[str, Any], prepared: Prepared, answer: bytes) -> None:
        # The ledger never stands between a client and its answer.
        with contextlib.suppress(HeadroomError, RecursionError):
            account(self.store, body, prepared, self.provider.usage_of(answer))
