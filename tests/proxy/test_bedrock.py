"""The proxy in front of a fake Bedrock Runtime, driven by the real `boto3` client: the client
signs with credentials the fake does not know, so every answer proves the proxy re-signed."""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from click.testing import CliRunner

from headroom.cli.proxy import proxy_command, settings_with
from headroom.config import Settings
from headroom.conversation.accounts import load_ledger
from headroom.conversation.prefix import without_cache_control
from headroom.proxy import create_app
from headroom.proxy.bedrock import ledger_model, usage_of
from headroom.store import open_store
from headroom.store.base import Store
from tests.proxy import fake_bedrock
from tests.proxy.conftest import Served, serve, stop
from tests.proxy.fake_anthropic import ANSWER
from tests.proxy.fake_bedrock import REGION, FakeBedrock
from tests.proxy.test_anthropic import TOOL, grep_def, tool_conversation

MODEL_ID = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
MODEL = "claude-sonnet-4-5-20250929"
VERSION = "bedrock-2023-05-31"
MARKER = re.compile(r"\[headroom ([0-9a-f]{16}):")


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS setting of the machine reaches a test: no variables, no ~/.aws files, no
    instance metadata."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def proxy_credentials(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy's own credentials, the ones the fake Bedrock knows, in its environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", fake_bedrock.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", fake_bedrock.SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", fake_bedrock.SESSION_TOKEN)


@pytest.fixture
def bedrock() -> Iterator[tuple[FakeBedrock, str]]:
    upstream = FakeBedrock()
    served = serve(upstream.app())
    yield upstream, served.url
    upstream.release.set()
    stop(served)


@pytest.fixture
def store() -> Store:
    return open_store("memory://")


def start_proxy(bedrock_url: str, store: Store) -> Served:
    settings = Settings(store="memory://", bedrock_url=bedrock_url, bedrock_region=REGION)
    return serve(create_app(settings, store=store))


@pytest.fixture
def proxy(bedrock: tuple[FakeBedrock, str], store: Store, proxy_credentials: None) -> Iterator[str]:
    served = start_proxy(bedrock[1], store)
    yield served.url
    stop(served)


def client(proxy_url: str) -> Any:
    """boto3's Bedrock Runtime client, signing with the client's own (unknown) credentials."""
    return boto3.session.Session().client(
        "bedrock-runtime",
        endpoint_url=proxy_url,
        region_name=REGION,
        aws_access_key_id="AKIACLIENTSIDE000001",
        aws_secret_access_key="the-client-secret-the-fake-does-not-know",
        config=Config(retries={"total_max_attempts": 1}),
    )


def claude(messages: list[Any], **extra: Any) -> dict[str, Any]:
    return {"anthropic_version": VERSION, "max_tokens": 100, "messages": messages, **extra}


def hello() -> dict[str, Any]:
    return claude([{"role": "user", "content": "What is the answer?"}])


def invoke(sdk: Any, body: dict[str, Any], model_id: str = MODEL_ID) -> Any:
    reply = sdk.invoke_model(modelId=model_id, body=json.dumps(body))
    return json.loads(reply["body"].read())


def turns_recorded(store: Store, turns: int) -> dict[str, Any]:
    """The ledger's sessions once it has `turns` turns (accounting runs after the answer)."""
    for _ in range(100):
        if load_ledger(store).total().turns >= turns:
            return dict(load_ledger(store).to_dict()["sessions"])
        time.sleep(0.05)
    raise AssertionError(f"the ledger never recorded {turns} turns")


@pytest.mark.integration
def test_invoke_reaches_bedrock_re_signed_with_the_proxys_credentials(
    bedrock: tuple[FakeBedrock, str], proxy: str
) -> None:
    answer = invoke(client(proxy), hello())
    assert answer["content"][0]["text"] == ANSWER and answer["stop_reason"] == "end_turn"
    received = bedrock[0].received[-1]
    assert f"Credential={fake_bedrock.ACCESS_KEY}/" in received.headers["authorization"]
    assert received.headers["x-amz-security-token"] == fake_bedrock.SESSION_TOKEN
    assert received.path == "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"
    assert "model" not in received.body and received.body["anthropic_version"] == VERSION


@pytest.mark.integration
def test_the_clients_signature_headers_stop_at_the_proxy(
    store: Store, proxy_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_SESSION_TOKEN")  # the proxy signs with long-term credentials
    upstream = FakeBedrock(session_token=None)
    fake = serve(upstream.app())
    served = start_proxy(fake.url, store)
    sdk = boto3.session.Session().client(
        "bedrock-runtime",
        endpoint_url=served.url,
        region_name=REGION,
        aws_access_key_id="ASIACLIENTSIDE000001",
        aws_secret_access_key="the-client-secret-the-fake-does-not-know",
        aws_session_token="the-clients-own-session-token",
    )
    try:
        assert invoke(sdk, hello())["content"][0]["text"] == ANSWER
    finally:
        stop(served)
        stop(fake)
    headers = upstream.received[-1].headers
    assert "x-amz-security-token" not in headers
    assert headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={fake_bedrock.ACCESS_KEY}/"
    )


@pytest.mark.integration
def test_a_large_tool_result_is_compressed_and_its_original_retrievable(
    bedrock: tuple[FakeBedrock, str], proxy: str
) -> None:
    messages = tool_conversation()
    answer = invoke(client(proxy), claude(messages))
    assert answer["content"][0]["text"] == ANSWER
    forwarded = bedrock[0].received[-1].body["messages"][2]["content"][0]["content"]
    text = forwarded if isinstance(forwarded, str) else forwarded[0]["text"]
    original = messages[2]["content"][0]["content"]
    assert len(text) < len(original) // 2
    found = MARKER.match(text)
    assert found is not None
    retrieved = httpx.get(f"{proxy}/v1/retrieve/{found[1]}")
    assert retrieved.status_code == 200 and retrieved.json()["content"] == original
    metrics = httpx.get(f"{proxy}/metrics").text
    assert "headroom_compressed_payloads_total 1" in metrics


@pytest.mark.integration
def test_a_stream_reaches_the_client_as_sent_and_its_usage_is_accounted(
    bedrock: tuple[FakeBedrock, str], proxy: str, store: Store
) -> None:
    fake = bedrock[0]
    fake.hold = True
    reply = client(proxy).invoke_model_with_response_stream(
        modelId=MODEL_ID, body=json.dumps(hello())
    )
    events = (json.loads(event["chunk"]["bytes"]) for event in reply["body"])
    assert next(events)["type"] == "message_start"
    assert fake.streamed == ["message_start"]  # the rest waits until the first is delivered
    fake.release.set()
    rest = list(events)
    assert "".join(e["delta"]["text"] for e in rest if e["type"] == "content_block_delta") == ANSWER
    assert rest[-1]["type"] == "message_stop"
    sessions = turns_recorded(store, 1)
    (session,) = sessions.values()
    input_tokens = len(json.dumps(fake.received[-1].body["messages"])) // 4
    usage = session["models"][MODEL]["usage"]
    assert (usage["uncached"], usage["output"]) == (input_tokens, 7)
    assert session["simulated_turns"] == 0


@pytest.mark.integration
def test_an_agent_loop_keeps_the_forwarded_prefix_byte_identical(
    bedrock: tuple[FakeBedrock, str], proxy: str
) -> None:
    sdk = client(proxy)
    messages: list[Any] = [{"role": "user", "content": "Where are the parsers defined?"}]
    for _ in range(3):
        answer = invoke(sdk, claude(messages, tools=[TOOL]))
        messages.append({"role": "assistant", "content": answer["content"]})
        if answer["stop_reason"] != "tool_use":
            break
        call = answer["content"][0]
        output = grep_def(call["input"]["command"].split()[-1])
        block = {"type": "tool_result", "tool_use_id": call["id"], "content": output}
        messages.append({"role": "user", "content": [block]})
    assert answer["content"][0]["text"] == ANSWER
    turns = [
        [json.dumps(without_cache_control(m)) for m in r.body["messages"]]
        for r in bedrock[0].received
    ]
    assert len(turns) == 3
    for before, after in itertools.pairwise(turns):
        assert after[: len(before)] == before


@pytest.mark.integration
def test_another_vendors_body_reaches_bedrock_byte_for_byte(
    bedrock: tuple[FakeBedrock, str], proxy: str
) -> None:
    raw = b'{"prompt":  "What is the answer?",\n "max_gen_len": 64, "temperature": 0.5}'
    reply = client(proxy).invoke_model(modelId="meta.llama3-8b-instruct-v1:0", body=raw)
    assert json.loads(reply["body"].read())["generation"] == ANSWER
    assert bedrock[0].received[-1].raw == raw


@pytest.mark.integration
def test_converse_passes_through_re_signed(bedrock: tuple[FakeBedrock, str], proxy: str) -> None:
    content = [{"text": "What is the answer?"}]
    reply = client(proxy).converse(
        modelId=MODEL_ID, messages=[{"role": "user", "content": content}]
    )
    assert reply["output"]["message"]["content"] == [{"text": ANSWER}]
    received = bedrock[0].received[-1]
    assert (
        received.path.endswith("/converse") and received.body["messages"][0]["content"] == content
    )


@pytest.mark.integration
def test_an_inference_profile_arn_reaches_bedrock_as_the_client_encoded_it(
    bedrock: tuple[FakeBedrock, str], proxy: str
) -> None:
    arn = f"arn:aws:bedrock:{REGION}:123456789012:inference-profile/{MODEL_ID}"
    assert invoke(client(proxy), hello(), arn)["content"][0]["text"] == ANSWER
    assert bedrock[0].received[-1].path == f"/model/{quote(arn, safe='')}/invoke"


@pytest.mark.integration
def test_throttling_reaches_the_client_unchanged(
    bedrock: tuple[FakeBedrock, str], proxy: str
) -> None:
    with pytest.raises(ClientError) as caught:
        invoke(client(proxy), hello(), "us.anthropic.claude-throttled-v1:0")
    response = caught.value.response
    assert response["Error"]["Code"] == "ThrottlingException"
    assert response["Error"]["Message"] == fake_bedrock.THROTTLED
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert len(bedrock[0].received) == 1


@pytest.mark.integration
def test_a_malformed_claude_body_gets_a_validation_error_from_the_proxy(
    bedrock: tuple[FakeBedrock, str], proxy: str
) -> None:
    raw = b'{"anthropic_version": "bedrock-2023-05-31", "messages": ['
    with pytest.raises(ClientError) as caught:
        client(proxy).invoke_model(modelId=MODEL_ID, body=raw)
    response = caught.value.response
    assert response["Error"]["Code"] == "ValidationException"
    assert "not JSON" in response["Error"]["Message"]
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert bedrock[0].received == []


@pytest.mark.integration
def test_an_unreachable_bedrock_gets_a_502_naming_the_flag(
    store: Store, proxy_credentials: None
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    served = start_proxy(f"http://127.0.0.1:{port}", store)
    try:
        with pytest.raises(ClientError) as caught:
            invoke(client(served.url), hello())
    finally:
        stop(served)
    response = caught.value.response
    assert response["Error"]["Code"] == "ServiceUnavailableException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 502
    assert "--bedrock-url" in response["Error"]["Message"]


@pytest.mark.integration
def test_without_credentials_the_proxy_says_how_to_give_them_and_logs_it_once(
    bedrock: tuple[FakeBedrock, str],
    store: Store,
    aws_env: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    served = start_proxy(bedrock[1], store)
    caught = []
    try:
        for _ in range(2):
            with pytest.raises(ClientError) as error:
                invoke(client(served.url), hello())
            caught.append(error.value.response)
    finally:
        stop(served)
    assert caught[0] == caught[1]
    assert caught[0]["Error"]["Code"] == "AccessDeniedException"
    assert caught[0]["ResponseMetadata"]["HTTPStatusCode"] == 403
    message = caught[0]["Error"]["Message"]
    assert "headroom has no AWS credentials" in message and "AWS_ACCESS_KEY_ID" in message
    logged = [r.getMessage() for r in caplog.records if r.name == "headroom.proxy.bedrock"]
    assert logged == [message]
    assert bedrock[0].received == []


@pytest.mark.integration
def test_without_botocore_the_proxy_names_the_extra_to_install(
    bedrock: tuple[FakeBedrock, str],
    store: Store,
    proxy_credentials: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served = start_proxy(bedrock[1], store)
    for name in ("botocore.session", "botocore.exceptions"):
        monkeypatch.setitem(sys.modules, name, None)  # as if the extra were not installed
    try:
        reply = httpx.post(f"{served.url}/model/{MODEL_ID}/invoke", json=hello())
    finally:
        stop(served)
    assert reply.status_code == 500
    assert reply.headers["x-amzn-errortype"].startswith("InternalServerException:")
    assert "pip install 'headroom[bedrock]'" in reply.json()["message"]
    assert bedrock[0].received == []


@pytest.mark.parametrize(
    ("model_id", "model"),
    [
        (MODEL_ID, MODEL),
        ("anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku-20241022"),
        (
            "arn:aws:bedrock:us-east-1:1:inference-profile/global.anthropic.claude-opus-4-1-20250805-v1:0",
            "claude-opus-4-1-20250805",
        ),
        ("anthropic.claude-v2:1", "claude-v2:1"),
        ("meta.llama3-8b-instruct-v1:0", None),
        ("arn:aws:bedrock:us-east-1:1:application-inference-profile/a1b2c3d4", None),
    ],
)
def test_a_bedrock_model_id_names_the_model_as_the_price_table_does(
    model_id: str, model: str | None
) -> None:
    assert ledger_model(model_id) == model


def stream(events: list[dict[str, Any]]) -> bytes:
    return b"".join(fake_bedrock.chunk(event) for event in events)


def test_a_streams_usage_is_read_from_its_events() -> None:
    events = fake_bedrock.anthropic_events(MODEL, {"input_tokens": 12, "output_tokens": 7})
    usage = usage_of(stream(events))
    assert usage is not None and (usage["input_tokens"], usage["output_tokens"]) == (12, 7)


def test_a_stream_cut_short_yields_the_usage_sent_before_the_cut() -> None:
    events = fake_bedrock.anthropic_events(MODEL, {"input_tokens": 12, "output_tokens": 7})
    whole = stream(events)
    cut = whole[: len(stream(events[:1])) + 20]
    assert usage_of(cut) == events[0]["message"]["usage"]


def test_bedrocks_invocation_metrics_stand_in_for_missing_usage() -> None:
    metrics = {"inputTokenCount": 30, "outputTokenCount": 5, "invocationLatency": 9}
    answer = stream([{"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics}])
    assert usage_of(answer) == {"input_tokens": 30, "output_tokens": 5}


def test_the_bedrock_url_defaults_to_the_regions_runtime_endpoint(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings().bedrock_base_url() == "https://bedrock-runtime.us-east-1.amazonaws.com"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert Settings().bedrock_signing_region() == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    assert Settings().bedrock_base_url() == "https://bedrock-runtime.eu-central-1.amazonaws.com"
    monkeypatch.setenv("HEADROOM_BEDROCK_REGION", "ap-south-1")
    assert Settings.from_env().bedrock_signing_region() == "ap-south-1"
    flags = settings_with(bedrock_url="http://127.0.0.1:9/", bedrock_region="us-west-2")
    assert (flags.bedrock_base_url(), flags.bedrock_signing_region()) == (
        "http://127.0.0.1:9/",
        "us-west-2",
    )
    help_text = CliRunner().invoke(proxy_command, ["--help"]).output
    assert "--bedrock-url" in help_text and "--bedrock-region" in help_text
