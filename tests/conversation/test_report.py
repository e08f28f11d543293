"""`headroom stats`'s text: a row per session and a total, the notes, the kinds."""

from __future__ import annotations

from headroom.conversation.ledger import Ledger
from headroom.conversation.report import render
from tests.conversation.test_ledger import ANTHROPIC_USAGE, busy_ledger, ticking


def test_the_report_has_a_row_per_session_a_total_and_the_kinds() -> None:
    text = render(busy_ledger())
    lines = text.splitlines()
    assert lines[0] == "headroom ledger: dollars at list prices checked 2026-11"
    s1 = next(line for line in lines if line.startswith("s1 "))
    assert "2026-11-03 00:00" in s1
    assert "60,000" not in s1 and "122,000" in s1 and "81,000" in s1
    total = next(line for line in lines if line.startswith("total "))
    assert "145,000" in total and "103,000" in total
    assert "0/1" in s1
    assert "usage simulated for 2 of 4 turns" in text
    assert "s1: 1 cache bust(s) by headroom, last: message 5 block 0 changed (headroom)" in text
    kind = next(line for line in lines if line.startswith("log "))
    assert kind.split() == ["log", "2", "20,000", "1,600", "1", "50%"]


def test_the_report_shows_dollars_and_the_saving() -> None:
    ledger = Ledger(ticking())
    ledger.record_turn(
        "s1",
        "claude-sonnet-4-5",
        sent=60_000,
        forwarded=40_000,
        usage=ANTHROPIC_USAGE,
        saved_earlier=15_000,
    )
    row = next(line for line in render(ledger).splitlines() if line.startswith("s1 "))
    # $0.02667 against $0.04992: 46.6 % saved
    assert "$0.0267" in row and "$0.0499" in row and "46.6%" in row


def test_an_empty_ledger_says_so() -> None:
    assert render(Ledger()) == "headroom ledger: no sessions recorded yet\n"
