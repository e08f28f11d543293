"""`headroom mcp`: serve headroom's MCP tools over stdio, or add them to (and remove them
from) a coding agent's config with `headroom mcp install|uninstall --agent AGENT`."""

from __future__ import annotations

import os
from pathlib import Path

import click

from headroom import mcp_install
from headroom.config import Settings

_AGENT = click.option(
    "--agent",
    type=click.Choice(list(mcp_install.AGENTS)),
    required=True,
    help="The coding agent whose config to edit.",
)


@click.group("mcp", invoke_without_command=True)
@click.pass_context
def mcp(context: click.Context) -> None:
    """Serve headroom's MCP tools over stdio (what an agent's config starts)."""
    if context.invoked_subcommand is None:
        from headroom.mcp_server import serve  # the MCP SDK loads only to serve

        serve(Settings.from_env())


@mcp.command()
@_AGENT
def install(agent: str) -> None:
    """Add the headroom MCP server to the agent's user-level config."""
    path = mcp_install.config_file(agent, Path.home(), os.environ)
    change = mcp_install.install(agent, path, mcp_install.launcher())
    click.echo(f"headroom: {change.describe()}")


@mcp.command()
@_AGENT
def uninstall(agent: str) -> None:
    """Remove the headroom MCP server that install added."""
    change = mcp_install.uninstall(agent, mcp_install.config_file(agent, Path.home(), os.environ))
    click.echo(f"headroom: {change.describe()}")
