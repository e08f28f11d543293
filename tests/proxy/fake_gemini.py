"""A fake Gemini API on the wire, under each API version (`/v1beta`, `/v1`): answers as the
real one does (GenerateContentResponse JSON, the `alt=sse` stream of response chunks, the
streamed JSON array without it, Google's error bodies and statuses, countTokens and the models
list) and records every request it receives.

The model name and the key pick the behaviour: model `rate-limited` answers 429
RESOURCE_EXHAUSTED, key `invalid-key` answers 400 API_KEY_INVALID; a model starting
`retrieve-` is the model of `retrieving_model` (its stream sends each text in two chunks and
the function calls with the finish; a call turn answered by a different number of function
responses gets the API's 400); a request carrying `tools` gets a `functionCall` answer until
it holds two function responses. Implicit caching
is modelled: a request whose prompt (system instruction, tools, contents) starts with the
previous request's, 1,024 tokens or more in common, reports that prefix as
`cachedContentTokenCount`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.proxy.fake_anthropic import Received, halves
from tests.proxy.retrieving_model import (
    ANSWER,
    PIECES,
    RETRIEVE,
    RETRIEVING,
    TOOLS,
    Decision,
    Result,
    View,
    decide,
)

MIN_CACHED = 1024
JSON_TYPE = "application/json; charset=UTF-8"
HEADERS = {"vary": "Origin, X-Origin, Referer", "x-content-type-options": "nosniff"}
MODELS = ("gemini-2.5-flash", "gemini-2.5-pro")


@dataclass
class Seen(Received):
    """One request as the fake saw it, with its query string."""

    query: str = ""


@dataclass
class FakeGemini:
    """The fake API and what it has received."""

    received: list[Seen] = field(default_factory=list)
    _last_prompt: str = ""

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/livez", self.livez, methods=["GET"]),
                Route("/{version}/models", self.models, methods=["GET"]),
                Route("/{version}/models/{rest:path}", self.model, methods=["GET", "POST"]),
            ]
        )

    def reset(self) -> None:
        """Forget every request, as a fresh fake would."""
        self.received.clear()
        self._last_prompt = ""

    async def livez(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _record(self, request: Request) -> bytes:
        raw = await request.body()
        seen = Seen(request.url.path, dict(request.headers), raw, request.url.query)
        self.received.append(seen)
        return raw

    async def models(self, request: Request) -> Response:
        await self._record(request)
        listed = [model_info(name) for name in MODELS]
        return raw_json({"models": listed}, 200)

    async def model(self, request: Request) -> Response:
        raw = await self._record(request)
        model, _, action = str(request.path_params["rest"]).partition(":")
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if key == "invalid-key":
            return invalid_key()
        if request.method == "GET" and not action:
            return raw_json(model_info(model), 200)
        if action == "countTokens":
            tokens = len(json.dumps(json.loads(raw)["contents"])) // 4
            return raw_json({"totalTokens": tokens, "promptTokensDetails": [text(tokens)]}, 200)
        if action not in ("generateContent", "streamGenerateContent"):
            return not_found(request.url.path)
        if model == "rate-limited":
            return rate_limited(model)
        body = json.loads(raw)
        if model.startswith(RETRIEVING):
            return self._retrieving(model, action, body, request.query_params.get("alt") == "sse")
        usage = self._usage(body)
        if action == "generateContent":
            return raw_json(response(model, answer_parts(body), usage, "STOP"), 200)
        chunks = stream_chunks(model, usage)
        if request.query_params.get("alt") == "sse":
            events = (f"data: {json.dumps(chunk)}\r\n\r\n".encode() for chunk in chunks)
            headers = {**HEADERS, "content-disposition": "attachment"}
            return StreamingResponse(_each(events), media_type="text/event-stream", headers=headers)
        return StreamingResponse(_array(chunks), media_type=JSON_TYPE, headers=HEADERS)

    def _retrieving(self, model: str, action: str, body: dict[str, Any], sse: bool) -> Response:
        """The `retrieve-` model's answer, JSON or streamed."""
        if unanswered(body["contents"]):
            message = (
                "Please ensure that the number of function response parts is equal to the "
                "number of function call parts of the function call turn."
            )
            return error(400, "INVALID_ARGUMENT", message, [])
        view = gemini_view(body["contents"])
        parts = gemini_parts(decide(model, view))
        usage = self._usage(body)
        if action == "generateContent":
            return raw_json(response(model, parts, usage, "STOP"), 200)
        return streamed(retrieving_chunks(model, parts, usage), sse)

    def _usage(self, body: dict[str, Any]) -> dict[str, Any]:
        """Counts of the prompt (system instruction, tools, contents: a quarter of their JSON's
        characters each) and of the answer."""
        parts = (body.get("systemInstruction"), body.get("tools"), body["contents"])
        prompt_text = json.dumps(parts)
        prompt = len(prompt_text) // 4
        pairs = zip(prompt_text, self._last_prompt, strict=False)
        common = sum(1 for _ in itertools.takewhile(lambda pair: pair[0] == pair[1], pairs)) // 4
        self._last_prompt = prompt_text
        usage: dict[str, Any] = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": 7,
            "totalTokenCount": prompt + 7,
            "promptTokensDetails": [text(prompt)],
        }
        if common >= MIN_CACHED:
            usage["cachedContentTokenCount"] = common
            usage["cacheTokensDetails"] = [text(common)]
        return usage


def text(tokens: int) -> dict[str, Any]:
    return {"modality": "TEXT", "tokenCount": tokens}


def answer_parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A function call while the conversation has fewer than two function responses, then
    text."""
    results = sum(
        1 for content in body["contents"] for part in content.get("parts", [])
        if "functionResponse" in part
    )  # fmt: skip
    if body.get("tools") and results < 2:
        args = {"command": f"grep -rn def {TOOLS[results]}"}
        return [{"functionCall": {"name": "run_shell", "args": args}}]
    return [{"text": ANSWER}]


def response(
    model: str, parts: list[dict[str, Any]], usage: dict[str, Any], finish: str | None
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
    if finish:
        candidate["finishReason"] = finish
    candidate["index"] = 0
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": "fAkEgEmInIrEsP0001",
    }


def stream_chunks(model: str, usage: dict[str, Any]) -> list[dict[str, Any]]:
    """The text answer in pieces; every chunk counts the prompt, the last one the answer."""
    prompt_only = {key: value for key, value in usage.items() if not key.startswith("candidates")}
    prompt_only["totalTokenCount"] = usage["promptTokenCount"]
    chunks = [response(model, [{"text": piece}], prompt_only, None) for piece in PIECES[:-1]]
    chunks.append(response(model, [{"text": PIECES[-1]}], usage, "STOP"))
    return chunks


async def _each(items: Any) -> AsyncIterator[bytes]:
    for item in items:
        yield item


async def _array(chunks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    """The form `streamGenerateContent` has without `alt=sse`: one JSON array, sent element
    by element."""
    for index, chunk in enumerate(chunks):
        yield (b"[" if index == 0 else b"\n,\r\n") + json.dumps(chunk, indent=2).encode()
    yield b"\n]"


def raw_json(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    """JSON as Google writes it: indented by two spaces."""
    content = json.dumps(body, indent=2).encode() + b"\n"
    return Response(content, status, {**HEADERS, **(headers or {})}, media_type=JSON_TYPE)


def error(status: int, code: str, message: str, details: list[Any]) -> Response:
    body = {"error": {"code": status, "message": message, "status": code, "details": details}}
    return raw_json(body, status)


def rate_limited(model: str) -> Response:
    quota = {
        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        "quotaDimensions": {"location": "global", "model": model},
        "quotaValue": "10",
    }
    details = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [quota]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"},
    ]
    message = (
        "You exceeded your current quota, please check your plan and billing details. "
        "Please retry in 17.0s."
    )
    return error(429, "RESOURCE_EXHAUSTED", message, details)


def invalid_key() -> Response:
    message = "API key not valid. Please pass a valid API key."
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        },
        {
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": message,
        },
    ]
    return error(400, "INVALID_ARGUMENT", message, details)


def not_found(path: str) -> Response:
    return error(404, "NOT_FOUND", f"Method not found: {path}.", [])


def model_info(name: str) -> dict[str, Any]:
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": name.replace("-", " ").title(),
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }


def streamed(chunks: list[dict[str, Any]], sse: bool) -> Response:
    """Chunks as `streamGenerateContent` sends them: SSE with `alt=sse`, else a JSON array."""
    if sse:
        events = (f"data: {json.dumps(chunk)}\r\n\r\n".encode() for chunk in chunks)
        headers = {**HEADERS, "content-disposition": "attachment"}
        return StreamingResponse(_each(events), media_type="text/event-stream", headers=headers)
    return StreamingResponse(_array(chunks), media_type=JSON_TYPE, headers=HEADERS)


def function_calls(content: dict[str, Any]) -> list[dict[str, Any]]:
    return [part["functionCall"] for part in content.get("parts", []) if "functionCall" in part]


def function_responses(content: dict[str, Any]) -> list[dict[str, Any]]:
    parts = content.get("parts", [])
    return [part["functionResponse"] for part in parts if "functionResponse" in part]


def unanswered(contents: list[dict[str, Any]]) -> bool:
    """Whether a call turn is followed by a different number of function responses."""
    return any(
        len(function_calls(content)) != len(function_responses(following))
        for content, following in itertools.pairwise(contents)
        if function_calls(content)
    )


def gemini_view(contents: list[dict[str, Any]]) -> View:
    """The conversation as the model reads it: each response paired with the call of its
    name in the turn before."""
    paired: list[tuple[str, Any, str]] = []
    for content, following in itertools.pairwise(contents):
        calls = function_calls(content)
        for answer in function_responses(following):
            call = next((c for c in calls if c["name"] == answer["name"]), {})
            if call:
                calls.remove(call)
            output = answer["response"]
            text = output.get("output", output.get("error", json.dumps(output)))
            paired.append((answer["name"], call.get("args"), str(text)))
    newest = function_responses(contents[-1])
    return View(
        newest=[Result(*triple) for triple in paired[len(paired) - len(newest) :]]
        if newest
        else [],
        client_results=sum(1 for name, _, _ in paired if name != RETRIEVE),
        calls=sum(len(function_calls(content)) for content in contents),
    )


def gemini_parts(decision: Decision) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": decision.text}] if decision.text else []
    return parts + [{"functionCall": {"name": name, "args": args}} for name, args in decision.calls]


def retrieving_chunks(
    model: str, parts: list[dict[str, Any]], usage: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each text in two chunks, then the function calls with the finish; every chunk counts
    the prompt, the last one the answer."""
    prompt_only = {key: value for key, value in usage.items() if not key.startswith("candidates")}
    prompt_only["totalTokenCount"] = usage["promptTokenCount"]
    chunks = []
    for part in parts:
        if "text" in part:
            for piece in halves(part["text"]):
                chunks.append(response(model, [{"text": piece}], prompt_only, None))
    calls = [part for part in parts if "functionCall" in part]
    chunks.append(response(model, calls or [{"text": ""}], usage, "STOP"))
    return chunks
