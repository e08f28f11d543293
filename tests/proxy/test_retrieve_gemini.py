"""Retrieve in the loop for Gemini: the proxy answers `headroom_retrieve` calls itself, the
client never sees them (generateContent, the `alt=sse` stream and the streamed JSON array),
and the next turn's request carries the hidden exchange at the same place.

Driven by the real `google-genai` SDK against the fake API (tests/proxy/fake_gemini.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from google.genai import types
from starlette.responses import StreamingResponse

from headroom import messages as conversation
from headroom.config import Settings
from headroom.proxy import create_app
from headroom.proxy.retrieve_gemini import GeminiStream, array_events
from headroom.proxy.retrieve_tool import GEMINI_TOOL
from headroom.proxy.sse import events
from headroom.store import open_store
from tests.proxy.conftest import serve, stop
from tests.proxy.fake_gemini import FakeGemini, retrieving_chunks, streamed
from tests.proxy.retrieve_rig import QUESTIONS, elided_line, run_tool
from tests.proxy.retrieving_model import LOOKING, RETRIEVE
from tests.proxy.test_anthropic import grep_def
from tests.proxy.test_gemini import KEY, RUN_SHELL, client, user

pytestmark = pytest.mark.integration

TOOLS: list[Any] = [types.Tool(function_declarations=[RUN_SHELL])]


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[FakeGemini, str]]:
    fake = FakeGemini()
    upstream = serve(fake.app())
    settings = Settings(store="memory://", gemini_url=upstream.url)
    proxy = serve(create_app(settings, store=open_store("memory://")))
    yield fake, proxy.url
    stop(proxy)
    stop(upstream)


@pytest.fixture
def fake(servers: tuple[FakeGemini, str]) -> FakeGemini:
    servers[0].reset()
    return servers[0]


@pytest.fixture
def sdk(servers: tuple[FakeGemini, str], request: pytest.FixtureRequest) -> Iterator[Any]:
    with client(servers[1], **{"x-headroom-session-id": request.node.name}) as sdk:
        yield sdk


def turn(sdk: Any, model: str, contents: list[Any], stream: bool) -> types.Content:
    """The model's content for one turn (a stream's chunks joined, as an agent keeps it)."""
    config = types.GenerateContentConfig(tools=TOOLS)
    if not stream:
        reply = sdk.models.generate_content(model=model, contents=contents, config=config)
        return types.Content.model_validate(reply.candidates[0].content)
    parts: list[types.Part] = []
    for chunk in sdk.models.generate_content_stream(model=model, contents=contents, config=config):
        parts += chunk.candidates[0].content.parts or []
    return types.Content(role="model", parts=parts)


def session(sdk: Any, model: str, stream: bool) -> list[types.Content]:
    """An agent loop: each question asked, each call run, until the model is done."""
    contents: list[Any] = [user(QUESTIONS[0])]
    replies, questions = [], iter(QUESTIONS[1:])
    for _ in range(8):
        reply = turn(sdk, model, contents, stream)
        replies.append(reply)
        contents.append(reply)
        calls = [part.function_call for part in reply.parts or [] if part.function_call]
        if calls:
            contents.append(types.Content(role="user", parts=[
                types.Part.from_function_response(
                    name=str(call.name), response={"output": run_tool((call.args or {})["command"])}
                )
                for call in calls
            ]))  # fmt: skip
            continue
        question = next(questions, None)
        if question is None:
            return replies
        contents.append(user(question))
    raise AssertionError("the session never ended")


def text(content: types.Content) -> str:
    return "".join(part.text or "" for part in content.parts or [])


def response_output(content: dict[str, Any]) -> str:
    return str(content["parts"][0]["functionResponse"]["response"]["output"])


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_session_retrieves_unseen_and_carries_the_exchange_next_turn(
    fake: FakeGemini, sdk: Any, stream: bool
) -> None:
    replies = session(sdk, "retrieve-lines", stream)
    bodies = [r.body for r in fake.received]
    assert len(replies) == 4 and len(bodies) == 6  # two turns took a hidden hop each
    assert not [p for r in replies for p in r.parts or [] if RETRIEVE in str(p.function_call)]
    line = elided_line(response_output(bodies[1]["contents"][2]), grep_def("json"))
    assert text(replies[1]) == f"{LOOKING}Retrieved: {line}"
    call, result = bodies[2]["contents"][-2:]
    assert call["parts"][-1]["functionCall"]["name"] == RETRIEVE
    assert result["parts"][0]["functionResponse"] == {
        "name": RETRIEVE, "response": {"output": line}
    }  # fmt: skip
    # The next turn resends the one content it saw: the proxy forwards the whole exchange.
    spliced = bodies[3]["contents"][: len(bodies[2]["contents"]) + 1]
    assert spliced[:-1] == bodies[2]["contents"] and "Retrieved: " in json.dumps(spliced[-1])
    turns = [[json.dumps(c) for c in body["contents"]] for body in bodies]
    for before, after in itertools.pairwise(turns):
        assert after[: len(before)] == before
    assert {json.dumps(body["tools"][1:]) for body in bodies} == {json.dumps([GEMINI_TOOL])}
    assert all(
        body["tools"][0]["functionDeclarations"][0]["name"] == "run_shell" for body in bodies
    )


@pytest.mark.parametrize("alt", ["sse", None], ids=["sse", "json-array"])
def test_a_raw_stream_reads_as_one_answer_with_summed_usage(
    fake: FakeGemini, servers: tuple[FakeGemini, str], alt: str | None
) -> None:
    call = {"functionCall": {"name": "run_shell", "args": {"command": "grep -rn def json"}}}
    output = {"functionResponse": {"name": "run_shell", "response": {"output": grep_def("json")}}}
    contents = [
        {"role": "user", "parts": [{"text": QUESTIONS[0]}]},
        {"role": "model", "parts": [call]},
        {"role": "user", "parts": [output]},
    ]
    body = {"contents": contents, "tools": [{"functionDeclarations": [{"name": "run_shell"}]}]}
    url = f"{servers[1]}/v1beta/models/retrieve-silent:streamGenerateContent"
    query = {"alt": alt} if alt else {}
    raw = httpx.post(url, json=body, params=query, headers={"x-goog-api-key": KEY}, timeout=10)
    assert raw.status_code == 200 and RETRIEVE.encode() not in raw.content
    if alt:
        chunks = [
            json.loads(line[6:]) for line in raw.text.splitlines() if line.startswith("data: ")
        ]
    else:
        chunks = json.loads(raw.content)
    parts = [part for chunk in chunks for part in chunk["candidates"][0]["content"]["parts"]]
    line = grep_def("json").split("\n")[-1]
    assert "".join(part.get("text", "") for part in parts) == f"Retrieved: {line}"
    assert [c["candidates"][0].get("finishReason") for c in chunks][-1] == "STOP"
    assert len({c["responseId"] for c in chunks}) == 1
    prompts = [fake_prompt(r.body) for r in fake.received]
    assert len(prompts) == 2 and chunks[-1]["usageMetadata"]["promptTokenCount"] == sum(prompts)


def fake_prompt(body: dict[str, Any]) -> int:
    return (
        len(json.dumps((body.get("systemInstruction"), body.get("tools"), body["contents"]))) // 4
    )


def test_a_retrieve_beside_a_client_call_is_answered_in_call_order_next_turn(
    fake: FakeGemini, sdk: Any
) -> None:
    contents: list[Any] = [user(QUESTIONS[0])]
    first = turn(sdk, "retrieve-mixed", contents, stream=False)
    contents += [first, types.Content(role="user", parts=[types.Part.from_function_response(
        name="run_shell", response={"output": grep_def("json")})])]  # fmt: skip
    reply = turn(sdk, "retrieve-mixed", contents, stream=True)
    assert [p.function_call.name for p in reply.parts or [] if p.function_call] == ["Bash"]
    assert len(fake.received) == 2  # the client's result is needed to go on
    contents += [reply, types.Content(role="user", parts=[types.Part.from_function_response(
        name="Bash", response={"output": "no output"})])]  # fmt: skip
    final = turn(sdk, "retrieve-mixed", contents, stream=False)
    forwarded = fake.received[-1].body["contents"]
    names = [p["functionCall"]["name"] for p in forwarded[-2]["parts"] if "functionCall" in p]
    answers = [p["functionResponse"]["name"] for p in forwarded[-1]["parts"]]
    assert names == answers == [RETRIEVE, "Bash"]  # the fake refuses unmatched counts
    assert text(final) == f"Retrieved: {grep_def('json').split(chr(10))[-1]}"


def test_no_functions_declared_gets_no_tool(fake: FakeGemini, sdk: Any) -> None:
    sdk.models.generate_content(model="retrieve-lines", contents="hi")
    search = types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())])
    sdk.models.generate_content(model="retrieve-lines", contents="hi", config=search)
    assert "tools" not in fake.received[0].body
    assert fake.received[1].body["tools"] == [{"googleSearch": {}}]


def test_a_retrieve_response_is_never_a_payload_to_compress() -> None:
    for name in (RETRIEVE, f"mcp__headroom__{RETRIEVE}", "run_shell"):
        call = {"role": "model", "parts": [{"functionCall": {"name": name, "args": {}}}]}
        answer = {"functionResponse": {"name": name, "response": {"output": grep_def("json")}}}
        found = conversation.read([call, {"role": "user", "parts": [answer]}])
        assert len(found.payloads) == (1 if name == "run_shell" else 0)


@pytest.mark.parametrize("array", [False, True], ids=["sse", "json-array"])
def test_a_stream_without_a_retrieve_call_passes_as_it_came(array: bool) -> None:
    usage = {"promptTokenCount": 9, "candidatesTokenCount": 7, "totalTokenCount": 16}
    call = {"name": "run_shell", "args": {"command": "ls"}}
    parts: list[dict[str, Any]] = [{"text": "Done."}, {"functionCall": call}]
    chunks = retrieving_chunks("gemini-2.5-flash", parts, usage)

    async def run() -> tuple[bytes, bytes]:
        response = streamed(chunks, sse=not array)
        assert isinstance(response, StreamingResponse)
        raw = b""
        async for chunk in response.body_iterator:
            assert isinstance(chunk, bytes)
            raw += chunk

        async def one() -> AsyncIterator[bytes]:
            for index in range(0, len(raw), 7):  # in pieces that split elements and events
                yield raw[index : index + 7]

        relay = GeminiStream(array)
        framing = array_events if array else events
        client = b"".join([relay.feed(event) async for event in framing(one())])
        return raw, client + relay.tail()

    raw, client = asyncio.run(run())
    assert client == raw
