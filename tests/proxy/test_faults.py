"""The proxy under faults: upstream errors, stalls and cut answers reach each client exactly
as the upstream sent them, a thousand at once, and the proxy stays up without crashing; a
compression that runs past its deadline forwards the rest as it came, turn after turn."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from headroom.bench import faults
from headroom.bench.proxy import log_errors, running
from headroom.bench.upstream import FAULT_HEADER, ID_HEADER, RETRY_AFTER
from headroom.config import Settings
from headroom.proxy import create_app
from headroom.store import open_store
from tests.proxy.conftest import serve, stop
from tests.proxy.fake_anthropic import Fake

STDLIB = Path(json.__file__).resolve().parents[1]

pytestmark = pytest.mark.integration


def test_a_thousand_concurrent_requests_with_upstream_faults_lose_or_alter_none(
    tmp_path: Path,
) -> None:
    with running(tmp_path) as servers:
        result = asyncio.run(faults.run(servers.proxy, servers.upstream, count=1000))
        assert result.lost == [] and result.altered == []
        assert result.alive
    assert log_errors(servers.log) == [], "the proxy logged errors or tracebacks"


def test_a_cut_stream_and_an_error_reach_the_client_as_the_upstream_sent_them(
    tmp_path: Path,
) -> None:
    with running(tmp_path) as servers:
        cut = {**faults.headers("cut"), ID_HEADER: "cut", FAULT_HEADER: "cut:4"}
        body = faults.request_body(True, "hi")
        received = b""
        url = f"{servers.proxy}/v1/messages"
        with (
            pytest.raises(httpx.RemoteProtocolError),
            httpx.stream("POST", url, content=body, headers=cut) as response,
        ):
            for chunk in response.iter_raw():
                received += chunk
        limited = {**faults.headers("limited"), FAULT_HEADER: "429"}
        refused = httpx.post(url, content=faults.request_body(False, "hi"), headers=limited)
        sent = httpx.get(f"{servers.upstream}/bench/record").json()["sent"]["cut"]
    assert received.count(b"event: ") == 4
    assert hashlib.sha256(received).hexdigest() == sent["sha256"] and sent["cut"]
    assert refused.status_code == 429 and refused.headers["retry-after"] == RETRY_AFTER
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert log_errors(servers.log) == []
    assert "cut its answer" in servers.log.read_text()


def two_reads(follow_up: bool) -> list[dict[str, Any]]:
    """Two large files read by a tool, one after the other (and a follow-up question)."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "How do these parse input?"}]
    for index, name in enumerate(("argparse.py", "tarfile.py")):
        call = {"type": "tool_use", "id": f"toolu_{index}", "name": "Read", "input": {}}
        text = (STDLIB / name).read_text(encoding="utf-8")
        result = {"type": "tool_result", "tool_use_id": f"toolu_{index}", "content": text}
        messages += [
            {"role": "assistant", "content": [call]},
            {"role": "user", "content": [result]},
        ]
    if follow_up:
        messages += [
            {"role": "assistant", "content": "Both use hand-written parsers."},
            {"role": "user", "content": "Which one validates more?"},
        ]
    return messages


def forwarded_reads(fake: Fake, turn: int) -> list[str]:
    body = fake.received[turn].body
    return [m["content"][0]["content"] for m in body["messages"][2:5:2]]


@pytest.mark.parametrize("timeout_ms", [1, 2000])
def test_a_compression_past_its_deadline_forwards_the_rest_as_it_came_on_every_turn(
    fake: tuple[Fake, str], timeout_ms: int
) -> None:
    settings = Settings(store="memory://", anthropic_url=fake[1], compress_timeout_ms=timeout_ms)
    served = serve(create_app(settings, store=open_store("memory://")))
    try:
        for follow_up in (False, True):
            body = {"model": faults.MODEL, "max_tokens": 10, "messages": two_reads(follow_up)}
            sent = httpx.post(f"{served.url}/v1/messages", json=body, headers=faults.headers("d"))
            assert sent.status_code == 200
        metrics = httpx.get(f"{served.url}/metrics").text
    finally:
        stop(served)
    first, second = forwarded_reads(fake[0], 0), forwarded_reads(fake[0], 1)
    assert first == second  # the later turn replays each decision, the deadline's too
    original = (STDLIB / "tarfile.py").read_text(encoding="utf-8")
    late = timeout_ms == 1  # argparse.py alone takes longer than a millisecond to compress
    assert (first[1] == original) is late
    assert f"headroom_compress_timeouts_total {1 if late else 0}" in metrics
