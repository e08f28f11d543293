"""Concurrent requests through the proxy while the upstream misbehaves: each client must get
exactly what the upstream sent, and the proxy must stay up.

Requests cycle through `PLAN`: plain answers (JSON and streamed), answers delayed before
their headers, 500 and 529 errors, 429 with `retry-after`, and answers the upstream cuts
mid-way (a stream after a few events, a JSON body half-way). Every request is its own
session and carries a tool result big enough to be compressed, so the conversation layer
runs under the same load. The fake upstream (`headroom.bench.upstream`) records the digest
of what it sent under each request's id; a request is *lost* when no answer came back or
the upstream never saw it (or saw its client leave), *altered* when its status, bytes,
truncation or `retry-after` differ from what the upstream sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from headroom.bench.upstream import FAULT_HEADER, ID_HEADER, RETRY_AFTER

PLAN: tuple[tuple[str, bool], ...] = (
    ("", False),
    ("", True),
    ("stall:300", False),
    ("stall:300", True),
    ("500", False),
    ("529", True),
    ("429", False),
    ("cut:4", True),
    ("cut:1", False),
)
"""(fault, streamed) per request, in turn."""
MODEL = "claude-sonnet-4-6"


@dataclass(frozen=True)
class Got:
    """What one client received."""

    status: int
    sha256: str
    length: int
    cut: bool
    retry_after: str | None


@dataclass
class FaultRun:
    """The outcome of a fault run."""

    requests: int
    seconds: float
    lost: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    alive: bool = False
    """The proxy answered `/livez` afterwards."""

    @property
    def ok(self) -> bool:
        return self.alive and not self.lost and not self.altered

    def summary(self) -> str:
        verdict = "none lost or altered" if not (self.lost or self.altered) else (
            f"{len(self.lost)} lost, {len(self.altered)} altered"
        )  # fmt: skip
        alive = "answers /livez" if self.alive else "DOWN afterwards"
        return (
            f"{self.requests} concurrent requests in {self.seconds:.1f} s: {verdict}; proxy {alive}"
        )


def tool_result() -> str:
    """A build log of a few hundred lines: big enough for the proxy to compress."""
    lines = [f"[{i:04d}] compiling module_{i % 37}.c -> module_{i % 37}.o ok" for i in range(400)]
    lines[217] = "[0217] error: module_31.c:88: undefined reference to `frobnicate'"
    return "\n".join(lines) + "\nbuild failed: 1 error\n"


def request_body(stream: bool, text: str) -> bytes:
    """An Anthropic request whose last message carries `text` as a tool result."""
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Why did the build fail?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_b1", "name": "Bash", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_b1", "content": text}],
        },
    ]
    body = {"model": MODEL, "max_tokens": 1024, "stream": stream, "messages": messages}
    return json.dumps(body).encode()


def headers(session: str) -> dict[str, str]:
    """The headers an Anthropic SDK sends, and the session the proxy should use."""
    return {
        "x-api-key": "sk-ant-bench",
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
        "x-headroom-session-id": session,
    }


async def run(proxy: str, upstream: str, count: int = 1000) -> FaultRun:
    """Sends `count` requests through `proxy` at once and checks each against `upstream`'s
    record of what it sent."""
    text = tool_result()
    bodies = {stream: request_body(stream, text) for stream in (False, True)}
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        jobs = []
        for index in range(count):
            fault, stream = PLAN[index % len(PLAN)]
            ident = f"fault-{index}"
            sent = {**headers(ident), ID_HEADER: ident, FAULT_HEADER: fault}
            jobs.append(_one(client, f"{proxy}/v1/messages", bodies[stream], sent))
        got = await asyncio.gather(*jobs)
        seconds = time.perf_counter() - start
        record = (await client.get(f"{upstream}/bench/record")).json()
        alive = (await client.get(f"{proxy}/livez")).status_code == 200
    result = FaultRun(count, seconds, alive=alive)
    for index, answer in enumerate(got):
        ident = f"fault-{index}"
        expected = record["sent"].get(ident)
        if answer is None or expected is None or ident in record["left"]:
            result.lost.append(ident)
        elif not _same(answer, expected, PLAN[index % len(PLAN)][0]):
            result.altered.append(ident)
    return result


async def _one(
    client: httpx.AsyncClient, url: str, body: bytes, sent: dict[str, str]
) -> Got | None:
    chunks: list[bytes] = []
    cut = False
    try:
        async with client.stream("POST", url, content=body, headers=sent) as response:
            try:
                async for chunk in response.aiter_raw():
                    chunks.append(chunk)
            except httpx.RemoteProtocolError:
                cut = True
    except httpx.HTTPError:
        return None
    data = b"".join(chunks)
    digest = hashlib.sha256(data).hexdigest()
    return Got(response.status_code, digest, len(data), cut, response.headers.get("retry-after"))


def _same(got: Got, expected: dict[str, Any], fault: str) -> bool:
    same = (got.status, got.sha256, got.length, got.cut) == (
        expected["status"], expected["sha256"], expected["length"], expected["cut"],
    )  # fmt: skip
    return same and (fault != "429" or got.retry_after == RETRY_AFTER)
