"""The proxy's ASGI app: health endpoints, the Anthropic adapter, and one upstream HTTP
client per app, opened at startup and closed at shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from headroom.api import store_for
from headroom.config import Settings
from headroom.proxy.anthropic import Anthropic
from headroom.store.base import Store

TIMEOUT = httpx.Timeout(600.0, connect=10.0)
"""Long reads: a model may think for minutes before its first byte."""
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


async def ok(request: Request) -> Response:
    """`/livez` and `/readyz`: the proxy is up and serving (the upstream is not called)."""
    return JSONResponse({"status": "ok"})


def create_app(
    settings: Settings,
    store: Store | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """The proxy app for these settings; `store` defaults to the settings' store and
    `transport` to the network (tests may pass another)."""
    client = httpx.AsyncClient(transport=transport, timeout=TIMEOUT, follow_redirects=False)
    adapter = Anthropic(client, store or store_for(settings), settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with client:
            yield

    routes = [
        Route("/livez", ok, methods=["GET"]),
        Route("/readyz", ok, methods=["GET"]),
        Route("/v1/messages", adapter.messages, methods=["POST"]),
        Route("/{path:path}", adapter.passthrough, methods=METHODS),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
