"""`headroom store stats|purge`: look after the store of originals."""

from __future__ import annotations

from dataclasses import asdict

import click

from headroom.api import store_for
from headroom.config import Settings


@click.group()
def store() -> None:
    """Inspect or clean the store of originals."""


@store.command()
def stats() -> None:
    """How many originals are stored, and how big the store is."""
    for name, value in asdict(store_for(Settings.from_env()).stats()).items():
        click.echo(f"{name}: {value}")


@store.command()
@click.option(
    "--all", "everything", is_flag=True, help="Remove every original, not only expired ones."
)
def purge(everything: bool) -> None:
    """Remove expired originals (or all of them with --all)."""
    removed = store_for(Settings.from_env()).purge(everything=everything)
    click.echo(f"removed {removed} entries")
