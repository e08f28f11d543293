"""One real `headroom mcp` server per test module, spawned over stdio and driven by the MCP
SDK's own client (`stdio_client` and `ClientSession`), from synchronous tests through an
anyio blocking portal."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from mcp import ClientSession, StdioServerParameters, stdio_client, types


@dataclass
class McpClient:
    """A connected client session and the store its server uses."""

    portal: BlockingPortal
    session: ClientSession
    store_url: str
    workdir: Path

    def tools(self) -> list[types.Tool]:
        return self.portal.call(self.session.list_tools).tools

    def call(self, name: str, **arguments: Any) -> types.CallToolResult:
        result = self.portal.call(partial(self.session.call_tool, name, arguments))
        assert isinstance(result, types.CallToolResult)
        return result

    def text(self, name: str, **arguments: Any) -> str:
        """The text of a call that must succeed."""
        result = self.call(name, **arguments)
        assert not result.is_error, result.content
        return text_of(result)


def text_of(result: types.CallToolResult) -> str:
    (block,) = result.content
    assert isinstance(block, types.TextContent)
    return block.text


@pytest.fixture(scope="module")
def mcp_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpClient]:
    workdir = tmp_path_factory.mktemp("mcp")
    store_url = f"sqlite:///{workdir / 'store.db'}"
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "headroom.cli", "mcp"],
        env={"HEADROOM_STORE": store_url, "HEADROOM_HOME": str(workdir / "home")},
        cwd=workdir,
    )
    with (
        open(workdir / "server.log", "w") as errlog,
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(stdio_client(params, errlog)) as (read, write),
        portal.wrap_async_context_manager(ClientSession(read, write)) as session,
    ):
        portal.call(session.initialize)
        yield McpClient(portal, session, store_url, workdir)
