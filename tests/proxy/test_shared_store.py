"""Two proxies in front of one fake Anthropic API, sharing one Redis store (a real
redis-server): what one of them stores, the other serves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from headroom import markers
from headroom.config import Settings
from headroom.proxy import create_app
from headroom.store import open_store
from tests.proxy.conftest import serve, stop
from tests.proxy.fake_anthropic import ANSWER, Fake

pytestmark = pytest.mark.integration

MODEL = "claude-sonnet-4-6"


def service_log(lines: int = 4_000) -> str:
    """A service's log: steady request lines, a warning now and then, two errors."""
    out = []
    for n in range(lines):
        stamp = f"2026-11-25T07:{n // 600 % 60:02d}:{n // 10 % 60:02d}.{n % 10}00Z"
        if n in (1_234, 3_210):
            out.append(f"{stamp} ERROR worker-{n % 7} job {n} failed: connection reset by peer")
        elif n % 211 == 0:
            out.append(f"{stamp} WARN  worker-{n % 7} queue depth {n % 97} above 64")
        else:
            path = f"/api/items/{n % 53}"
            out.append(f"{stamp} INFO  worker-{n % 7} GET {path} 200 in {n * 37 % 211} ms")
    return "\n".join(out)


def conversation(output: str) -> list[dict[str, Any]]:
    call = {"type": "tool_use", "id": "toolu_0000", "name": "Bash", "input": {"command": "logs"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_0000", "content": output}
    return [
        {"role": "user", "content": "Why did the jobs fail?"},
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": [result]},
    ]


@pytest.fixture
def proxies(fake: tuple[Fake, str], redis_url: str) -> Iterator[tuple[str, str]]:
    """Two proxies, each with its own connection to the same Redis database."""
    settings = Settings(store=redis_url, anthropic_url=fake[1])
    stores = [open_store(redis_url), open_store(redis_url)]
    served = [serve(create_app(settings, store=store)) for store in stores]
    yield served[0].url, served[1].url
    for each in served:
        stop(each)
    for store in stores:
        store.close()


def test_a_marker_made_through_one_proxy_is_retrieved_through_the_other(
    fake: tuple[Fake, str], proxies: tuple[str, str]
) -> None:
    log = service_log()
    client = anthropic.Anthropic(base_url=proxies[0], api_key="test", max_retries=0)
    reply = client.messages.create(model=MODEL, max_tokens=100, messages=conversation(log))  # type: ignore[arg-type]
    assert reply.content[0].type == "text" and reply.content[0].text == ANSWER
    forwarded = fake[0].received[-1].body["messages"][2]["content"][0]["content"]
    text = forwarded if isinstance(forwarded, str) else forwarded[0]["text"]
    key = markers.header_key(text)
    assert key is not None and len(text) < len(log) // 2, text[:200]

    answer = httpx.get(f"{proxies[1]}/v1/retrieve/{key}")
    assert answer.status_code == 200
    assert answer.json() == {"key": key, "content": log}
    sliced = httpx.get(f"{proxies[1]}/v1/retrieve/{key}", params={"lines": "1235-1235"})
    assert sliced.json()["content"] == log.split("\n")[1234]
