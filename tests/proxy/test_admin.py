"""The admin endpoints (retrieve, compress, stats, metrics) over a memory store holding
real compressed content, and their loopback-or-token guard."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from headroom.config import Settings
from headroom.conversation.accounts import update_ledger
from headroom.pipeline import Request, compress_payload
from headroom.proxy.admin import Metrics, is_loopback, routes
from headroom.store import MemoryStore, Store, open_store

LOOPBACK = ("127.0.0.1", 50000)
SETTINGS = Settings(store="memory://")


def grep_output() -> str:
    """`grep -n "def "` over a few stdlib modules, as grep prints it."""
    lines = []
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for name in ("json/decoder.py", "json/encoder.py", "textwrap.py", "shlex.py"):
        text = (stdlib / name).read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            if "def " in line:
                lines.append(f"Lib/{name}:{number}:{line}")
    return "\n".join(lines)


def app_for(store: Store, token: str | None = None, metrics: Metrics | None = None) -> Starlette:
    return Starlette(routes=routes(store, SETTINGS, token, metrics))


@pytest.fixture
def store() -> Store:
    return open_store("memory://")


@pytest.fixture
def client(store: Store) -> TestClient:
    return TestClient(app_for(store), client=LOOPBACK, base_url="http://127.0.0.1")


@pytest.fixture
def stored(store: Store) -> tuple[str, str]:
    """The key and original of a compressed grep output."""
    original = grep_output()
    transform = compress_payload(Request(original), store, SETTINGS)
    assert transform.keys, transform.skipped
    return transform.keys[0], original


def test_retrieve_whole(client: TestClient, stored: tuple[str, str]) -> None:
    key, original = stored
    answer = client.get(f"/v1/retrieve/{key.upper()}")
    assert answer.status_code == 200
    assert answer.json() == {"key": key, "content": original}


def test_retrieve_lines_and_grep(client: TestClient, stored: tuple[str, str]) -> None:
    key, original = stored
    lines = original.split("\n")
    sliced = client.get(f"/v1/retrieve/{key}", params={"lines": "2-4"})
    assert sliced.status_code == 200
    assert sliced.json()["content"] == "\n".join(lines[1:4])
    grepped = client.get(f"/v1/retrieve/{key}", params={"grep": "shlex"})
    expected = [f"{n}:{line}" for n, line in enumerate(lines, 1) if "shlex" in line]
    assert grepped.json()["content"].split("\n") == expected


@pytest.mark.parametrize("query", [{"lines": "9-3"}, {"lines": "x"}, {"grep": "("}])
def test_retrieve_bad_slice_is_400(
    client: TestClient, stored: tuple[str, str], query: dict[str, str]
) -> None:
    answer = client.get(f"/v1/retrieve/{stored[0]}", params=query)
    assert answer.status_code == 400
    assert next(iter(query)) in answer.json()["error"]["message"]


def test_retrieve_unknown_is_404(client: TestClient) -> None:
    answer = client.get("/v1/retrieve/0123456789abcdef")
    assert answer.status_code == 404
    assert "unknown" in answer.json()["error"]["message"]


def test_retrieve_expired_is_410() -> None:
    now = [1000.0]
    store = MemoryStore(ttl=60, clock=lambda: now[0])
    key = compress_payload(Request(grep_output()), store, SETTINGS).keys[0]
    now[0] += 120
    answer = TestClient(app_for(store), client=LOOPBACK, base_url="http://127.0.0.1").get(
        f"/v1/retrieve/{key}"
    )
    assert answer.status_code == 410
    assert "expired" in answer.json()["error"]["message"]


def test_compress_then_retrieve(client: TestClient) -> None:
    original = grep_output()
    answer = client.post("/v1/compress", json={"content": original, "query": "decoder"})
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"output", "kind", "keys", "skipped", "tokens_before", "tokens_after"}
    assert body["skipped"] is None and body["keys"]
    assert body["tokens_after"] < body["tokens_before"]
    assert body["keys"][0] in body["output"]
    back = client.get(f"/v1/retrieve/{body['keys'][0]}")
    assert back.json()["content"] == original


def test_compress_small_is_skipped(client: TestClient) -> None:
    body = client.post("/v1/compress", json={"content": "hello", "kind": "log"}).json()
    assert body["output"] == "hello" and body["keys"] == [] and body["skipped"]


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[1]", b'{"kind": "log"}', b'{"content": "x", "kind": "nope"}'],
)
def test_compress_bad_body_is_400(client: TestClient, payload: bytes) -> None:
    answer = client.post("/v1/compress", content=payload)
    assert answer.status_code == 400
    assert answer.json()["error"]["message"]


def test_stats_is_the_ledger(client: TestClient, store: Store) -> None:
    assert client.get("/stats").json()["sessions"] == {}
    update_ledger(store, "s1", lambda ledger: ledger.record_compression("s1", "search", 100, 10))
    sessions = client.get("/stats").json()["sessions"]
    assert list(sessions) == ["s1"]


def test_metrics_render_in_order(store: Store) -> None:
    metrics = Metrics()
    metrics.request("openai", 200)
    metrics.request("anthropic", 429)
    metrics.request("anthropic", 200)
    metrics.request("anthropic", 200)
    metrics.compressed(3)
    metrics.fail_open()
    metrics.timed_out()
    metrics.transferred(1000, 400)
    answer = TestClient(
        app_for(store, metrics=metrics), client=LOOPBACK, base_url="http://127.0.0.1"
    ).get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = [line for line in answer.text.splitlines() if not line.startswith("#")]
    assert samples == [
        'headroom_requests_total{provider="anthropic",status="200"} 2',
        'headroom_requests_total{provider="anthropic",status="429"} 1',
        'headroom_requests_total{provider="openai",status="200"} 1',
        "headroom_compressed_payloads_total 3",
        "headroom_fail_open_total 1",
        "headroom_compress_timeouts_total 1",
        "headroom_bytes_in_total 1000",
        "headroom_bytes_out_total 400",
        f'headroom_worker{{pid="{os.getpid()}"}} 1',
    ]
    assert "# TYPE headroom_requests_total counter" in answer.text
    assert answer.text == metrics.render()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.5", False),
        ("::ffff:10.0.0.5", False),
        ("testclient", False),
        ("", False),
        (None, False),
    ],
)
def test_is_loopback(host: str | None, expected: bool) -> None:
    assert is_loopback(host) is expected


ENDPOINTS = [
    ("GET", "/v1/retrieve/0123456789abcdef"),
    ("POST", "/v1/compress"),
    ("GET", "/stats"),
    ("GET", "/metrics"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_remote_client_without_token_is_refused(store: Store, method: str, path: str) -> None:
    remote = TestClient(app_for(store), client=("10.0.0.5", 50000))
    answer = remote.request(method, path, json={"content": "x"})
    assert answer.status_code == 403
    assert "Authorization: Bearer" in answer.json()["error"]["message"]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_token_is_required_from_everyone(store: Store, method: str, path: str) -> None:
    app = app_for(store, token="s3cret")
    for host in ("10.0.0.5", "127.0.0.1"):
        client = TestClient(app, client=(host, 50000))
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret"}):
            refused = client.request(method, path, headers=headers, json={"content": "x"})
            assert refused.status_code == 403
            assert "admin token" in refused.json()["error"]["message"]
        allowed = client.request(
            method, path, headers={"authorization": "Bearer s3cret"}, json={"content": "x"}
        )
        assert allowed.status_code != 403


def test_token_client_retrieves(store: Store, stored: tuple[str, str]) -> None:
    client = TestClient(app_for(store, token="s3cret"))  # host "testclient": not loopback
    answer = client.get(f"/v1/retrieve/{stored[0]}", headers={"Authorization": "Bearer s3cret"})
    assert answer.status_code == 200
    assert answer.json()["content"] == stored[1]
