"""The ledger: tokens and exact dollars per session, retrievals per kind, events, persistence."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from decimal import Decimal
from operator import methodcaller

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.conversation.ledger import EVENT_KINDS, KindStats, Ledger
from headroom.conversation.prices import Usage
from headroom.conversation.report import render
from headroom.errors import ConfigError, StoreError

NOV_3_2026 = 1_793_664_000.0  # 2026-11-03 00:00 UTC

# What Claude Code's third turn of a session gets back from the Messages API.
ANTHROPIC_USAGE = {
    "input_tokens": 100,
    "cache_creation_input_tokens": 2_000,
    "cache_read_input_tokens": 37_900,
    "cache_creation": {"ephemeral_5m_input_tokens": 2_000, "ephemeral_1h_input_tokens": 0},
    "output_tokens": 500,
    "service_tier": "standard",
}
OPENAI_USAGE = {
    "prompt_tokens": 20_000,
    "completion_tokens": 1_000,
    "total_tokens": 21_000,
    "prompt_tokens_details": {"cached_tokens": 16_000, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
}


def ticking(start: float = NOV_3_2026, step: float = 60.0) -> Callable[[], float]:
    ticks = itertools.count()
    return lambda: start + step * next(ticks)


def test_reported_anthropic_usage_is_billed_exactly_with_and_without_headroom() -> None:
    ledger = Ledger(ticking())
    billed = ledger.record_turn(
        "s1",
        "claude-sonnet-4-5-20250929",
        sent=60_000,
        forwarded=40_000,
        usage=ANTHROPIC_USAGE,
        saved_earlier=15_000,
    )
    assert billed == Usage(uncached=100, write_5m=2_000, read=37_900, output=500)
    (stats,) = ledger.sessions()
    # 100 * 3 + 2000 * 3.75 + 37900 * 0.30 + 500 * 15 = 26670 micro-dollars
    assert stats.cost == Decimal("0.02667")
    # the client's tokens at the same cache behaviour: the 15000 saved in earlier messages
    # would have been read, the 5000 saved in the new ones written
    assert stats.baseline == Usage(uncached=100, write_5m=7_000, read=52_900, output=500)
    # 100 * 3 + 7000 * 3.75 + 52900 * 0.30 + 500 * 15 = 49920 micro-dollars
    assert stats.baseline_cost == Decimal("0.04992")
    assert (stats.sent, stats.forwarded, stats.turns, stats.simulated_turns) == (
        60_000,
        40_000,
        1,
        0,
    )


def test_reported_openai_usage_is_billed_at_the_cached_input_price() -> None:
    ledger = Ledger(ticking())
    ledger.record_turn("s1", "gpt-4o-2024-08-06", sent=20_000, forwarded=20_000, usage=OPENAI_USAGE)
    # 4000 * 2.50 + 16000 * 1.25 + 1000 * 10 = 40000 micro-dollars
    assert ledger.total().cost == Decimal("0.04")
    assert ledger.total().baseline_cost == Decimal("0.04")


def test_a_responses_api_usage_is_accepted() -> None:
    ledger = Ledger(ticking())
    usage = {
        "input_tokens": 5_000,
        "input_tokens_details": {"cached_tokens": 4_000},
        "output_tokens": 100,
        "total_tokens": 5_100,
    }
    billed = ledger.record_turn("s1", "gpt-5", sent=5_000, forwarded=5_000, usage=usage)
    assert billed == Usage(uncached=1_000, read=4_000, output=100)
    # 1000 * 1.25 + 4000 * 0.125 + 100 * 10 = 2750 micro-dollars
    assert ledger.total().cost == Decimal("0.00275")


def test_without_usage_the_previous_prompt_is_simulated_as_cached() -> None:
    ledger = Ledger(ticking())
    first = ledger.record_turn("s1", "claude-sonnet-4-5", sent=8_000, forwarded=5_000)
    second = ledger.record_turn("s1", "claude-sonnet-4-5", sent=11_000, forwarded=7_000)
    assert first == Usage(write_5m=5_000)
    assert second == Usage(write_5m=2_000, read=5_000)
    assert ledger.total().simulated_turns == 2


def test_an_event_empties_the_simulated_cache() -> None:
    ledger = Ledger(ticking())
    ledger.record_turn("s1", "claude-sonnet-4-5", sent=5_000, forwarded=5_000)
    ledger.record_event("s1", "cache_bust", "system block 0 changed (client)")
    assert ledger.record_turn("s1", "claude-sonnet-4-5", sent=6_000, forwarded=6_000) == Usage(
        write_5m=6_000
    )


def test_each_model_of_a_session_has_its_own_cache_and_prices() -> None:
    ledger = Ledger(ticking())
    ledger.record_turn("s1", "claude-sonnet-4-5", sent=5_000, forwarded=5_000)
    haiku = ledger.record_turn("s1", "claude-haiku-4-5-20251001", sent=500, forwarded=500)
    sonnet = ledger.record_turn("s1", "claude-sonnet-4-5", sent=6_000, forwarded=6_000)
    assert haiku == Usage(uncached=500)  # under Haiku 4.5's minimum cacheable prompt
    assert sonnet == Usage(write_5m=1_000, read=5_000)
    # sonnet: 6000 * 3.75 + 5000 * 0.30 = 24000; haiku: 500 * 1 = 500 (micro-dollars)
    assert ledger.total().cost == Decimal("0.0245")


def test_an_unknown_model_counts_its_tokens_but_no_dollars_and_says_so() -> None:
    ledger = Ledger(ticking())
    ledger.record_turn("s1", "mystery-model-7", sent=2_000, forwarded=2_000, usage=ANTHROPIC_USAGE)
    ledger.record_turn(
        "s1", "claude-sonnet-4-5", sent=2_000, forwarded=2_000, usage=ANTHROPIC_USAGE
    )
    (stats,) = ledger.sessions()
    assert stats.unknown_models == ("mystery-model-7",)
    assert stats.usage.read == 2 * 37_900
    assert stats.cost == Decimal("0.02667")  # the Sonnet turn only
    text = render(ledger)
    assert "$0.0267*" in text
    assert "* unknown price for mystery-model-7" in text


def test_retrievals_per_kind_show_which_kind_is_compressed_too_hard() -> None:
    ledger = Ledger(ticking())
    ledger.record_compression("s1", "log", 12_000, 900)
    ledger.record_compression("s1", "log", 8_000, 700)
    ledger.record_compression("s2", "json", 30_000, 2_000)
    ledger.record_retrieval("s1", "log")
    ledger.record_retrieval("s2", "log")
    ledger.record_retrieval("s2", "log")
    kinds = {kind.kind: kind for kind in ledger.total().kinds}
    assert kinds["log"] == KindStats(
        "log", compressed=2, tokens_in=20_000, tokens_out=1_600, retrieved=3
    )
    assert kinds["log"].retrieval_rate == 1.5
    assert kinds["json"].retrieval_rate == 0.0
    assert [kind.kind for kind in ledger.sessions()[1].kinds] == ["json", "log"]
    assert ledger.sessions()[1].kinds[1].retrieval_rate is None


def test_events_are_counted_per_kind_and_keep_the_last_detail() -> None:
    ledger = Ledger(ticking())
    ledger.record_event("s1", "cache_bust", "message 3 changed (client)")
    ledger.record_event("s1", "headroom_bust", "message 5 block 0 changed (headroom)")
    ledger.record_event("s1", "headroom_bust", "message 7 block 1 changed (headroom)")
    ledger.record_event("s2", "trim", "stubbed 14 tool results")
    s1, s2 = ledger.sessions()
    assert s1.events == {
        "cache_bust": (1, "message 3 changed (client)"),
        "headroom_bust": (2, "message 7 block 1 changed (headroom)"),
        "recompression": (0, ""),
        "trim": (0, ""),
    }
    assert s2.events["trim"] == (1, "stubbed 14 tool results")
    assert {kind: ledger.total().events[kind][0] for kind in EVENT_KINDS} == {
        "cache_bust": 1,
        "headroom_bust": 2,
        "recompression": 0,
        "trim": 1,
    }
    with pytest.raises(ConfigError, match="not one of"):
        ledger.record_event("s1", "bust", "?")  # type: ignore[arg-type]


def test_sessions_are_ordered_by_first_seen_then_id() -> None:
    ledger = Ledger(ticking(step=0.0))
    ledger.record_retrieval("b", "log")
    ledger.record_retrieval("a", "log")
    later = Ledger.from_dict(ledger.to_dict(), clock=ticking(start=NOV_3_2026 + 1))
    later.record_retrieval("0-late", "log")
    later.record_retrieval("b", "log")
    assert [one.session for one in later.sessions()] == ["a", "b", "0-late"]


def test_negative_token_counts_are_refused() -> None:
    ledger = Ledger(ticking())
    with pytest.raises(ConfigError, match="sent must be a non-negative token count"):
        ledger.record_turn("s1", "gpt-4o", sent=-1, forwarded=0)
    with pytest.raises(ConfigError, match="tokens_out"):
        ledger.record_compression("s1", "log", 10, -2)


def busy_ledger() -> Ledger:
    ledger = Ledger(ticking())
    ledger.record_turn(
        "s1", "claude-sonnet-4-5", sent=60_000, forwarded=40_000, usage=ANTHROPIC_USAGE
    )
    ledger.record_turn("s1", "claude-sonnet-4-5", sent=62_000, forwarded=41_000)
    ledger.record_turn("s2", "gpt-4o", sent=20_000, forwarded=20_000, usage=OPENAI_USAGE)
    ledger.record_turn("s2", "mystery-model-7", sent=3_000, forwarded=2_000)
    ledger.record_compression("s1", "log", 12_000, 900)
    ledger.record_compression("s1", "log", 8_000, 700)
    ledger.record_retrieval("s1", "log")
    ledger.record_event("s1", "headroom_bust", "message 5 block 0 changed (headroom)")
    return ledger


def test_a_ledger_survives_a_round_trip_through_json() -> None:
    ledger = busy_ledger()
    restored = Ledger.from_dict(json.loads(json.dumps(ledger.to_dict())))
    assert restored.sessions() == ledger.sessions()
    assert restored.to_dict() == ledger.to_dict()
    assert render(restored) == render(ledger)


def test_a_restored_ledger_keeps_simulating_from_the_cached_prefix() -> None:
    ledger = Ledger(ticking())
    ledger.record_turn("s1", "claude-sonnet-4-5", sent=5_000, forwarded=5_000)
    restored = Ledger.from_dict(ledger.to_dict())
    assert restored.record_turn("s1", "claude-sonnet-4-5", sent=6_000, forwarded=6_000) == Usage(
        write_5m=1_000, read=5_000
    )


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data.update(version=2),
        lambda data: data["sessions"]["s1"].update(turns=-1),
        lambda data: data["sessions"]["s1"]["models"]["gpt-4o"]["usage"].pop("read"),
        lambda data: data["sessions"]["s1"]["events"].update(bust={"count": 1, "last": ""}),
        lambda data: data["sessions"]["s1"].update(first_seen="yesterday"),
        lambda data: data.update(sessions=[]),
    ],
)
def test_a_damaged_ledger_is_refused_with_a_store_error(
    damage: Callable[[dict[str, object]], None],
) -> None:
    ledger = Ledger(ticking())
    ledger.record_turn("s1", "gpt-4o", sent=2_000, forwarded=2_000)
    data = ledger.to_dict()
    damage(data)
    with pytest.raises(StoreError, match="start a new one"):
        Ledger.from_dict(data)


def test_concurrent_records_are_all_counted() -> None:
    ledger = Ledger(ticking())

    def work(session: str) -> None:
        for _ in range(200):
            ledger.record_turn(session, "gpt-4o", sent=3, forwarded=2)
            ledger.record_retrieval(session, "log")

    threads = [threading.Thread(target=work, args=(f"s{i % 3}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = ledger.total()
    assert (total.turns, total.sent, total.forwarded) == (1_600, 4_800, 3_200)
    assert total.kinds == (KindStats("log", retrieved=1_600),)


sessions = st.sampled_from(["s1", "s2", "s3"])
models = st.sampled_from(["claude-sonnet-4-5", "claude-haiku-4-5", "gpt-4o", "mystery-model"])
kinds = st.sampled_from(["log", "json"])
tokens = st.integers(0, 200_000)
operations = st.one_of(
    st.builds(
        methodcaller, st.just("record_turn"), sessions, models, sent=tokens, forwarded=tokens
    ),
    st.builds(methodcaller, st.just("record_compression"), sessions, kinds, tokens, tokens),
    st.builds(methodcaller, st.just("record_retrieval"), sessions, kinds),
    st.builds(
        methodcaller, st.just("record_event"), sessions, st.sampled_from(EVENT_KINDS), st.text()
    ),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(operations, max_size=30))
def test_any_ledger_round_trips_and_its_total_adds_up(ops: list[methodcaller]) -> None:
    ledger = Ledger(ticking())
    for op in ops:
        op(ledger)
    restored = Ledger.from_dict(json.loads(json.dumps(ledger.to_dict())))
    assert restored.to_dict() == ledger.to_dict()
    assert render(restored) == render(ledger)
    total = ledger.total()
    assert total.cost == sum((one.cost for one in ledger.sessions()), Decimal(0))
    assert total.sent == sum(one.sent for one in ledger.sessions())
