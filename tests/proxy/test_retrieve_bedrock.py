"""Retrieve in the loop for Bedrock's Anthropic models: the proxy answers `headroom_retrieve`
calls itself (each continuation re-signed), the client never sees them in invoke's JSON or
in invoke-with-response-stream's event-stream, and the next turn carries the hidden exchange.

Driven by the real `boto3` client, signing with credentials the fake Bedrock does not know,
against the fake (tests/proxy/fake_bedrock.py), which checks every signature.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, EventStreamError

from headroom.conversation.prefix import without_cache_control
from headroom.proxy.bedrock import stream_events
from headroom.proxy.retrieve_tool import ANTHROPIC_TOOL
from headroom.store import open_store
from tests.proxy import fake_bedrock
from tests.proxy.conftest import serve, stop
from tests.proxy.fake_bedrock import REGION, FakeBedrock
from tests.proxy.retrieve_rig import QUESTIONS, elided_line, result_text, run_tool
from tests.proxy.retrieving_model import LOOKING, RETRIEVE
from tests.proxy.test_anthropic import TOOL, grep_def
from tests.proxy.test_bedrock import claude, client, start_proxy

pytestmark = pytest.mark.integration

LINES = "us.anthropic.retrieve-lines-v1:0"
LIMITED = "us.anthropic.retrieve-limited-v1:0"
METRICS = "amazon-bedrock-invocationMetrics"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeBedrock, str]]:
    """The fake Bedrock and a proxy holding the credentials it knows (and no others)."""
    aws = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_CONFIG_FILE", str(aws / "config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(aws / "credentials"))
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        env.setenv("AWS_ACCESS_KEY_ID", fake_bedrock.ACCESS_KEY)
        env.setenv("AWS_SECRET_ACCESS_KEY", fake_bedrock.SECRET_KEY)
        env.setenv("AWS_SESSION_TOKEN", fake_bedrock.SESSION_TOKEN)
        fake = FakeBedrock()
        upstream = serve(fake.app())
        proxy = start_proxy(upstream.url, open_store("memory://"))
        yield fake, proxy.url
        stop(proxy)
        stop(upstream)


@pytest.fixture
def fake(servers: tuple[FakeBedrock, str]) -> FakeBedrock:
    servers[0].received.clear()
    return servers[0]


@pytest.fixture
def sdk(servers: tuple[FakeBedrock, str], request: pytest.FixtureRequest) -> Iterator[Any]:
    session = request.node.name

    def named(request: Any, **_: Any) -> None:
        request.headers["x-headroom-session-id"] = session

    bedrock = client(servers[1])
    bedrock.meta.events.register("before-sign.bedrock-runtime.*", named)
    yield bedrock
    bedrock.close()


def streamed(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The Message a stream's Anthropic events build, as an SDK accumulates it."""
    blocks: dict[int, dict[str, Any]] = {}
    inputs: dict[int, str] = {}
    answer: dict[str, Any] = {}
    for event in events:
        index = event.get("index", -1)
        if event["type"] == "message_start":
            answer = event["message"]
        elif event["type"] == "content_block_start":
            assert index == len(blocks)  # the client's blocks are numbered without gaps
            blocks[index] = dict(event["content_block"])
        elif event["type"] == "content_block_delta" and "text" in event["delta"]:
            blocks[index]["text"] += event["delta"]["text"]
        elif event["type"] == "content_block_delta":
            inputs[index] = inputs.get(index, "") + event["delta"]["partial_json"]
        elif event["type"] == "message_delta":
            answer = {**answer, **event["delta"], "usage": event["usage"]}
    for index, raw in inputs.items():
        blocks[index]["input"] = json.loads(raw)
    return {**answer, "content": [blocks[i] for i in sorted(blocks)]}


def turn(sdk: Any, model: str, messages: list[Any], stream: bool) -> dict[str, Any]:
    body = json.dumps(claude(messages, tools=[TOOL]))
    if not stream:
        return dict(json.loads(sdk.invoke_model(modelId=model, body=body)["body"].read()))
    reply = sdk.invoke_model_with_response_stream(modelId=model, body=body)
    events = [json.loads(event["chunk"]["bytes"]) for event in reply["body"]]
    return {**streamed(events), "events": events}


def session(sdk: Any, model: str, stream: bool) -> list[dict[str, Any]]:
    """An agent loop: each question asked, each Bash call run, until the model is done."""
    messages: list[Any] = [{"role": "user", "content": QUESTIONS[0]}]
    replies, questions = [], iter(QUESTIONS[1:])
    for _ in range(8):
        reply = turn(sdk, model, messages, stream)
        replies.append(reply)
        messages.append({"role": "assistant", "content": reply["content"]})
        calls = [block for block in reply["content"] if block["type"] == "tool_use"]
        if calls:
            messages.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": c["id"],
                 "content": run_tool(c["input"]["command"])} for c in calls
            ]})  # fmt: skip
            continue
        question = next(questions, None)
        if question is None:
            return replies
        messages.append({"role": "user", "content": question})
    raise AssertionError("the session never ended")


def texts(reply: dict[str, Any]) -> list[str]:
    return [block["text"] for block in reply["content"] if block["type"] == "text"]


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_a_session_retrieves_unseen_re_signed_and_carries_the_exchange_next_turn(
    fake: FakeBedrock, sdk: Any, stream: bool
) -> None:
    replies = session(sdk, LINES, stream)
    bodies = [r.body for r in fake.received]
    assert len(replies) == 4 and len(bodies) == 6  # two turns took a hidden hop each
    assert all(f"Credential={fake_bedrock.ACCESS_KEY}/" in r.headers["authorization"]
               for r in fake.received)  # fmt: skip
    assert RETRIEVE not in json.dumps([r["content"] for r in replies])
    compressed = result_text(bodies[1]["messages"][2]["content"][0]["content"])
    line = elided_line(compressed, grep_def("json"))
    assert texts(replies[1]) == [LOOKING, f"Retrieved: {line}"]
    assert [r["stop_reason"] for r in replies] == ["tool_use", "end_turn"] * 2
    call, result = bodies[2]["messages"][-2:]
    assert call["content"][1]["name"] == RETRIEVE and result["content"][0]["content"] == line
    spliced = bodies[3]["messages"][len(bodies[2]["messages"])]
    assert spliced["content"] == [{"type": "text", "text": f"Retrieved: {line}"}]
    turns = [[json.dumps(without_cache_control(m)) for m in body["messages"]] for body in bodies]
    for before, after in itertools.pairwise(turns):
        assert after[: len(before)] == before
    tools = {json.dumps(without_cache_control(body["tools"][-1])) for body in bodies}
    assert tools == {json.dumps(ANTHROPIC_TOOL)}
    prompts = [len(json.dumps(body["messages"])) // 4 for body in bodies[1:3]]
    assert replies[1]["usage"]["input_tokens"] == sum(prompts)
    if stream:
        metrics = replies[1]["events"][-1][METRICS]
        assert (metrics["inputTokenCount"], metrics["outputTokenCount"]) == (sum(prompts), 14)


def test_a_stream_without_a_retrieve_call_reaches_the_client_byte_for_byte(
    fake: FakeBedrock, servers: tuple[FakeBedrock, str]
) -> None:
    body = json.dumps(claude([{"role": "user", "content": QUESTIONS[0]}], tools=[TOOL]))
    path = f"/model/{LINES.replace(':', '%3A')}/invoke-with-response-stream"
    via_proxy = httpx.post(servers[1] + path, content=body, timeout=10)
    forwarded = fake.received.pop()  # the fake answers the same request the same way again
    assert forwarded.body["tools"][-1]["name"] == RETRIEVE  # offered, and not called
    url = f"http://{forwarded.headers['host']}{path}"
    signed = AWSRequest(method="POST", url=url, data=forwarded.raw)
    secret = Credentials(
        fake_bedrock.ACCESS_KEY, fake_bedrock.SECRET_KEY, fake_bedrock.SESSION_TOKEN
    )
    SigV4Auth(secret, "bedrock", REGION).add_auth(signed)
    direct = httpx.post(url, content=forwarded.raw, headers=dict(signed.headers), timeout=10)
    assert via_proxy.status_code == direct.status_code == 200
    assert via_proxy.content == direct.content
    assert streamed(stream_events(via_proxy.content))["stop_reason"] == "tool_use"


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_a_refused_continuation_reaches_the_client_as_bedrock_says_it(
    fake: FakeBedrock, sdk: Any, stream: bool
) -> None:
    messages: list[Any] = [{"role": "user", "content": QUESTIONS[0]}]
    first = turn(sdk, LIMITED, messages, stream=False)
    [call] = [block for block in first["content"] if block["type"] == "tool_use"]
    messages += [
        {"role": "assistant", "content": first["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"],
                                      "content": grep_def("json")}]},
    ]  # fmt: skip
    if not stream:
        with pytest.raises(ClientError) as refused:
            turn(sdk, LIMITED, messages, stream=False)
        assert refused.value.response["Error"]["Code"] == "ThrottlingException"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
        return
    body = json.dumps(claude(messages, tools=[TOOL]))
    reply = sdk.invoke_model_with_response_stream(modelId=LIMITED, body=body)
    seen = []
    with pytest.raises(EventStreamError) as ended, contextlib.closing(reply["body"]) as events:
        for event in events:
            seen.append(json.loads(event["chunk"]["bytes"]))
    assert ended.value.response["Error"]["Code"] == "throttlingException"
    assert ended.value.response["Error"]["Message"] == fake_bedrock.THROTTLED
    assert texts(streamed(seen)) == [LOOKING] and len(fake.received) == 3
