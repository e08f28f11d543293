"""`headroom stats [--json] [--reset]`: the ledger of every recorded session, what headroom
saved in tokens and dollars, read from the configured store."""

from __future__ import annotations

import json

import click

from headroom.api import store_for
from headroom.config import Settings
from headroom.conversation.accounts import load_ledger, reset_ledger
from headroom.conversation.report import render
from headroom.errors import StoreError
from headroom.store import Store

NO_SESSIONS = "headroom ledger: no sessions recorded yet"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the ledger as JSON.")
@click.option("--reset", is_flag=True, help="Forget every recorded session; start a new ledger.")
def stats(as_json: bool, reset: bool) -> None:
    """What headroom saved, per session and in total, in tokens and dollars."""
    if as_json and reset:
        raise click.UsageError("--json and --reset do not go together; run them one at a time")
    store = store_for(Settings.from_env())
    if reset:
        click.echo(_reset(store))
        return
    ledger = load_ledger(store)
    if as_json:
        click.echo(json.dumps(ledger.to_dict(), indent=2, sort_keys=True))
    elif ledger.sessions():
        click.echo(render(ledger), nl=False)
    else:
        click.echo(NO_SESSIONS)


def _reset(store: Store) -> str:
    """Resets the ledger and says what was cleared."""
    try:
        sessions = load_ledger(store).sessions()
        turns = sum(one.turns for one in sessions)
        cleared = f"{_plural(len(sessions), 'session')} ({_plural(turns, 'turn')})"
    except StoreError:
        cleared = "a damaged ledger"
    reset_ledger(store)
    return f"headroom ledger reset: cleared {cleared}"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
