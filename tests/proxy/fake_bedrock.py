"""A fake Amazon Bedrock Runtime on the wire: it checks every request's SigV4 signature with
botocore against the one set of credentials it knows, as Bedrock does (a wrong key, token,
scope or signature gets Bedrock's 403), and answers as Bedrock does: invoke with Claude's
Messages JSON, invoke-with-response-stream with AWS event-stream framing (prelude, headers,
CRCs) around base64 Anthropic events, Converse and Llama bodies in their shapes, and errors as
`{"message"}` with `x-amzn-ErrorType`.

A model id with `throttled` in it answers 429 ThrottlingException; with `hold` set, a stream
waits after its first event until `release` is set. A model named `retrieve-...` is the model
of `retrieving_model` (its stream carries any content: text and `tool_use` blocks);
`retrieve-limited` answers a request carrying a retrieve result with 429 ThrottlingException.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import re
import struct
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.proxy.fake_anthropic import (
    ANSWER,
    Received,
    answer_content,
    answer_events,
    anthropic_content,
    anthropic_view,
    message,
    retrieved,
    stream_events,
)
from tests.proxy.retrieving_model import LIMITED, RETRIEVING, decide

ACCESS_KEY = "AKIAHEADROOMPROXY001"
SECRET_KEY = "proxy/secret/key/known/to/the/fake/bedrock"
SESSION_TOKEN = "proxy-session-token"
REGION = "us-west-2"
CORAL = "http://internal.amazon.com/coral/com.amazon.coral.service/"
BEDROCK = "http://internal.amazon.com/coral/com.amazon.bedrock/"
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method. Consult the service documentation for "
    "details."
)
THROTTLED = "Too many requests, please wait before trying again."
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<scope>[^,]+), ?"
    r"SignedHeaders=(?P<signed>[^,]+), ?Signature=(?P<signature>[0-9a-f]{64})"
)


@dataclass
class FakeBedrock:
    """The fake Bedrock Runtime and what it has received."""

    session_token: str | None = SESSION_TOKEN
    """The token that goes with the fake's key (None: long-term credentials, no token)."""
    received: list[Received] = field(default_factory=list)
    hold: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    streamed: list[str] = field(default_factory=list)
    """The type of each Anthropic event a stream has sent, as it sends it."""

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/livez", self.livez, methods=["GET"]),
                Route("/model/{model_id:path}/invoke", self.invoke, methods=["POST"]),
                Route(
                    "/model/{model_id:path}/invoke-with-response-stream",
                    self.invoke,
                    methods=["POST"],
                ),
                Route("/model/{model_id:path}/converse", self.converse, methods=["POST"]),
            ]
        )

    async def livez(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _receive(self, request: Request) -> tuple[bytes, Response | None]:
        raw = await request.body()
        path = request.scope["raw_path"].decode("latin-1")  # as sent: still percent-encoded
        self.received.append(Received(path, dict(request.headers), raw))
        return raw, signature_error(request, raw, self.session_token)

    async def invoke(self, request: Request) -> Response:
        raw, refused = await self._receive(request)
        if refused is not None:
            return refused
        model_id = request.path_params["model_id"]
        if "meta.llama" in model_id:
            return llama(raw)
        if "anthropic." not in model_id:
            return error(400, "ValidationException", "The provided model identifier is invalid.")
        if "throttled" in model_id:
            return error(429, "ThrottlingException", THROTTLED)
        body, problem = claude_body(raw)
        if problem is not None:
            return error(400, "ValidationException", problem)
        model = model_id.rsplit("anthropic.", 1)[1].rsplit("-v", 1)[0]
        usage = {"input_tokens": len(json.dumps(body["messages"])) // 4, "output_tokens": 7}
        if model.startswith(RETRIEVING):
            return self.retrieving(request, model, body, usage)
        if request.url.path.endswith("-stream"):
            events = self._events(model, usage)
            return StreamingResponse(events, headers=STREAM_HEADERS)
        content = answer_content(body)
        stop = "tool_use" if content[0]["type"] == "tool_use" else "end_turn"
        return JSONResponse(message(model, content, stop, usage), headers=answer_headers(usage))

    def retrieving(
        self, request: Request, model: str, body: dict[str, Any], usage: dict[str, int]
    ) -> Response:
        """The `retrieve-` model's answer, JSON or streamed."""
        if model == LIMITED and retrieved(body):
            return error(429, "ThrottlingException", THROTTLED)
        view = anthropic_view(body)
        content = anthropic_content(decide(model, view), view.calls)
        stop = "tool_use" if any(block["type"] == "tool_use" for block in content) else "end_turn"
        if request.url.path.endswith("-stream"):
            events = content_events(model, content, stop, usage)
            return StreamingResponse(self._sent(events), headers=STREAM_HEADERS)
        return JSONResponse(message(model, content, stop, usage), headers=answer_headers(usage))

    async def _sent(self, events: list[dict[str, Any]]) -> AsyncIterator[bytes]:
        for event in events:
            self.streamed.append(event["type"])
            yield chunk(event)

    async def converse(self, request: Request) -> Response:
        raw, refused = await self._receive(request)
        if refused is not None:
            return refused
        tokens = len(raw) // 4
        answer = {
            "output": {"message": {"role": "assistant", "content": [{"text": ANSWER}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": tokens, "outputTokens": 7, "totalTokens": tokens + 7},
            "metrics": {"latencyMs": 42},
        }
        return JSONResponse(answer, headers=REQUEST_ID)

    async def _events(self, model: str, usage: dict[str, int]) -> AsyncIterator[bytes]:
        for event in anthropic_events(model, usage):
            self.streamed.append(event["type"])
            yield chunk(event)
            if self.hold:
                await anyio.to_thread.run_sync(self.release.wait, 10)


REQUEST_ID = {"x-amzn-RequestId": "7f3c1f9e-0000-4000-8000-00000000fa4e"}
STREAM_HEADERS = {
    **REQUEST_ID,
    "content-type": "application/vnd.amazon.eventstream",
    "x-amzn-bedrock-content-type": "application/json",
}


def answer_headers(usage: dict[str, int]) -> dict[str, str]:
    return {
        **REQUEST_ID,
        "x-amzn-bedrock-invocation-latency": "312",
        "x-amzn-bedrock-input-token-count": str(usage["input_tokens"]),
        "x-amzn-bedrock-output-token-count": str(usage["output_tokens"]),
    }


def error(status: int, kind: str, message: str, namespace: str = BEDROCK) -> Response:
    headers = {**REQUEST_ID, "x-amzn-ErrorType": f"{kind}:{namespace}"}
    return JSONResponse({"message": message}, status_code=status, headers=headers)


def signature_error(request: Request, raw: bytes, session_token: str | None) -> Response | None:
    """Bedrock's 403 for a request not signed with the fake's credentials; None if it is."""
    auth = request.headers.get("authorization")
    if auth is None:
        return error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    match = _AUTHORIZATION.fullmatch(auth)
    signed = match["signed"].split(";") if match else []
    if match is None or "host" not in signed or "x-amz-date" not in signed:
        message = "Authorization header requires Credential, SignedHeaders and Signature."
        return error(403, "IncompleteSignatureException", message, CORAL)
    token = request.headers.get("x-amz-security-token")
    token_signed = token is None or "x-amz-security-token" in signed
    if match["key"] != ACCESS_KEY or token != session_token or not token_signed:
        message = "The security token included in the request is invalid."
        return error(403, "UnrecognizedClientException", message, CORAL)
    stamp = request.headers["x-amz-date"]
    if match["scope"] != f"{stamp[:8]}/{REGION}/bedrock/aws4_request":
        message = f"Credential should be scoped to {REGION}/bedrock, not {match['scope']}."
        return error(403, "InvalidSignatureException", message, CORAL)
    sent = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    if abs((datetime.datetime.now(datetime.UTC) - sent).total_seconds()) > 300:
        message = f"Signature expired: {stamp} is now earlier or later than 5 minutes from now."
        return error(403, "InvalidSignatureException", message, CORAL)
    expected = expected_signature(request, raw, signed, session_token)
    if not hmac.compare_digest(expected, match["signature"]):
        return error(403, "InvalidSignatureException", MISMATCH, CORAL)
    return None


def expected_signature(
    request: Request, raw: bytes, signed: list[str], session_token: str | None
) -> str:
    """The signature of the request as received, computed by botocore's signer."""
    path = request.scope["raw_path"].decode("latin-1")
    query = request.url.query
    url = f"http://{request.headers['host']}{path}" + (f"?{query}" if query else "")
    headers = {name: request.headers.get(name, "") for name in signed}
    claimed = headers.get("x-amz-content-sha256")
    if claimed is not None and claimed != hashlib.sha256(raw).hexdigest():
        return ""  # the canonical request hashes the body as sent, never as claimed
    aws = AWSRequest(method=request.method, url=url, headers=headers, data=raw)
    aws.context["timestamp"] = request.headers["x-amz-date"]
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, session_token), "bedrock", REGION)
    return str(signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws))


def claude_body(raw: bytes) -> tuple[dict[str, Any], str | None]:
    """The body of a Claude invoke, or Bedrock's reason for rejecting it."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        return {}, f"Malformed input request: {exc}, please reformat your input and try again."
    if not isinstance(body, dict):
        return {}, "Malformed input request: expected type: JSONObject, found: JSONArray"
    if "model" in body:
        return {}, "Malformed input request: #: extraneous key [model] is not permitted"
    if body.get("anthropic_version") != "bedrock-2023-05-31":
        return {}, "Malformed input request: #/anthropic_version: invalid or missing"
    if not isinstance(body.get("messages"), list):
        return {}, "Malformed input request: #: required key [messages] not found"
    return body, None


def llama(raw: bytes) -> Response:
    body = json.loads(raw)
    prompt = len(body["prompt"]) // 4
    answer = {
        "generation": ANSWER,
        "prompt_token_count": prompt,
        "generation_token_count": 7,
        "stop_reason": "stop",
    }
    return JSONResponse(
        answer, headers=answer_headers({"input_tokens": prompt, "output_tokens": 7})
    )


def anthropic_events(model: str, usage: dict[str, int]) -> list[dict[str, Any]]:
    """The Anthropic events of a streamed text answer, as Bedrock sends them."""
    return as_bedrock(answer_events(model, usage), usage)


def chunk(event: dict[str, Any]) -> bytes:
    """One `chunk` event of an invoke stream: the Anthropic event, base64, in its payload
    (with Bedrock's `p` padding field)."""
    encoded = base64.b64encode(json.dumps(event).encode()).decode()
    payload = json.dumps({"bytes": encoded, "p": "abcdefghijklmnopqrstuvwxyzABCDEF"}).encode()
    headers = {
        ":event-type": "chunk",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return event_message(headers, payload)


def event_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: total and headers lengths, the prelude's CRC32, string
    headers (type 7), the payload, and the CRC32 of everything before it."""
    encoded = b"".join(
        struct.pack(">B", len(name))
        + name.encode()
        + struct.pack(">BH", 7, len(value))
        + value.encode()
        for name, value in headers.items()
    )
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    body = prelude + encoded + payload
    return body + struct.pack(">I", binascii.crc32(body))


def content_events(
    model: str, content: list[dict[str, Any]], stop: str, usage: dict[str, int]
) -> list[dict[str, Any]]:
    """The Anthropic events of a streamed answer with any content, as Bedrock sends them."""
    closing = {"output_tokens": usage["output_tokens"]}
    return as_bedrock(stream_events(message(model, content, stop, usage), closing), usage)


def as_bedrock(events: list[dict[str, Any]], usage: dict[str, int]) -> list[dict[str, Any]]:
    """Anthropic's events as Bedrock sends them: no pings, and its invocation metrics on the
    last."""
    events = [event for event in events if event["type"] != "ping"]
    metrics = {
        "inputTokenCount": usage["input_tokens"],
        "outputTokenCount": usage["output_tokens"],
        "invocationLatency": 312,
        "firstByteLatency": 104,
    }
    return [*events[:-1], {**events[-1], "amazon-bedrock-invocationMetrics": metrics}]
