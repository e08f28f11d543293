"""The `headroom` command group and its top level, where HeadroomError becomes a one-line
message and a non-zero exit."""

from __future__ import annotations

import sys

import click

from headroom import __version__
from headroom.cli.bench import bench
from headroom.cli.compress import compress_command, retrieve_command
from headroom.cli.mcp import mcp
from headroom.cli.proxy import proxy_command
from headroom.cli.stats import stats
from headroom.cli.store import store
from headroom.errors import HeadroomError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="headroom")
def cli() -> None:
    """Deterministic, reversible context compression for LLM agents."""


cli.add_command(compress_command)
cli.add_command(retrieve_command)
cli.add_command(bench)
cli.add_command(store)
cli.add_command(stats)
cli.add_command(proxy_command)
cli.add_command(mcp)


def main() -> None:
    """Entry point: run the CLI, turning headroom's own errors into one line and exit 1."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("headroom: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except HeadroomError as exc:
        click.echo(f"headroom: error: {exc}", err=True)
        sys.exit(1)
    except BrokenPipeError:
        sys.exit(0)
