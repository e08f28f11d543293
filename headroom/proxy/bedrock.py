"""Amazon Bedrock Runtime as a `Provider`, and the SigV4 signature every Bedrock request needs.

`POST /model/{modelId}/invoke` and `/invoke-with-response-stream` for an Anthropic model
carry an Anthropic Messages body without `model` (the path names it) and with
`anthropic_version`: it goes through the conversation layer as Anthropic's own does, and the
ledger names the model as the price table does (`us.anthropic.claude-sonnet-4-5-20250929-v1:0`
is `claude-sonnet-4-5-20250929`). Other vendors' bodies, Claude bodies without `messages` (the
legacy Text Completions shape) and every other Bedrock path (Converse, async invoke,
guardrails) pass through as they came.

A client signs its request for the proxy's host and path, so no request reaches Bedrock with
the client's signature: every one is re-signed with the proxy's own AWS credentials, found
once by botocore's chain (environment, profile, SSO, instance or container role), for service
`bedrock` in the configured region; the client's signature headers are dropped. botocore is
the optional `headroom[bedrock]` extra, imported on the first Bedrock request.

Streams are AWS event-stream (`application/vnd.amazon.eventstream`), relayed as their bytes
arrive; usage is read afterwards from each `chunk` event's Anthropic event. Errors are in
Bedrock's shape: `{"message"}` with an `x-amzn-ErrorType` header. Retrieve in the loop is
Anthropic's, over event-stream (`retrieve_bedrock`); its continuations are signed too.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from headroom.config import Settings
from headroom.proxy import anthropic, upstream
from headroom.proxy.adapter import Adapter, Provider
from headroom.proxy.admin import Metrics
from headroom.proxy.retrieve_anthropic import AnthropicDialect
from headroom.proxy.retrieve_bedrock import BedrockLoop
from headroom.store.base import Store

log = logging.getLogger(__name__)

SERVICE = "bedrock"
"""The service name Bedrock Runtime's requests are signed for."""
INSTALL = "pip install 'headroom[bedrock]'"
ERROR_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"
CLIENT_SIGNATURE = ("authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256")
"""The client's signature headers: they sign for the proxy, so they stop here."""
SIGNATURE = ("Authorization", "X-Amz-Date", "Date", "X-Amz-Security-Token")
"""The headers botocore's signer sets."""
METRICS = "amazon-bedrock-invocationMetrics"
_METRIC_USAGE = {
    "inputTokenCount": "input_tokens",
    "outputTokenCount": "output_tokens",
    "cacheReadInputTokenCount": "cache_read_input_tokens",
    "cacheWriteInputTokenCount": "cache_creation_input_tokens",
}
_BEDROCK_VERSION = re.compile(r"(?<=\d{8})-v\d+(?::\d+)?$")
NO_CREDENTIALS = (
    "headroom has no AWS credentials to sign Bedrock requests with: a client's signature "
    "covers the proxy's address, not Bedrock's, so headroom re-signs every request with its "
    "own. Give the proxy credentials the way AWS's tools take them (AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, AWS_PROFILE with ~/.aws/credentials or SSO, or an instance or "
    "container role), then restart headroom proxy"
)


def error(status: int, kind: str, message: str) -> JSONResponse:
    """An error in Bedrock's shape: the message in the body, its type in a header."""
    headers = {"x-amzn-ErrorType": f"{kind}:{ERROR_NAMESPACE}"}
    return JSONResponse({"message": message}, status_code=status, headers=headers)


def is_signed(request: Request) -> bool:
    """Whether a request carries an AWS signature, so belongs to Bedrock whatever its path."""
    return request.headers.get("authorization", "").startswith("AWS4-HMAC-SHA256")


def ledger_model(model_id: str) -> str | None:
    """The Anthropic model a Bedrock model id names, as the price table names it; None for
    another vendor's model or an id that does not say (an application profile's ARN)."""
    _, found, name = model_id.rpartition("anthropic.")
    return _BEDROCK_VERSION.sub("", name) if found and name else None


def model_of(request: Request) -> str | None:
    """The model of an invoke request, from its (decoded) path."""
    return ledger_model(str(request.path_params.get("model_id", "")))


def target(base_url: str, request: Request) -> str:
    """The upstream URL: the path exactly as the client encoded it (a model id's `:` and `/`
    stay escaped, as Bedrock expects and the signature covers), and its query."""
    raw = request.scope.get("raw_path") or quote(request.url.path).encode()
    query = request.url.query
    return base_url.rstrip("/") + raw.decode("latin-1") + (f"?{query}" if query else "")


def usage_of(answer: bytes) -> dict[str, Any] | None:
    """The `usage` of an invoke answer: the Messages JSON's, or a stream's (`message_start`
    and `message_delta`, else Bedrock's invocation metrics); None when there is none."""
    if answer.lstrip()[:1] == b"{":
        events = upstream.answer_events(answer)
    else:
        events = stream_events(answer)
    found: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    for event in events:
        usage = (event.get("message") or {}) if event.get("type") == "message_start" else event
        if isinstance(usage.get("usage"), dict):
            found.update(usage["usage"])
        if isinstance(event.get(METRICS), dict):
            metrics = event[METRICS]
    from_metrics = {
        name: metrics[field] for field, name in _METRIC_USAGE.items() if field in metrics
    }
    return found or from_metrics or None


def stream_events(answer: bytes) -> list[dict[str, Any]]:
    """The Anthropic events of an event-stream answer, in order: each `chunk` event's payload
    `{"bytes": base64}` decoded. A stream cut short yields the events before the cut."""
    from botocore.eventstream import EventStreamBuffer, ParserError

    buffer = EventStreamBuffer()
    buffer.add_data(answer)
    events: list[dict[str, Any]] = []
    try:
        for message in buffer:
            if message.headers.get(":event-type") != "chunk":
                continue
            event = json.loads(base64.b64decode(json.loads(message.payload)["bytes"]))
            if isinstance(event, dict):
                events.append(event)
    except (ParserError, ValueError, KeyError, TypeError):
        pass  # a cut or garbled stream: usage is read from what came before
    return events


class Signer:
    """Signs requests for Bedrock with the proxy's own AWS credentials, which botocore's chain
    finds on the first Bedrock request (and not again: a proxy given credentials restarts)."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._lock = threading.Lock()
        self._looked_up = False
        self._credentials: Any = None
        self._problem: tuple[int, str, str] | None = None

    async def problem(self) -> Response | None:
        """Why the proxy cannot sign, as Bedrock's error; None when it can."""
        if not self._looked_up:
            await run_in_threadpool(self._look_up)
        return error(*self._problem) if self._problem else None

    def _look_up(self) -> None:
        with self._lock:
            if self._looked_up:
                return
            self._credentials, self._problem = _credentials()
            if self._problem:
                log.error("%s", self._problem[2])
            self._looked_up = True

    async def sign(self, request: httpx.Request) -> None:
        """The upstream client's request hook: the client's signature out, the proxy's in."""
        await run_in_threadpool(self._sign, request)

    def _sign(self, request: httpx.Request) -> None:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        for name in CLIENT_SIGNATURE:
            request.headers.pop(name, None)
        signed = AWSRequest(
            method=request.method,
            url=str(request.url),
            data=request.content,
            headers=dict(request.headers.items()),
        )
        frozen = self._credentials.get_frozen_credentials()  # refreshes expiring ones
        SigV4Auth(frozen, SERVICE, self.region).add_auth(signed)
        for name in SIGNATURE:
            if name in signed.headers:
                request.headers[name] = signed.headers[name]


def _credentials() -> tuple[Any, tuple[int, str, str] | None]:
    """The proxy's AWS credentials by botocore's chain, or the error saying why there are none."""
    try:
        from botocore.exceptions import BotoCoreError
        from botocore.session import get_session
    except ImportError:
        message = f"headroom needs botocore to sign Bedrock requests: {INSTALL}, then restart it"
        return None, (500, "InternalServerException", message)
    try:
        found = get_session().get_credentials()
    except BotoCoreError as exc:
        return None, (403, "AccessDeniedException", f"{NO_CREDENTIALS} ({exc})")
    if found is None:
        return None, (403, "AccessDeniedException", NO_CREDENTIALS)
    return found, None


BEDROCK = Provider(
    name="anthropic",  # the shape `prepare` reads
    url_setting="bedrock_url",
    invalid_request="ValidationException",
    unreachable="ServiceUnavailableException",
    error=error,
    usage_of=usage_of,
    client_context=anthropic.client_context,
    target=target,
    model_of=model_of,
    retrieve=BedrockLoop(AnthropicDialect()),
)


@dataclass(frozen=True)
class Bedrock:
    """Bedrock Runtime's endpoints: an adapter whose upstream client signs every request."""

    adapter: Adapter
    signer: Signer

    @classmethod
    def create(
        cls,
        store: Store,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None,
        timeout: httpx.Timeout,
        limits: httpx.Limits,
        metrics: Metrics | None = None,
    ) -> Bedrock:
        """Bedrock's endpoints for these settings, with the region and URL filled in."""
        region = settings.bedrock_signing_region()
        resolved = replace(settings, bedrock_region=region, bedrock_url=settings.bedrock_base_url())
        signer = Signer(region)
        client = httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            limits=limits,
            follow_redirects=False,
            event_hooks={"request": [signer.sign]},
        )
        return cls(Adapter(client, store, resolved, BEDROCK, metrics), signer)

    @property
    def client(self) -> httpx.AsyncClient:
        """The upstream client, for the app to open and close."""
        return self.adapter.client

    async def invoke(self, request: Request) -> Response:
        """Invoke, streaming or not: a Claude Messages body is compressed, any other passes."""
        problem = await self.signer.problem()
        if problem is not None:
            return problem
        if model_of(request) is None or b'"messages"' not in await request.body():
            return await self.adapter.passthrough(request)
        return await self.adapter.compress(request)

    async def passthrough(self, request: Request) -> Response:
        """Any other Bedrock request: the client's bytes, re-signed."""
        problem = await self.signer.problem()
        return problem if problem is not None else await self.adapter.passthrough(request)

    def routes(self) -> list[Route]:
        """Every path under `/model/`; other Bedrock paths reach `passthrough` by signature."""
        return [
            Route("/model/{model_id:path}/invoke", self.invoke, methods=["POST"]),
            Route(
                "/model/{model_id:path}/invoke-with-response-stream", self.invoke, methods=["POST"]
            ),
            Route("/model/{rest:path}", self.passthrough, methods=["GET", "POST"]),
        ]
