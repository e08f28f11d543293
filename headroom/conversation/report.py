"""The ledger as plain text for `headroom stats` and the MCP server's `headroom_stats`: a row
per session and a total (tokens, cache, dollars with and without headroom, busts, trims), notes
on what the figures rest on, and a row per payload kind with how often it was retrieved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal

from headroom.conversation import prices
from headroom.conversation.ledger import KindStats, Ledger, SessionStats


def render(ledger: Ledger) -> str:
    """The ledger as plain text for `headroom stats`: sessions, a total row, notes, kinds."""
    sessions = ledger.sessions()
    if not sessions:
        return "headroom ledger: no sessions recorded yet\n"
    total = ledger.total()
    rows = [tuple(name for name, _ in _COLUMNS)]
    rows += [tuple(cell(one) for _, cell in _COLUMNS) for one in (*sessions, total)]
    lines = [f"headroom ledger: dollars at list prices checked {prices.CHECKED}", "", *_table(rows)]
    lines += _notes(sessions, total)
    if total.kinds:
        lines += ["", *_table([_KIND_HEADER, *(_kind_row(kind) for kind in total.kinds)])]
    return "\n".join(lines) + "\n"


def _first_seen(one: SessionStats) -> str:
    if one.session == "total":
        return ""
    return datetime.fromtimestamp(one.first_seen, UTC).strftime("%Y-%m-%d %H:%M")


def _dollars(one: SessionStats, amount: Decimal) -> str:
    """Dollars, starred when a model of the session has no price (see the notes)."""
    return f"${amount:,.4f}" + ("*" if one.unknown_models else "")


def _saved(one: SessionStats) -> str:
    return f"{(one.baseline_cost - one.cost) / one.baseline_cost:.1%}" if one.baseline_cost else "-"


_COLUMNS: tuple[tuple[str, Callable[[SessionStats], str]], ...] = (
    ("session", lambda one: one.session),
    ("first seen (UTC)", _first_seen),
    ("turns", lambda one: f"{one.turns:,}"),
    ("sent", lambda one: f"{one.sent:,}"),
    ("forwarded", lambda one: f"{one.forwarded:,}"),
    ("cache write", lambda one: f"{one.usage.write_5m + one.usage.write_1h:,}"),
    ("cache read", lambda one: f"{one.usage.read:,}"),
    ("cost", lambda one: _dollars(one, one.cost)),
    ("without headroom", lambda one: _dollars(one, one.baseline_cost)),
    ("saved", _saved),
    (
        "busts client/headroom",
        lambda one: f"{one.events['cache_bust'][0]}/{one.events['headroom_bust'][0]}",
    ),
    ("trims", lambda one: f"{one.events['trim'][0]}"),
)


def _notes(sessions: Iterable[SessionStats], total: SessionStats) -> list[str]:
    notes = []
    if total.simulated_turns:
        notes.append(
            f"usage simulated for {total.simulated_turns} of {total.turns} turns "
            "(no provider usage was passed in)"
        )
    if total.unknown_models:
        notes.append(
            f"* unknown price for {', '.join(total.unknown_models)}: their tokens are counted "
            "but not their dollars (the model is not in headroom's price table)"
        )
    for one in sessions:
        count, detail = one.events["headroom_bust"]
        if count:
            notes.append(f"{one.session}: {count} cache bust(s) by headroom, last: {detail}")
        count = one.events["recompression"][0]
        if count:
            notes.append(
                f"{one.session}: {count} history rewrite(s) by token mode (expected; their "
                "cache writes are in the bill)"
            )
    return ["", *notes] if notes else []


_KIND_HEADER = ("kind", "compressed", "tokens in", "tokens out", "retrieved", "retrieval rate")


def _kind_row(kind: KindStats) -> tuple[str, ...]:
    rate = kind.retrieval_rate
    return (
        kind.kind,
        f"{kind.compressed:,}",
        f"{kind.tokens_in:,}",
        f"{kind.tokens_out:,}",
        f"{kind.retrieved:,}",
        "-" if rate is None else f"{rate:.0%}",
    )


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
