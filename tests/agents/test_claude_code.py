"""The real Claude Code CLI, headless (`claude -p`), through the proxy to a fake Anthropic
API that keeps a prompt cache: the session completes, the forwarded prefix stays put turn by
turn, a big tool output is compressed and retrievable, and when nothing is compressed the
cache reads are exactly those of the same session going direct.

The CLI comes from the npm registry (`tests/agents/package.json`, installed by
`scripts/test`). Each session is the same script: the model runs `cat build.log` with Bash,
reads `notes.md` with Read, then answers. Sessions share one workspace path so that their
prompts (which name the working directory) have equal length, and each gets a fresh home.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from headroom import markers
from headroom.config import Settings
from headroom.proxy import create_app
from headroom.store import open_store
from tests.agents.fake_cached_anthropic import CachedFake, Exchange, Script
from tests.agents.prompt_cache import prompt_blocks, without_cache_control
from tests.proxy.conftest import serve, stop

pytestmark = pytest.mark.integration

CLAUDE = Path(__file__).resolve().parent / "node_modules" / ".bin" / "claude"
MODEL = "claude-sonnet-4-6"
PROMPT = "What failed in build.log?"
ANSWER = "Batch 1234 failed: the disk quota was exceeded."
ERROR_LINE = "2025-01-05T10:34:00Z ERROR worker-3 batch 1234 failed: disk quota exceeded"
RUN_TIMEOUT = 60.0
"""Seconds one `claude -p` run may take (about one when all is well): a hang fails."""
PERSISTED_OVER_CHARS = 30_000
"""Claude Code saves a Bash output longer than this to a file and sends a 2 KB preview."""


def build_log(lines: int) -> str:
    """A build log of `lines` INFO lines with one ERROR line among them."""
    rows = [
        f"2025-01-0{1 + i % 9}T10:{i % 60:02d}:00Z INFO worker-{i % 7} processed batch {i}"
        for i in range(lines)
    ]
    rows[min(34, lines - 1)] = ERROR_LINE
    return "\n".join(rows) + "\n"


LOG_400 = build_log(400)


@dataclass
class Session:
    """One finished `claude -p` run: what the upstream received, what the CLI printed, and
    the proxy's URL while it still serves (None for a session that went direct)."""

    fake: CachedFake
    result: dict[str, Any]
    proxy_url: str | None


@contextmanager
def claude_session(workspace: Path, log: str, proxied: bool) -> Iterator[Session]:
    """Runs the scripted session against a new fake upstream, through a proxy (its store in
    memory) or straight to the fake; the servers stop when the block ends."""
    project, home = workspace / "project", workspace / "home"
    shutil.rmtree(workspace, ignore_errors=True)
    project.mkdir(parents=True)
    home.mkdir()
    (project / "build.log").write_text(log)
    (project / "notes.md").write_text("# Notes\n\nThe build runs nightly.\n")
    script = Script(
        tool_calls=[
            ("Bash", {"command": "cat build.log", "description": "Show the build log"}),
            ("Read", {"file_path": str(project / "notes.md")}),
        ],
        answer=ANSWER,
    )
    fake = CachedFake(script)
    servers = [serve(fake.app())]
    try:
        if proxied:
            settings = Settings(store="memory://", anthropic_url=servers[0].url)
            servers.append(serve(create_app(settings, store=open_store("memory://"))))
        url = servers[-1].url
        yield Session(fake, run_claude(project, home, url), url if proxied else None)
    finally:
        for served in reversed(servers):
            stop(served)


def run_claude(project: Path, home: Path, base_url: str) -> dict[str, Any]:
    """`claude -p` in the project against base_url; its JSON result."""
    # A clean environment: the caller's own Claude Code or API variables stay out.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "sk-ant-api03-fake-key-for-tests",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    # bypassPermissions is refused when running as root (as CI does); allowing the two
    # tools the script calls works for any user.
    command = [str(CLAUDE), "-p", PROMPT, "--output-format", "json", "--model", MODEL]
    command += ["--allowedTools", "Bash", "Read"]
    done = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    assert done.returncode == 0, f"claude exited {done.returncode}: {done.stderr or done.stdout}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not CLAUDE.exists():
        pytest.fail(
            f"Claude Code is not installed at {CLAUDE}: run "
            "`npm ci --prefix tests/agents --no-audit --no-fund` (scripts/test does)"
        )
    return tmp_path_factory.mktemp("claude") / "workspace"


@pytest.fixture(scope="module")
def compressed(workspace: Path) -> Iterator[Session]:
    """A session through the proxy whose 400-line log (inline: under Claude Code's own
    limit) is compressed; the proxy serves its store until the module's tests are done."""
    assert len(LOG_400) < PERSISTED_OVER_CHARS
    with claude_session(workspace, LOG_400, proxied=True) as session:
        yield session


@pytest.fixture(scope="module")
def compressed_direct(workspace: Path, compressed: Session) -> Session:
    """The compressed session's script straight to the fake: the bill without headroom."""
    with claude_session(workspace, LOG_400, proxied=False) as direct:
        pass
    return direct


@pytest.fixture(scope="module")
def small(workspace: Path) -> tuple[Session, Session]:
    """The same session with a 3-line log (too small to compress): direct, then proxied."""
    log = build_log(3)
    with claude_session(workspace, log, proxied=False) as direct:
        pass
    with claude_session(workspace, log, proxied=True) as proxied:
        pass
    return direct, proxied


def canonical(value: Any) -> str:
    """A forwarded value as bytes are compared across turns: markers set aside, keys in the
    order they were sent."""
    return json.dumps(without_cache_control(value), ensure_ascii=False)


def tool_result(exchange: Exchange, call_id: str) -> str:
    """The text of the tool result for call_id in a request."""
    for message in exchange.body["messages"]:
        for block in message["content"] if isinstance(message["content"], list) else []:
            if block.get("type") == "tool_result" and block["tool_use_id"] == call_id:
                content = block["content"]
                return (
                    content
                    if isinstance(content, str)
                    else "".join(part.get("text", "") for part in content)
                )
    raise AssertionError(f"no tool result for {call_id} in the request")


def usage_of(session: Session, field: str) -> list[int]:
    """One usage field of each of the session's conversation requests, in order."""
    found = [e.usage for e in session.fake.conversations()]
    assert all(found), "a conversation request was answered without usage"
    return [int(usage[field]) for usage in found if usage]


def test_claude_code_session_completes_through_the_proxy(compressed: Session) -> None:
    assert compressed.result["is_error"] is False
    assert compressed.result["result"] == ANSWER
    assert compressed.result["num_turns"] == 3
    assert len(compressed.fake.conversations()) == 3


def test_forwarded_prefix_is_byte_identical_turn_by_turn(compressed: Session) -> None:
    turns = compressed.fake.conversations()
    for earlier, later in pairwise(turns):
        before, after = earlier.body, later.body
        assert canonical(after["tools"]) == canonical(before["tools"])
        assert canonical(after["system"]) == canonical(before["system"])
        sent = before["messages"]
        assert len(after["messages"]) > len(sent)
        assert canonical(after["messages"][: len(sent)]) == canonical(sent)


def test_every_turn_after_the_first_reads_the_whole_previous_request_from_cache(
    compressed: Session,
) -> None:
    fields = ("cache_read_input_tokens", "cache_creation_input_tokens", "input_tokens")
    sent = [sum(turn) for turn in zip(*(usage_of(compressed, f) for f in fields), strict=True)]
    reads = usage_of(compressed, "cache_read_input_tokens")
    assert reads[1:] == sent[:-1]


def test_big_tool_output_is_compressed_and_retrievable_exactly(compressed: Session) -> None:
    forwarded = tool_result(compressed.fake.conversations()[1], "toolu_fake0001")
    key = markers.header_key(forwarded)
    assert key is not None, f"no headroom marker in what the upstream received: {forwarded!r}"
    assert len(forwarded) < len(LOG_400) // 10
    assert ERROR_LINE in forwarded
    answer = httpx.get(f"{compressed.proxy_url}/v1/retrieve/{key}", timeout=10)
    assert answer.status_code == 200
    original = answer.json()["content"]
    # Claude Code sends the command's output, then its own reminder after a blank line.
    assert original.startswith(LOG_400.rstrip("\n") + "\n\n<system-reminder>")


def test_cache_use_is_going_directs_plus_the_retrieve_tool_when_nothing_is_compressed(
    small: tuple[Session, Session],
) -> None:
    direct, proxied = (s.fake.conversations() for s in small)
    assert len(direct) == len(proxied) == 3
    for call_id in ("toolu_fake0001", "toolu_fake0002"):
        assert markers.header_key(tool_result(proxied[-1], call_id)) is None
    # The proxy's one addition is the headroom_retrieve tool, last in the tools: its tokens are
    # written once with the first request's prefix and read on every later one; nothing else
    # of the session costs or misses differently.
    (added,) = prompt_blocks({"tools": proxied[0].body["tools"][-1:]})
    reads = [usage_of(s, "cache_read_input_tokens") for s in small]
    writes = [usage_of(s, "cache_creation_input_tokens") for s in small]
    assert usage_of(small[1], "input_tokens") == usage_of(small[0], "input_tokens")
    for turn, (read, write) in enumerate(zip(reads[0], writes[0], strict=True)):
        extra = (added.tokens, 0) if read else (0, added.tokens)
        assert (reads[1][turn], writes[1][turn]) == (read + extra[0], write + extra[1]), turn
    assert sum(reads[0][1:]) > 0


def test_claude_codes_headers_reach_the_upstream(small: tuple[Session, Session]) -> None:
    direct, proxied = (s.fake.conversations()[0].headers for s in small)
    per_connection = {"host", "content-length", "x-claude-code-session-id", "accept-encoding"}
    assert proxied["accept-encoding"] == "identity"  # so the proxy can read usage
    assert proxied.keys() == direct.keys()
    assert {k: v for k, v in proxied.items() if k not in per_connection} == {
        k: v for k, v in direct.items() if k not in per_connection
    }
    assert proxied["x-claude-code-session-id"] == small[1].result["session_id"]


def test_claude_codes_tools_reach_the_upstream_byte_for_byte_then_headroom_retrieve(
    small: tuple[Session, Session],
) -> None:
    direct, proxied = (s.fake.conversations()[0].body["tools"] for s in small)
    assert json.dumps(proxied[:-1]) == json.dumps(direct)
    assert proxied[-1]["name"] == "headroom_retrieve"


def test_claude_codes_pointer_to_a_persisted_output_reaches_the_upstream(
    workspace: Path,
) -> None:
    log = build_log(3000)
    assert len(log) > PERSISTED_OVER_CHARS
    with claude_session(workspace, log, proxied=True) as session:
        pass
    forwarded = tool_result(session.fake.conversations()[1], "toolu_fake0001")
    assert "Full output saved to: " in forwarded


def test_ledger_baseline_is_the_bill_of_the_same_session_going_direct(
    compressed: Session, compressed_direct: Session
) -> None:
    session = compressed.result["session_id"]
    for _ in range(100):  # the last turn is accounted after its answer has been sent
        stats = httpx.get(f"{compressed.proxy_url}/stats", timeout=10).json()
        if stats["sessions"].get(session, {}).get("turns") == 3:
            break
    baseline = stats["sessions"][session]["models"][MODEL]["baseline"]
    direct_reads = sum(usage_of(compressed_direct, "cache_read_input_tokens"))
    direct_writes = sum(usage_of(compressed_direct, "cache_creation_input_tokens"))
    assert baseline["read"] == pytest.approx(direct_reads, rel=0.1)
    assert baseline["write_5m"] == pytest.approx(direct_writes, rel=0.1)
