"""The proxy's ASGI app: health endpoints, the Anthropic and OpenAI adapters, and one
upstream HTTP client per app (Bedrock has its own, which signs), opened at startup and closed
at shutdown.

Routes: `POST /v1/messages` is Anthropic's; `POST /v1/chat/completions` and
`POST /v1/responses` are OpenAI's. Every other path is passed through to the upstream its
auth header names: `authorization: Bearer ...` with neither `x-api-key` nor
`anthropic-version` (which every Anthropic SDK sends, OAuth clients included) goes to
OpenAI; anything else goes to Anthropic. Bedrock Runtime's paths (`/model/...`) and any
request signed with AWS SigV4 go to Bedrock, re-signed with the proxy's own credentials.
Gemini's requests, known by their paths or their key (see `gemini.is_gemini`), go to
Gemini: `/{version}/models/{model}:generateContent` and `:streamGenerateContent` through the
conversation layer.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headroom import tokens
from headroom.api import store_for
from headroom.config import Settings
from headroom.errors import HeadroomError
from headroom.proxy import admin, upstream
from headroom.proxy.adapter import Adapter
from headroom.proxy.anthropic import ANTHROPIC
from headroom.proxy.bedrock import Bedrock, is_signed
from headroom.proxy.gemini import GEMINI, GEMINI_PATH, is_gemini
from headroom.proxy.gemini import endpoint as gemini_endpoint
from headroom.proxy.openai import OPENAI, OPENAI_RESPONSES
from headroom.store.base import Store

TIMEOUT = httpx.Timeout(600.0, connect=10.0)
"""Long reads: a model may think for minutes before its first byte."""
LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=20)
"""No cap on concurrent upstream connections (httpx's default of 100 would queue the 101st
concurrent request behind slow answers); idle ones kept as httpx does."""
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


async def live(request: Request) -> Response:
    """`/livez`: the proxy is up and answering."""
    return JSONResponse({"status": "ok"})


def readiness(store: Store) -> Callable[[Request], Awaitable[Response]]:
    """`/readyz`: the proxy can serve, its store answering (the upstream is not called: an
    upstream outage is the client's to see, in the upstream's own words)."""

    async def ready(request: Request) -> Response:
        try:
            await run_in_threadpool(store.recall, "readyz")
        except HeadroomError as exc:
            return JSONResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)
        return JSONResponse({"status": "ok"})

    return ready


def is_openai(request: Request) -> bool:
    """Whether a request for a path no adapter claims belongs to OpenAI, by its auth header."""
    headers = request.headers
    bearer = headers.get("authorization", "").lower().startswith("bearer ")
    return bearer and "x-api-key" not in headers and "anthropic-version" not in headers


_PROVIDERS = {
    "/v1/messages": "anthropic",
    "/v1/chat/completions": "openai",
    "/v1/responses": "openai",
}


def _provider_label(path: str) -> str:
    """The provider a request is counted under in the metrics, by its path."""
    if path in _PROVIDERS:
        return _PROVIDERS[path]
    if path.startswith("/model/"):
        return "bedrock"
    return "gemini" if GEMINI_PATH.fullmatch(path) else "other"


class CountRequests:
    """ASGI middleware: each HTTP request counted in the metrics by provider and status; a
    client that left before it was answered counts as 499, and goes unanswered and unlogged."""

    def __init__(self, app: ASGIApp, metrics: admin.Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        provider = _provider_label(scope["path"])

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.metrics.request(provider, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counted)
        except ClientDisconnect:  # while it was still sending its request
            self.metrics.request(provider, upstream.CLIENT_GONE)


def create_app(
    settings: Settings,
    store: Store | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """The proxy app for these settings; `store` defaults to the settings' store and
    `transport` to the network (tests may pass another)."""
    client = httpx.AsyncClient(
        transport=transport, timeout=TIMEOUT, limits=LIMITS, follow_redirects=False
    )
    chosen = store or store_for(settings)
    metrics = admin.Metrics()
    anthropic = Adapter(client, chosen, settings, ANTHROPIC, metrics)
    openai = Adapter(client, chosen, settings, OPENAI, metrics)
    responses = Adapter(client, chosen, settings, OPENAI_RESPONSES, metrics)
    gemini = gemini_endpoint(Adapter(client, chosen, settings, GEMINI, metrics))
    bedrock = Bedrock.create(chosen, settings, transport, TIMEOUT, LIMITS, metrics)

    async def passthrough(request: Request) -> Response:
        if is_signed(request):
            return await bedrock.passthrough(request)
        if is_gemini(request):
            return await gemini(request)
        if is_openai(request):
            return await openai.passthrough(request)
        return await anthropic.passthrough(request)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The tokenizer loads on its first count (a quarter second): before serving, not
        # on a client's first request.
        await run_in_threadpool(tokens.count, "warm", None)
        quiet, hidden = upstream.IncompleteAnswers(), upstream.HiddenKeys()
        logging.getLogger("uvicorn.error").addFilter(quiet)
        logging.getLogger("uvicorn.access").addFilter(hidden)
        try:
            async with client, bedrock.client:
                yield
        finally:
            logging.getLogger("uvicorn.error").removeFilter(quiet)
            logging.getLogger("uvicorn.access").removeFilter(hidden)

    routes = [
        Route("/livez", live, methods=["GET"]),
        Route("/readyz", readiness(chosen), methods=["GET"]),
        Route("/v1/messages", anthropic.compress, methods=["POST"]),
        Route("/v1/chat/completions", openai.compress, methods=["POST"]),
        Route("/v1/responses", responses.compress, methods=["POST"]),
        *bedrock.routes(),
        *admin.routes(chosen, settings, settings.admin_token or None, metrics),
        Route("/{path:path}", passthrough, methods=METHODS),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(CountRequests, metrics=metrics)
    return app


def app_from_env() -> Starlette:
    """The proxy app for the settings in the environment: what each worker process of
    `headroom proxy --workers N` serves (the command passes its settings down as `HEADROOM_*`
    variables)."""
    return create_app(Settings.from_env())
