"""The proxy in front of a fake Gemini API, driven by the real `google-genai` SDK."""

from __future__ import annotations

import itertools
import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types

from headroom import markers
from headroom.config import Settings
from headroom.conversation.accounts import load_ledger
from headroom.proxy import create_app
from headroom.proxy.gemini import usage_of
from headroom.store import open_store
from headroom.store.base import Store
from tests.proxy.conftest import serve, stop
from tests.proxy.fake_gemini import ANSWER, FakeGemini
from tests.proxy.test_anthropic import grep_def
from tests.proxy.test_openai import turns_recorded

MODEL = "gemini-2.5-flash"
KEY = "AIza-test-key"
RUN_SHELL = types.FunctionDeclaration(
    name="run_shell",
    description="Run a shell command",
    parameters_json_schema={"type": "object", "properties": {"command": {"type": "string"}}},
)

SYSTEM = "You are a careful engineer. Read before you answer; cite file and line.\n" * 80


@pytest.fixture(scope="module")
def gemini_server() -> Iterator[tuple[FakeGemini, str]]:
    upstream = FakeGemini()
    served = serve(upstream.app())
    yield upstream, served.url
    stop(served)


@pytest.fixture
def fake_gemini(gemini_server: tuple[FakeGemini, str]) -> tuple[FakeGemini, str]:
    """The module's fake, as new: one server for every test, which is faster."""
    gemini_server[0].reset()
    return gemini_server


@pytest.fixture
def store() -> Store:
    return open_store("memory://")


@pytest.fixture
def proxy(fake_gemini: tuple[FakeGemini, str], store: Store) -> Iterator[str]:
    settings = Settings(store="memory://", gemini_url=fake_gemini[1])
    served = serve(create_app(settings, store=store))
    yield served.url
    stop(served)


def client(proxy_url: str, api_version: str | None = None, **headers: str) -> genai.Client:
    options = types.HttpOptions(base_url=proxy_url, api_version=api_version, headers=headers)
    return genai.Client(api_key=KEY, http_options=options)


def user(text: str) -> types.Content:
    return types.Content(role="user", parts=[types.Part(text=text)])


def tool_conversation() -> list[types.Content]:
    call = types.Part.from_function_call(
        name="run_shell", args={"command": "grep -rn def json email"}
    )
    output = grep_def("json") + "\n" + grep_def("email")
    result = types.Part.from_function_response(name="run_shell", response={"output": output})
    return [
        user("Where are the parsers defined?"),
        types.Content(role="model", parts=[call]),
        types.Content(role="user", parts=[result]),
    ]


@pytest.mark.integration
def test_an_answer_reaches_the_sdk_and_its_usage_is_accounted(
    fake_gemini: tuple[FakeGemini, str], proxy: str, store: Store
) -> None:
    sdk = client(proxy, **{"x-headroom-session-id": "gemini-session"})
    reply = sdk.models.generate_content(model=MODEL, contents="What is the answer?")
    assert reply.text == ANSWER
    assert reply.usage_metadata is not None and reply.usage_metadata.candidates_token_count == 7
    received = fake_gemini[0].received[-1]
    assert received.path == f"/v1/models/{MODEL}:generateContent"
    assert received.headers["x-goog-api-key"] == KEY
    assert not [h for h in received.headers if h.startswith("x-headroom-")]
    assert "model" not in received.body  # the path names it; the body goes as the SDK wrote it
    total = turns_recorded(store, 1)
    assert total.simulated_turns == 0 and total.usage.output == 7
    sessions = load_ledger(store).to_dict()["sessions"]
    assert list(sessions) == ["gemini-session"]
    assert list(sessions["gemini-session"]["models"]) == [MODEL]  # named by the path
    metrics = httpx.get(f"{proxy}/metrics").text
    assert 'headroom_requests_total{provider="gemini",status="200"}' in metrics


@pytest.mark.integration
def test_an_sse_stream_reaches_the_sdk_whole_and_its_usage_is_accounted(
    fake_gemini: tuple[FakeGemini, str], proxy: str, store: Store
) -> None:
    sdk = client(proxy, api_version="v1beta")  # a Client closes its connections when dropped
    stream = sdk.models.generate_content_stream(model=MODEL, contents=tool_conversation())
    chunks = list(stream)
    assert "".join(chunk.text or "" for chunk in chunks) == ANSWER and len(chunks) == 3
    received = fake_gemini[0].received[-1]
    assert (received.path, received.query) == (
        f"/v1beta/models/{MODEL}:streamGenerateContent",
        "alt=sse",
    )
    output = received.body["contents"][2]["parts"][0]["functionResponse"]["response"]["output"]
    assert output.startswith("[headroom ")
    total = turns_recorded(store, 1)
    assert total.simulated_turns == 0 and total.usage.output == 7


@pytest.mark.integration
def test_a_json_array_stream_is_relayed_byte_for_byte_and_accounted(
    fake_gemini: tuple[FakeGemini, str], proxy: str, store: Store
) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "What is the answer?"}]}]}
    path = f"/v1beta/models/{MODEL}:streamGenerateContent"
    headers = {"x-goog-api-key": KEY}
    through = httpx.post(f"{proxy}{path}", json=body, headers=headers, timeout=10)
    direct = httpx.post(f"{fake_gemini[1]}{path}", json=body, headers=headers, timeout=10)
    assert through.status_code == 200 and through.content == direct.content
    assert through.content.startswith(b"[{") and through.headers["content-type"].startswith(
        "application/json"
    )
    answer = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in through.json())
    assert answer == ANSWER
    total = turns_recorded(store, 1)
    assert total.simulated_turns == 0 and total.usage.output == 7


@pytest.mark.integration
def test_a_large_function_response_is_compressed_and_its_marker_retrievable(
    fake_gemini: tuple[FakeGemini, str], proxy: str
) -> None:
    contents = tool_conversation()
    sdk = client(proxy)
    reply = sdk.models.generate_content(model=MODEL, contents=contents)
    assert reply.text == ANSWER
    forwarded = fake_gemini[0].received[-1].body["contents"]
    sent = forwarded[2]["parts"][0]["functionResponse"]
    original = grep_def("json") + "\n" + grep_def("email")
    assert sent["name"] == "run_shell" and len(sent["response"]["output"]) < len(original) // 2
    key = markers.header_key(sent["response"]["output"])
    assert key is not None
    retrieved = httpx.get(f"{proxy}/v1/retrieve/{key}", timeout=10)
    assert retrieved.status_code == 200 and retrieved.json()["content"] == original
    sdk_json = [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in contents]
    assert forwarded[:2] == sdk_json[:2]


@pytest.mark.integration
def test_an_agent_loop_keeps_the_forwarded_prefix_byte_identical(
    fake_gemini: tuple[FakeGemini, str], proxy: str, store: Store
) -> None:
    sdk = client(proxy)
    config = types.GenerateContentConfig(
        system_instruction=SYSTEM, tools=[types.Tool(function_declarations=[RUN_SHELL])]
    )
    contents: list[Any] = [user("Where are the parsers defined?")]
    for _ in range(3):
        reply = sdk.models.generate_content(model=MODEL, contents=contents, config=config)
        assert reply.candidates and reply.candidates[0].content
        contents.append(reply.candidates[0].content)
        if not reply.function_calls:
            break
        call = reply.function_calls[0]
        output = grep_def(str((call.args or {})["command"]).split()[-1])
        response = types.Part.from_function_response(name="run_shell", response={"output": output})
        contents.append(types.Content(role="user", parts=[response]))
    assert reply.text == ANSWER
    turns = [[json.dumps(c) for c in r.body["contents"]] for r in fake_gemini[0].received]
    assert [len(t) for t in turns] == [1, 3, 5]
    for before, after in itertools.pairwise(turns):
        assert after[: len(before)] == before
    assert all(
        r.body["tools"] == fake_gemini[0].received[0].body["tools"] for r in fake_gemini[0].received
    )
    assert turns_recorded(store, 3).usage.read > 0  # the fake's implicit cache hit the prefix


@pytest.mark.integration
@pytest.mark.parametrize(
    "raw",
    [b'{"contents": ', b"[1, 2]", b'{"contents": "hi"}', b'{"contents": [{"parts": [1]}]}'],
)
def test_a_malformed_body_gets_a_400_in_googles_shape(
    fake_gemini: tuple[FakeGemini, str], proxy: str, raw: bytes
) -> None:
    url = f"{proxy}/v1beta/models/{MODEL}:generateContent"
    response = httpx.post(url, content=raw, headers={"x-goog-api-key": KEY}, timeout=10)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT") and error["message"]
    assert fake_gemini[0].received == []


@pytest.mark.integration
def test_upstream_errors_reach_the_client_unchanged(
    fake_gemini: tuple[FakeGemini, str], proxy: str
) -> None:
    sdk = client(proxy)
    with pytest.raises(errors.ClientError) as caught:
        sdk.models.generate_content(model="rate-limited", contents="hi")
    assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    for model, key in (("rate-limited", KEY), (MODEL, "invalid-key")):
        path = f"/v1beta/models/{model}:generateContent"
        through = httpx.post(
            f"{proxy}{path}", json=body, headers={"x-goog-api-key": key}, timeout=10
        )
        direct = httpx.post(
            f"{fake_gemini[1]}{path}", json=body, headers={"x-goog-api-key": key}, timeout=10
        )
        assert through.status_code == direct.status_code >= 400
        assert through.content == direct.content
        assert through.headers["content-type"] == direct.headers["content-type"]


@pytest.mark.integration
def test_other_gemini_requests_pass_through_with_their_key(
    fake_gemini: tuple[FakeGemini, str], proxy: str
) -> None:
    sdk = client(proxy)
    assert sdk.models.count_tokens(model=MODEL, contents="hello").total_tokens
    assert fake_gemini[0].received[-1].path == f"/v1/models/{MODEL}:countTokens"
    assert next(m.name for m in sdk.models.list()) == f"models/{MODEL}"
    assert fake_gemini[0].received[-1].path == "/v1/models"
    listed = httpx.get(f"{proxy}/v1beta/models?key=query-key&pageSize=5", timeout=10)
    assert listed.status_code == 200 and listed.json()["models"]
    last = fake_gemini[0].received[-1]
    assert (last.path, last.query) == ("/v1beta/models", "key=query-key&pageSize=5")
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    url = f"{proxy}/v1beta/models/{MODEL}:generateContent?key=query-key"
    assert httpx.post(url, json=body, timeout=10).status_code == 200
    assert fake_gemini[0].received[-1].query == "key=query-key"


@pytest.mark.integration
def test_an_unreachable_upstream_gets_a_502_in_googles_shape() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings = Settings(store="memory://", gemini_url=f"http://127.0.0.1:{port}")
    served = serve(create_app(settings, store=open_store("memory://")))
    try:
        body = {"contents": [{"parts": [{"text": "hi"}]}]}
        url = f"{served.url}/v1beta/models/{MODEL}:generateContent"
        response = httpx.post(url, json=body, headers={"x-goog-api-key": KEY}, timeout=10)
    finally:
        stop(served)
    assert response.status_code == 502
    assert response.json()["error"]["status"] == "UNAVAILABLE"


def test_usage_is_read_from_json_sse_and_arrays_as_prompt_and_completion() -> None:
    metadata = {"promptTokenCount": 100, "cachedContentTokenCount": 60,
                "candidatesTokenCount": 5, "thoughtsTokenCount": 3}  # fmt: skip
    expected = {"prompt_tokens": 100, "completion_tokens": 8,
                "prompt_tokens_details": {"cached_tokens": 60}}  # fmt: skip
    early = {"usageMetadata": {"promptTokenCount": 100}}
    last = {"usageMetadata": metadata}
    assert usage_of(json.dumps(last).encode()) == expected
    sse = f"data: {json.dumps(early)}\r\n\r\ndata: {json.dumps(last)}\r\n\r\n".encode()
    assert usage_of(sse) == expected
    assert usage_of(json.dumps([early, last], indent=2).encode()) == expected
    assert usage_of(b'[{"usageMetadata": {"promptTokenCount": 1}}\n,\r\n{"cand') is None
    assert usage_of(b'{"error": {"code": 429}}') is None
