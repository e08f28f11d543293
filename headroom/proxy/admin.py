"""The proxy's admin endpoints and its metrics.

    GET  /v1/retrieve/{key}[?lines=A-B][&grep=P]   {"key", "content"}; 404 unknown, 410 expired
    POST /v1/compress   {"content", "kind"?, "query"?}  -> the compressed output and its keys
    GET  /stats         the ledger, as `Ledger.to_dict()`
    GET  /metrics       Prometheus text

They answer loopback clients only, unless a token is configured: then every client,
loopback included, must send `Authorization: Bearer <token>`. Errors are
`{"error": {"type", "message"}}` with a message saying what to do.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from headroom.api import retrieve_from
from headroom.compressors import kinds
from headroom.config import Settings
from headroom.conversation.accounts import load_ledger
from headroom.errors import ConfigError, ExpiredKeyError, StoreError
from headroom.pipeline import Request as Payload
from headroom.pipeline import compress_payload
from headroom.store.base import Store

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TOKEN_HINT = (
    "configure an admin token (HEADROOM_ADMIN_TOKEN or --admin-token) and send it as "
    "`Authorization: Bearer <token>`"
)

Endpoint = Callable[[Request], Awaitable[Response]]


class Metrics:
    """Counters of one proxy process, rendered in Prometheus text exposition format.

    Thread-safe; `render` lists metrics and label sets in a fixed, sorted order.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str], int] = {}
        self._compressed = 0
        self._fail_open = 0
        self._timed_out = 0
        self._bytes_in = 0
        self._bytes_out = 0

    def request(self, provider: str, status: int | str) -> None:
        """One request to `provider` answered with `status`."""
        with self._lock:
            label = (provider, str(status))
            self._requests[label] = self._requests.get(label, 0) + 1

    def compressed(self, count: int = 1) -> None:
        """Payloads that were compressed."""
        with self._lock:
            self._compressed += count

    def fail_open(self, count: int = 1) -> None:
        """Requests forwarded as they came because compression failed or timed out."""
        with self._lock:
            self._fail_open += count

    def timed_out(self) -> None:
        """A request whose compression stopped at the deadline (`compress_timeout_ms`): the
        payloads it had not reached were forwarded as they came."""
        with self._lock:
            self._timed_out += 1

    def transferred(self, bytes_in: int, bytes_out: int) -> None:
        """Body bytes received from a client and forwarded upstream for one request."""
        with self._lock:
            self._bytes_in += bytes_in
            self._bytes_out += bytes_out

    def render(self) -> str:
        """Every counter in Prometheus text exposition format (version 0.0.4)."""
        with self._lock:
            requests = sorted(self._requests.items())
            scalars = (
                ("headroom_compressed_payloads_total", "Payloads compressed.", self._compressed),
                (
                    "headroom_fail_open_total",
                    "Requests forwarded uncompressed after a compression failure.",
                    self._fail_open,
                ),
                (
                    "headroom_compress_timeouts_total",
                    "Requests forwarded with payloads left uncompressed at the compression deadline.",
                    self._timed_out,
                ),
                ("headroom_bytes_in_total", "Request body bytes received.", self._bytes_in),
                ("headroom_bytes_out_total", "Request body bytes forwarded.", self._bytes_out),
            )
        lines = [
            "# HELP headroom_requests_total Requests answered, by provider and status.",
            "# TYPE headroom_requests_total counter",
        ]
        for (provider, status), value in requests:
            labels = f'provider="{_escape(provider)}",status="{_escape(status)}"'
            lines.append(f"headroom_requests_total{{{labels}}} {value}")
        for name, help_text, value in scalars:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {value}"]
        lines += [
            "# HELP headroom_worker The process that answered: each worker counts on its own.",
            "# TYPE headroom_worker gauge",
            f'headroom_worker{{pid="{os.getpid()}"}} 1',
        ]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def is_loopback(host: str | None) -> bool:
    """Whether a client address is loopback (127.0.0.0/8, ::1, or IPv4-mapped loopback)."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _names_loopback(host_header: str) -> bool:
    """Whether a Host header names this machine's loopback (`localhost`, 127.x, [::1])."""
    name = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
    name = name.strip("[]").lower()
    return name == "localhost" or name.endswith(".localhost") or is_loopback(name)


def refusal(request: Request, token: str | None) -> Response | None:
    """The 403 for a client that may not use the admin endpoints; None when it may."""
    if token:
        scheme, _, sent = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            sent.strip().encode(), token.encode()
        ):
            return None
        return error(403, "forbidden", f"this endpoint needs the admin token: {TOKEN_HINT}.")
    if is_loopback(request.client.host if request.client else None):
        if _names_loopback(request.headers.get("host", "")):
            return None
        # A web page whose name was rebound to 127.0.0.1 reaches us from loopback too, but
        # its requests carry its own name: refuse them, or any site could read the store.
        return error(
            403, "forbidden", "this endpoint answers requests addressed to a loopback name only"
        )
    return error(
        403,
        "forbidden",
        f"this endpoint answers loopback clients only; to reach it from elsewhere, {TOKEN_HINT}.",
    )


def error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


def routes(
    store: Store, settings: Settings, token: str | None, metrics: Metrics | None = None
) -> list[Route]:
    """The admin routes over `store`; `metrics` defaults to a fresh registry."""
    registry = metrics if metrics is not None else Metrics()

    def guarded(endpoint: Endpoint) -> Endpoint:
        async def guard(request: Request) -> Response:
            refused = refusal(request, token)
            return refused if refused is not None else await endpoint(request)

        return guard

    async def retrieve(request: Request) -> Response:
        key = str(request.path_params["key"]).strip().lower()
        lines = request.query_params.get("lines")
        grep = request.query_params.get("grep")
        try:
            content = await run_in_threadpool(retrieve_from, store, key, lines, grep)
        except ExpiredKeyError as exc:
            return error(410, "expired", str(exc))
        except ConfigError as exc:
            return error(400, "invalid_request", str(exc))
        except StoreError as exc:
            return error(503, "store_error", str(exc))
        if content is None:
            return error(
                404,
                "not_found",
                f"key {key} is unknown to this store; check the key, and that the proxy "
                "uses the store that produced it (--store)",
            )
        return JSONResponse({"key": key, "content": content})

    async def compress(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            return error(400, "invalid_request", f"the request body is not JSON: {exc}")
        problem = _check_compress(body)
        if problem:
            return error(400, "invalid_request", problem)
        payload = Payload(
            text=body["content"], query=body.get("query") or "", kind=body.get("kind")
        )
        try:
            transform = await run_in_threadpool(compress_payload, payload, store, settings)
        except StoreError as exc:
            return error(503, "store_error", str(exc))
        return JSONResponse(
            {
                "output": transform.output,
                "kind": transform.kind,
                "keys": list(transform.keys),
                "skipped": transform.skipped,
                "tokens_before": transform.tokens_in,
                "tokens_after": transform.tokens_out,
            }
        )

    async def stats(request: Request) -> Response:
        try:
            ledger = await run_in_threadpool(load_ledger, store)
        except StoreError as exc:
            return error(503, "store_error", str(exc))
        return JSONResponse(ledger.to_dict())

    async def metrics_text(request: Request) -> Response:
        return Response(registry.render(), media_type=PROMETHEUS_TYPE)

    return [
        Route("/v1/retrieve/{key}", guarded(retrieve), methods=["GET"]),
        Route("/v1/compress", guarded(compress), methods=["POST"]),
        Route("/stats", guarded(stats), methods=["GET"]),
        Route("/metrics", guarded(metrics_text), methods=["GET"]),
    ]


def _check_compress(body: Any) -> str | None:
    """What is wrong with a compress request body, or None."""
    if not isinstance(body, dict):
        return 'the request body must be a JSON object: {"content", "kind"?, "query"?}'
    if not isinstance(body.get("content"), str):
        return '"content" is required and must be a string'
    kind = body.get("kind")
    if kind is not None and kind not in kinds():
        return f'"kind" {kind!r} is not one of: {", ".join(kinds())}'
    query = body.get("query")
    if query is not None and not isinstance(query, str):
        return '"query" must be a string'
    return None
