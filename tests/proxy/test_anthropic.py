"""The proxy in front of a fake Anthropic API, driven by the real `anthropic` SDK."""

from __future__ import annotations

import itertools
import json
import socket
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from headroom.config import Settings
from headroom.conversation.prefix import without_cache_control
from headroom.proxy import create_app
from headroom.store import open_store
from tests.proxy.conftest import serve, stop
from tests.proxy.fake_anthropic import ANSWER, Fake

pytestmark = pytest.mark.integration

MODEL = "claude-sonnet-4-6"
TOOL = {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object"}}


def grep_def(package: str) -> str:
    """What `grep -rn def` prints over a standard-library package."""
    root = Path(json.__file__).resolve().parents[1] / package
    lines = []
    for path in sorted(root.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "def" in line:
                lines.append(f"{path.relative_to(root.parent)}:{number}:{line}")
    return "\n".join(lines)


def tool_conversation() -> list[dict[str, Any]]:
    command = "grep -rn def json email"
    call = {"type": "tool_use", "id": "toolu_0000", "name": "Bash", "input": {"command": command}}
    output = grep_def("json") + "\n" + grep_def("email")
    result = {"type": "tool_result", "tool_use_id": "toolu_0000", "content": output}
    return [
        {"role": "user", "content": "Where are the parsers defined?"},
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": [result]},
    ]


def client(proxy_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy_url, api_key="test", max_retries=0)


def test_a_large_tool_result_reaches_the_upstream_compressed(
    fake: tuple[Fake, str], proxy_url: str
) -> None:
    messages = tool_conversation()
    reply = client(proxy_url).messages.create(model=MODEL, max_tokens=100, messages=messages)  # type: ignore[arg-type]
    assert reply.content[0].type == "text" and reply.content[0].text == ANSWER
    assert reply.usage.output_tokens == 7 and reply.stop_reason == "end_turn"
    forwarded = fake[0].received[-1].body["messages"][2]["content"][0]["content"]
    original = messages[2]["content"][0]["content"]
    text = forwarded if isinstance(forwarded, str) else forwarded[0]["text"]
    assert text.startswith("[headroom ") and len(text) < len(original) // 2


def test_a_stream_reaches_the_client_whole(fake: tuple[Fake, str], proxy_url: str) -> None:
    messages = [{"role": "user", "content": "What is the answer?"}]
    with client(proxy_url).messages.stream(model=MODEL, max_tokens=100, messages=messages) as s:  # type: ignore[arg-type]
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == ANSWER and final.content[0].type == "text"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 7
    assert fake[0].received[-1].body["stream"] is True


def test_a_rate_limit_reaches_the_sdk_with_its_retry_after(proxy_url: str) -> None:
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(anthropic.RateLimitError) as caught:
        client(proxy_url).messages.create(model="rate-limited", max_tokens=10, messages=messages)  # type: ignore[arg-type]
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "17"
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


def test_a_malformed_body_gets_a_400_in_anthropics_shape(
    fake: tuple[Fake, str], proxy_url: str
) -> None:
    response = httpx.post(f"{proxy_url}/v1/messages", content=b'{"model": ', timeout=10)
    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert fake[0].received == []


def test_headroom_headers_stop_at_the_proxy_and_the_api_key_crosses(
    fake: tuple[Fake, str], proxy_url: str
) -> None:
    headers = {"x-api-key": "sk-ant-secret", "x-headroom-session-id": "s1", "x-headroom-x": "y"}
    body = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(f"{proxy_url}/v1/messages", json=body, headers=headers, timeout=10)
    assert response.status_code == 200
    received = fake[0].received[-1].headers
    assert received["x-api-key"] == "sk-ant-secret"
    assert not [name for name in received if name.startswith("x-headroom-")]


def test_bypass_forwards_the_body_byte_identical(fake: tuple[Fake, str], proxy_url: str) -> None:
    raw = json.dumps({"model": MODEL, "max_tokens": 10, "messages": tool_conversation()}).encode()
    headers = {"x-headroom-bypass": "true", "content-type": "application/json"}
    response = httpx.post(f"{proxy_url}/v1/messages", content=raw, headers=headers, timeout=10)
    assert response.status_code == 200
    assert fake[0].received[-1].raw == raw


def test_count_tokens_is_passed_through_byte_for_byte(
    fake: tuple[Fake, str], proxy_url: str
) -> None:
    raw = json.dumps({"model": MODEL, "messages": tool_conversation()}).encode()
    url = f"{proxy_url}/v1/messages/count_tokens"
    response = httpx.post(url, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 200 and response.json()["input_tokens"] > 0
    assert fake[0].received[-1].raw == raw


def test_an_agent_loop_keeps_the_forwarded_prefix_byte_identical(
    fake: tuple[Fake, str], proxy_url: str
) -> None:
    sdk = client(proxy_url)
    messages: list[Any] = [{"role": "user", "content": "Where are the parsers defined?"}]
    for _ in range(3):
        reply = sdk.messages.create(model=MODEL, max_tokens=100, messages=messages, tools=[TOOL])  # type: ignore[arg-type,list-item]
        messages.append({"role": "assistant", "content": [b.model_dump() for b in reply.content]})
        if reply.stop_reason != "tool_use":
            break
        call = reply.content[0]
        assert call.type == "tool_use"
        output = grep_def(str(call.input["command"]).split()[-1])  # type: ignore[index]
        block = {"type": "tool_result", "tool_use_id": call.id, "content": output}
        messages.append({"role": "user", "content": [block]})
    assert reply.content[0].type == "text"
    turns = [
        [json.dumps(without_cache_control(m)) for m in r.body["messages"]] for r in fake[0].received
    ]
    assert len(turns) == 3
    for before, after in itertools.pairwise(turns):
        assert after[: len(before)] == before


def test_health_endpoints_answer_ok(proxy_url: str) -> None:
    for path in ("/livez", "/readyz"):
        response = httpx.get(f"{proxy_url}{path}", timeout=10)
        assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_says_unavailable_when_the_store_fails(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    proxy = serve(create_app(Settings(anthropic_url="http://127.0.0.1:9"), store=store))
    try:
        store.close()  # every later use of the store fails
        ready = httpx.get(f"{proxy.url}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
        assert "closed" in ready.json()["reason"]
        assert httpx.get(f"{proxy.url}/livez", timeout=10).status_code == 200
    finally:
        stop(proxy)


def test_an_unreachable_upstream_gets_a_502_in_anthropics_shape() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings = Settings(store="memory://", anthropic_url=f"http://127.0.0.1:{port}")
    served = serve(create_app(settings, store=open_store("memory://")))
    try:
        body = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
        response = httpx.post(f"{served.url}/v1/messages", json=body, timeout=10)
    finally:
        stop(served)
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "api_error"


def test_metrics_and_retrieve_are_served_on_loopback(proxy_url: str) -> None:
    httpx.post(f"{proxy_url}/v1/messages", content=b'{"model": ', timeout=10)
    metrics = httpx.get(f"{proxy_url}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert 'headroom_requests_total{provider="anthropic",status="400"} 1' in metrics.text
    missing = httpx.get(f"{proxy_url}/v1/retrieve/0123456789abcdef", timeout=10)
    assert missing.status_code == 404


@pytest.mark.parametrize("host", ["evil.example:8787", "evil.example", "127.0.0.1.nip.io"])
def test_a_page_rebound_to_loopback_cannot_read_the_admin_endpoints(
    proxy_url: str, host: str
) -> None:
    for path in ("/stats", "/metrics", "/v1/retrieve/0123456789abcdef"):
        refused = httpx.get(f"{proxy_url}{path}", headers={"host": host}, timeout=10)
        assert refused.status_code == 403, path
        assert "loopback name" in refused.text
    assert httpx.get(f"{proxy_url}/stats", headers={"host": "localhost"}).status_code == 200


def test_usage_is_read_from_an_upstream_that_would_gzip_its_answers() -> None:
    from starlette.middleware.gzip import GZipMiddleware

    fake = Fake()
    upstream = serve(GZipMiddleware(fake.app(), minimum_size=10))
    store = open_store("memory://")
    proxy = serve(create_app(Settings(store="memory://", anthropic_url=upstream.url), store=store))
    try:
        message = client(proxy.url).messages.create(
            model=MODEL,
            max_tokens=64,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-headroom-session-id": "gzip-session"},
        )
        assert message.content[0].text == ANSWER  # type: ignore[union-attr]
        assert fake.received[-1].headers["accept-encoding"] == "identity"
        for _ in range(50):  # the turn is accounted just after the answer is sent
            session = httpx.get(f"{proxy.url}/stats").json()["sessions"].get("gzip-session")
            if session and session["turns"] == 1:
                break
        assert session is not None and session["simulated_turns"] == 0
    finally:
        stop(proxy)
        stop(upstream)
