"""`headroom mcp` over stdio, driven by the MCP SDK's own client: the tools and their schemas,
compressed reads and command outputs whose markers redeem exactly, errors as tool errors, and
a store shared with other processes."""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from mcp import MCPError

from headroom import markers
from headroom.api import retrieve
from headroom.config import Settings
from headroom.conversation.accounts import load_ledger
from headroom.pipeline import Request, compress_payload
from headroom.router import Hints
from headroom.store import SQLiteStore, open_store
from tests.mcp.conftest import McpClient, text_of

pytestmark = pytest.mark.integration

SOURCE = Path(argparse.__file__)


def numbered(path: Path) -> list[str]:
    """The file's lines as Claude Code's Read shows them."""
    lines = path.read_text().split("\n")
    if lines[-1] == "":
        lines.pop()
    return [f"{number:>6}→{line}" for number, line in enumerate(lines, 1)]


def test_lists_its_five_tools_with_strict_schemas(mcp_client: McpClient) -> None:
    tools = {tool.name: tool for tool in mcp_client.tools()}
    required = {name: tool.input_schema["required"] for name, tool in tools.items()}
    assert required == {
        "headroom_read": ["path"],
        "headroom_run": ["command"],
        "headroom_retrieve": ["key"],
        "headroom_compress": ["content"],
        "headroom_stats": [],
    }
    for tool in tools.values():
        assert tool.input_schema["type"] == "object"
        assert tool.input_schema["additionalProperties"] is False
        assert tool.description and len(tool.description) < 250
    assert set(tools["headroom_run"].input_schema["properties"]) == {"command", "cwd", "timeout"}
    assert "headroom_retrieve" in (tools["headroom_read"].description or "")


def test_a_large_file_reads_compressed_and_its_markers_redeem_exactly(
    mcp_client: McpClient,
) -> None:
    shown = mcp_client.text("headroom_read", path=str(SOURCE))
    original = numbered(SOURCE)
    key = markers.header_key(shown)
    assert key is not None
    assert len(shown) * 2 < len("\n".join(original))
    assert "     1→" in shown
    assert mcp_client.text("headroom_retrieve", key=key) == "\n".join(original)
    elided = next(one for one in markers.parse(shown) if one.first_line is not None)
    span = f"{elided.first_line}-{elided.last_line}"
    part = mcp_client.text("headroom_retrieve", key=key, lines=span)
    assert part.split("\n") == original[elided.first_line - 1 : elided.last_line]
    grep = mcp_client.text("headroom_retrieve", key=key, grep="^ +1→")
    assert grep == f"1:{original[0]}"


def test_a_file_read_twice_gives_the_same_bytes(mcp_client: McpClient) -> None:
    first = mcp_client.text("headroom_read", path=str(SOURCE))
    assert mcp_client.text("headroom_read", path=str(SOURCE)) == first


def test_a_small_line_range_comes_back_whole_with_its_own_numbers(
    mcp_client: McpClient,
) -> None:
    shown = mcp_client.text("headroom_read", path=str(SOURCE), lines="120-140")
    assert shown.split("\n") == numbered(SOURCE)[119:140]


def test_a_relative_path_reads_from_the_server_directory(mcp_client: McpClient) -> None:
    (mcp_client.workdir / "notes.txt").write_text("alpha\nbeta\ngamma\n")
    shown = mcp_client.text("headroom_read", path="notes.txt")
    assert shown == "     1→alpha\n     2→beta\n     3→gamma"


def test_a_command_gives_its_exit_code_and_its_output_compressed(
    mcp_client: McpClient,
) -> None:
    command = "seq 1 5000; echo 'FATAL: disk full' >&2; exit 3"
    shown = mcp_client.text("headroom_run", command=command)
    assert shown.endswith("\n[exit code 3]")
    assert "FATAL: disk full" in shown
    key = markers.header_key(shown)
    assert key is not None
    expected = "\n".join(str(n) for n in range(1, 5001)) + "\nFATAL: disk full"
    assert mcp_client.text("headroom_retrieve", key=key) == expected


def test_a_short_output_comes_back_as_the_terminal_shows_it(mcp_client: McpClient) -> None:
    shown = mcp_client.text("headroom_run", command="echo out; echo err >&2; echo again")
    assert shown == "out\nerr\nagain\n[exit code 0]"
    silent = mcp_client.text("headroom_run", command="true", cwd=str(mcp_client.workdir))
    assert silent == "(no output)\n[exit code 0]"


def test_a_command_runs_in_the_directory_asked_for(mcp_client: McpClient, tmp_path: Path) -> None:
    shown = mcp_client.text("headroom_run", command="pwd", cwd=str(tmp_path))
    assert shown == f"{tmp_path}\n[exit code 0]"


def test_a_timeout_kills_the_whole_process_group_and_says_so(
    mcp_client: McpClient, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    command = f"echo started; sleep 60 & echo $! > {pid_file}; wait"
    began = time.monotonic()
    result = mcp_client.call("headroom_run", command=command, timeout=1)
    assert time.monotonic() - began < 15
    assert result.is_error
    shown = text_of(result)
    assert shown.startswith("started\n[timed out after 1 s")
    child = Path(f"/proc/{pid_file.read_text().strip()}/status")
    # The killed grandchild is gone, or a zombie waiting for init to reap it.
    assert not child.exists() or "\nState:\tZ" in child.read_text()


def test_a_background_child_holding_the_output_does_not_hold_the_call(
    mcp_client: McpClient, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    command = f"echo started; sleep 30 & echo $! > {pid_file}"
    began = time.monotonic()
    shown = mcp_client.text("headroom_run", command=command, timeout=20)
    took = time.monotonic() - began
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert took < 10
    assert shown.startswith("started\n") and shown.endswith("\n[exit code 0]")
    assert "background processes it started still hold its output" in shown


def test_a_device_or_fifo_is_refused_without_reading_it(
    mcp_client: McpClient, tmp_path: Path
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path in ("/dev/zero", str(fifo)):
        result = mcp_client.call("headroom_read", path=path)
        assert result.is_error
        assert f"{path} is not a regular file" in text_of(result)


@pytest.mark.parametrize(
    ("tool", "arguments", "says"),
    [
        ("headroom_read", {"path": "/no/such/file.py"}, "no file at /no/such/file.py"),
        ("headroom_read", {"path": "/tmp"}, "/tmp is a directory"),
        ("headroom_read", {"path": "/bin/sh"}, "is a binary file"),
        ("headroom_read", {"path": "/etc/hostname/x"}, "cannot read /etc/hostname/x"),
        ("headroom_read", {"path": str(SOURCE), "lines": "9000-9010"}, "past the end of"),
        ("headroom_read", {"path": str(SOURCE), "lines": "ten"}, "is not a range"),
        ("headroom_read", {"path": str(SOURCE), "offset": 3}, "has no argument 'offset'"),
        ("headroom_read", {}, "needs the argument 'path'"),
        ("headroom_run", {"command": 5}, "command must be a string"),
        ("headroom_run", {"command": "true", "timeout": 601}, "timeout=601 is out of range"),
        ("headroom_run", {"command": "true", "cwd": "/no/such/dir"}, "is not a directory"),
        ("headroom_retrieve", {"key": "0123456789abcdef"}, "unknown to the store at"),
        ("headroom_retrieve", {"key": "not-a-key"}, "is not a headroom key"),
        ("headroom_compress", {"content": "x", "kind": "yaml"}, "kind='yaml' is not one of"),
    ],
)
def test_bad_calls_are_tool_errors_that_say_what_to_do(
    mcp_client: McpClient, tool: str, arguments: dict[str, Any], says: str
) -> None:
    result = mcp_client.call(tool, **arguments)
    assert result.is_error
    assert says in text_of(result)


def test_an_unknown_tool_is_a_protocol_error(mcp_client: McpClient) -> None:
    with pytest.raises(MCPError, match="no tool named 'headroom_write'"):
        mcp_client.call("headroom_write", path="x")


def test_an_expired_key_says_to_produce_the_content_again(mcp_client: McpClient) -> None:
    long_ago = SQLiteStore(mcp_client.store_url.removeprefix("sqlite:///"), clock=lambda: 1e9)
    key = long_ago.put("an original whose last use was in 2001")
    long_ago.close()
    result = mcp_client.call("headroom_retrieve", key=key)
    assert result.is_error
    assert f"key {key} has expired" in text_of(result)
    assert "re-run the command" in text_of(result)


def test_keys_are_shared_with_other_processes_using_the_store(mcp_client: McpClient) -> None:
    settings = Settings(store=mcp_client.store_url)
    shown = mcp_client.text("headroom_run", command="seq 1 4000")
    key = markers.header_key(shown)
    assert key is not None
    assert retrieve(key, lines="2-3", config=settings) == "2\n3"
    log = "\n".join(f"INFO request {n} served in {n % 17} ms" for n in range(3000))
    here = compress_payload(
        Request(log, Hints(command="tail app.log")), open_store(settings.store_url()), settings
    )
    assert mcp_client.text("headroom_retrieve", key=here.keys[0]) == log


def test_compress_and_retrieve_are_counted_in_the_ledger_stats_shows(
    mcp_client: McpClient,
) -> None:
    rows = [{"id": n, "name": f"user{n}", "active": n % 3 == 0} for n in range(400)]
    content = json.dumps(rows, indent=2)
    shown = mcp_client.text("headroom_compress", content=content, kind="json", query="user7")
    key = markers.header_key(shown)
    assert key is not None
    assert json.loads(mcp_client.text("headroom_retrieve", key=key)) == rows
    ledger = load_ledger(open_store(mcp_client.store_url))
    (mcp,) = (one for one in ledger.sessions() if one.session == "mcp")
    json_kind = next(kind for kind in mcp.kinds if kind.kind == "json")
    assert json_kind.compressed >= 1 and json_kind.retrieved >= 1
    stats = mcp_client.text("headroom_stats")
    assert stats.startswith(f"headroom store {mcp_client.store_url.removeprefix('sqlite:///')}:")
    assert "\nmcp " in stats and "\njson " in stats
