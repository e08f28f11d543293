"""The rig of the retrieve-in-the-loop tests: the fake Anthropic and OpenAI APIs and a proxy
in front of them, one session per test, and agent loops driven by the real SDKs.

The fakes' `retrieve-` models (tests/proxy/retrieving_model.py) call the tool when a tool
result carries a marker. Tests get the rig from the `rig` fixture (tests/proxy/conftest.py).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anthropic
import openai

from headroom.config import Settings
from headroom.conversation.accounts import load_ledger
from headroom.conversation.ledger import SessionStats
from headroom.conversation.prefix import without_cache_control
from headroom.proxy import create_app
from headroom.store import open_store
from headroom.store.base import Store
from tests.proxy.conftest import Served, serve, stop
from tests.proxy.fake_anthropic import Fake, Received
from tests.proxy.fake_openai import FakeOpenAI
from tests.proxy.retrieving_model import RETRIEVE
from tests.proxy.test_anthropic import TOOL, grep_def
from tests.proxy.test_openai import TOOL as OPENAI_BASH

QUESTIONS = ("Where are the parsers defined?", "And the email ones?")


@dataclass
class Servers:
    """The fake APIs and the proxy in front of them, shared by a module's tests."""

    fake_claude: Fake
    fake_gpt: FakeOpenAI
    proxy: str
    store: Store


@dataclass
class Rig:
    """One test's view: its own session (`x-headroom-session-id`) and SDK clients."""

    servers: Servers
    session: str
    claude: anthropic.Anthropic
    gpt: openai.OpenAI

    @property
    def fake_claude(self) -> Fake:
        return self.servers.fake_claude

    @property
    def fake_gpt(self) -> FakeOpenAI:
        return self.servers.fake_gpt

    @property
    def proxy(self) -> str:
        return self.servers.proxy

    def headers(self) -> dict[str, str]:
        return {"x-headroom-session-id": self.session}

    def ledger(self, turns: int) -> SessionStats:
        """The session in the ledger once it has `turns` turns (accounting runs after the
        answer)."""
        for _ in range(100):
            stats = load_ledger(self.servers.store).sessions()
            found = [s for s in stats if s.session == self.session]
            if found and found[0].turns >= turns:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"the ledger never recorded {turns} turns of {self.session}")


@contextmanager
def running() -> Iterator[Servers]:
    """The fakes and the proxy, served on loopback while the block runs."""
    fakes = Fake(), FakeOpenAI()
    upstreams = [serve(fakes[0].app()), serve(fakes[1].app())]
    store = open_store("memory://")
    settings = Settings(
        store="memory://", anthropic_url=upstreams[0].url, openai_url=f"{upstreams[1].url}/v1"
    )
    served: list[Served] = [serve(create_app(settings, store=store)), *upstreams]
    try:
        yield Servers(fakes[0], fakes[1], served[0].url, store)
    finally:
        for server in served:
            stop(server)


@contextmanager
def rig_for(servers: Servers, session: str) -> Iterator[Rig]:
    """SDK clients naming `session`, the fakes' records cleared."""
    servers.fake_claude.received.clear()
    servers.fake_gpt.received.clear()
    headers = {"x-headroom-session-id": session}
    claude = anthropic.Anthropic(
        base_url=servers.proxy, api_key="test", max_retries=0, default_headers=headers
    )
    gpt = openai.OpenAI(
        base_url=f"{servers.proxy}/v1", api_key="sk-test", max_retries=0, default_headers=headers
    )
    with claude, gpt:
        yield Rig(servers, session, claude, gpt)


def run_tool(command: str) -> str:
    return grep_def(command.split()[-1])


def claude_turn(rig: Rig, model: str, messages: list[Any], stream: bool, **extra: Any) -> Any:
    arguments: Any = {"model": model, "max_tokens": 100, "messages": messages, "tools": [TOOL]}
    arguments |= extra
    if not stream:
        return rig.claude.messages.create(**arguments)
    with rig.claude.messages.stream(**arguments) as events:
        return events.get_final_message()


def claude_session(rig: Rig, model: str, stream: bool) -> list[Any]:
    """An agent loop: each question asked, each Bash call run, until the model is done."""
    messages: list[Any] = [{"role": "user", "content": QUESTIONS[0]}]
    replies = []
    questions = iter(QUESTIONS[1:])
    for _ in range(8):
        reply = claude_turn(rig, model, messages, stream)
        replies.append(reply)
        messages.append({"role": "assistant", "content": [b.model_dump() for b in reply.content]})
        calls = [b for b in reply.content if b.type == "tool_use"]
        if calls:
            results = [
                {
                    "type": "tool_result",
                    "tool_use_id": c.id,
                    "content": run_tool(c.input["command"]),
                }
                for c in calls
            ]
            messages.append({"role": "user", "content": results})
        elif (question := next(questions, None)) is not None:
            messages.append({"role": "user", "content": question})
        else:
            return replies
    raise AssertionError("the session never ended")


def gpt_turn(rig: Rig, model: str, messages: list[Any], stream: bool) -> Any:
    arguments: Any = {"model": model, "messages": messages, "tools": [OPENAI_BASH]}
    if not stream:
        return rig.gpt.chat.completions.create(**arguments)
    options: Any = {"include_usage": True}
    with rig.gpt.chat.completions.stream(**arguments, stream_options=options) as chunks:
        return chunks.get_final_completion()


def gpt_session(rig: Rig, model: str, stream: bool) -> list[Any]:
    """The OpenAI agent loop, with a system message."""
    messages: list[Any] = [
        {"role": "system", "content": "You are a careful engineer."},
        {"role": "user", "content": QUESTIONS[0]},
    ]
    replies = []
    questions = iter(QUESTIONS[1:])
    for _ in range(8):
        reply = gpt_turn(rig, model, messages, stream)
        replies.append(reply)
        message = reply.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls or []:
            output = run_tool(json.loads(call.function.arguments)["command"])
            messages.append({"role": "tool", "tool_call_id": call.id, "content": output})
        if message.tool_calls:
            continue
        if (question := next(questions, None)) is None:
            return replies
        messages.append({"role": "user", "content": question})
    raise AssertionError("the session never ended")


def tool_conversation() -> list[Any]:
    """A question, a Bash call and its long result: the next answer retrieves."""
    call = {"type": "tool_use", "id": "toolu_0000", "name": "Bash", "input": {"command": "ls"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_0000", "content": grep_def("json")}
    return [
        {"role": "user", "content": QUESTIONS[0]},
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": [result]},
    ]


def gpt_tool_conversation() -> list[Any]:
    """`tool_conversation` in Chat Completions' shape."""
    call = {"id": "call_0000", "type": "function", "function": {"name": "Bash", "arguments": "{}"}}
    return [
        {"role": "user", "content": QUESTIONS[0]},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_0000", "content": grep_def("json")},
    ]


def texts(reply: Any) -> list[str]:
    return [block.text for block in reply.content if block.type == "text"]


def result_text(content: Any) -> str:
    return content if isinstance(content, str) else content[0]["text"]


def elided_line(compressed: str, original: str) -> str:
    """The line the fake model asks for, the original's last, which compression dropped."""
    line = original.split("\n")[-1]
    assert compressed.startswith("[headroom ") and line not in compressed
    return line


def assert_prefixes_stable(received: list[Received]) -> None:
    """Each forwarded request starts with every message of the one before (cache_control
    set aside): the provider's cache sees one growing prefix."""
    turns = [[json.dumps(without_cache_control(m)) for m in r.body["messages"]] for r in received]
    for before, after in itertools.pairwise(turns):
        assert after[: len(before)] == before


def tools_bytes(received: list[Received], name_of: Any) -> set[str]:
    return {
        json.dumps(without_cache_control(tool))
        for r in received
        for tool in r.body["tools"]
        if name_of(tool) == RETRIEVE
    }
