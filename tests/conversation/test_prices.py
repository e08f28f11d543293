"""List prices by model name, exact dollars, and provider usage objects read as billed tokens."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headroom.conversation.prices import (
    PRICES,
    Usage,
    parse_usage,
    price_for,
    simulate_usage,
)
from headroom.errors import InvalidMessagesError


def test_anthropic_cache_rates_derive_from_the_input_price() -> None:
    opus = price_for("claude-opus-4-1")
    assert (opus.input, opus.cache_write_5m, opus.cache_write_1h, opus.cache_read, opus.output) == (
        Decimal("15"),
        Decimal("18.75"),
        Decimal("30"),
        Decimal("1.5"),
        Decimal("75"),
    )
    haiku = price_for("claude-3-5-haiku")
    assert (haiku.cache_write_5m, haiku.cache_write_1h, haiku.cache_read) == (
        Decimal("1"),
        Decimal("1.6"),
        Decimal("0.08"),
    )


def test_openai_bills_cached_input_at_its_published_price_and_no_write_surcharge() -> None:
    gpt = price_for("gpt-4.1")
    assert (gpt.input, gpt.cache_write_5m, gpt.cache_write_1h, gpt.cache_read, gpt.output) == (
        Decimal("2"),
        Decimal("2"),
        Decimal("2"),
        Decimal("0.50"),
        Decimal("8"),
    )
    assert price_for("gpt-4o-mini").cache_read == Decimal("0.075")
    assert price_for("gpt-5").cache_read == Decimal("0.125")


@pytest.mark.parametrize(
    ("model", "entry"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-opus-4-1@20250805", "claude-opus-4-1"),
        ("claude-opus-4-0", "claude-opus-4"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("Claude-Sonnet-4-5", "claude-sonnet-4-5"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-5-2025-08-07", "gpt-5"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
        ("o3-2025-04-16", "o3"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("global.anthropic.claude-opus-4-5-20251101-v1:0", "claude-opus-4-5"),
        ("anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
            "eu.anthropic.claude-sonnet-4-20250514-v1:0",
            "claude-sonnet-4",
        ),
        ("claude-opus-5-5[1m]", "claude-opus-5-5"),
        ("anthropic/claude-sonnet-4.6", "claude-sonnet-4-6"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("gemini-3-pro-preview", "gemini-3-pro"),
        ("gemini-2.5-flash-lite-preview-09-2025", "gemini-2.5-flash-lite"),
    ],
)
def test_dated_snapshots_and_aliases_match_their_entry(model: str, entry: str) -> None:
    price = price_for(model)
    assert (price.model, price.known) == (entry, True)


def test_a_newer_model_is_not_billed_as_an_older_one_sharing_its_prefix() -> None:
    assert price_for("claude-opus-4-5-20251101").input == Decimal("5")
    assert price_for("claude-opus-4-5-20251101").model == "claude-opus-4-5"
    assert price_for("gpt-5-mini").input == Decimal("0.25")
    assert price_for("gpt-4.1-nano-2025-04-14").input == Decimal("0.10")
    assert not price_for("gpt-5-micro").known
    assert not price_for("claude-opus-4-9").known


def test_a_cache_read_is_priced_as_listed_not_as_a_tenth_of_input() -> None:
    assert price_for("claude-opus-5-5").cache_read == Decimal("0.20")  # 0.05x input
    assert price_for("claude-3-haiku").cache_write_5m == Decimal("0.30")  # 1.2x input
    assert price_for("gpt-5.5-pro").cache_read == Decimal("30")  # no cached price: full input


def test_an_unknown_model_costs_nothing_and_is_flagged() -> None:
    price = price_for("mistral-large-2411")
    assert (price.known, price.model, price.provider) == (False, "mistral-large-2411", "anthropic")
    assert price.cost(Usage(uncached=10**6, write_5m=10**6, read=10**6, output=10**6)) == 0
    assert price_for("gpt-7-turbo").provider == "openai"
    assert price_for("gemini-9-ultra-preview").provider == "google"


def test_dollars_are_exact() -> None:
    usage = Usage(uncached=1_000, write_5m=2_000, write_1h=3_000, read=100_000, output=500)
    # 1000 * 3 + 2000 * 3.75 + 3000 * 6 + 100000 * 0.30 + 500 * 15 = 66000 micro-dollars
    assert price_for("claude-sonnet-4-5").cost(usage) == Decimal("0.066")
    mini = Usage(uncached=6_000, read=4_000, output=1_000)
    assert price_for("gpt-4o-mini").cost(mini) == Decimal("0.0018")


def test_an_anthropic_usage_counts_writes_and_reads_outside_input_tokens() -> None:
    usage = {
        "input_tokens": 4,
        "cache_creation_input_tokens": 2_156,
        "cache_read_input_tokens": 41_233,
        "cache_creation": {"ephemeral_5m_input_tokens": 2_156, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 312,
        "service_tier": "standard",
    }
    assert parse_usage(usage) == Usage(uncached=4, write_5m=2_156, read=41_233, output=312)


def test_an_anthropic_usage_splits_writes_by_ttl() -> None:
    usage = {
        "input_tokens": 12,
        "cache_creation_input_tokens": 5_000,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 1_000, "ephemeral_1h_input_tokens": 4_000},
        "output_tokens": 80,
    }
    assert parse_usage(usage) == Usage(uncached=12, write_5m=1_000, write_1h=4_000, output=80)


def test_an_anthropic_usage_without_a_ttl_split_writes_for_five_minutes() -> None:
    usage = {
        "input_tokens": 3,
        "cache_creation_input_tokens": 900,
        "cache_read_input_tokens": None,
        "output_tokens": 7,
    }
    assert parse_usage(usage) == Usage(uncached=3, write_5m=900, output=7)


def test_a_chat_completions_usage_counts_cached_tokens_inside_the_prompt() -> None:
    usage = {
        "prompt_tokens": 2_006,
        "completion_tokens": 300,
        "total_tokens": 2_306,
        "prompt_tokens_details": {"cached_tokens": 1_920, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }
    assert parse_usage(usage) == Usage(uncached=86, read=1_920, output=300)


def test_a_responses_usage_counts_cached_tokens_inside_the_input() -> None:
    usage = {
        "input_tokens": 5_200,
        "input_tokens_details": {"cached_tokens": 4_096},
        "output_tokens": 87,
        "output_tokens_details": {"reasoning_tokens": 64},
        "total_tokens": 5_287,
    }
    assert parse_usage(usage) == Usage(uncached=1_104, read=4_096, output=87)


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 11}},
        {"input_tokens": "12", "output_tokens": 3},
        {"input_tokens": -1},
        {"input_tokens": 5, "cache_creation": [100]},
    ],
)
def test_a_usage_that_is_not_token_counts_is_refused(usage: dict[str, object]) -> None:
    with pytest.raises(InvalidMessagesError, match="usage"):
        parse_usage(usage)


def test_a_simulated_anthropic_turn_reads_the_cached_prefix_and_writes_the_rest() -> None:
    assert simulate_usage("claude-sonnet-4-5", 10_000, 8_000) == Usage(write_5m=2_000, read=8_000)
    assert simulate_usage("claude-sonnet-4-5", 6_000, 8_000) == Usage(write_5m=6_000)
    assert simulate_usage("claude-haiku-4-5", 3_000, 0) == Usage(uncached=3_000)


def test_a_simulated_openai_turn_bills_the_uncached_part_as_plain_input() -> None:
    assert simulate_usage("gpt-4o", 10_000, 8_000) == Usage(uncached=2_000, read=8_000)
    assert simulate_usage("gemini-2.5-flash", 10_000, 8_000) == Usage(uncached=2_000, read=8_000)


def test_a_gemini_usage_counts_cached_tokens_inside_the_prompt_and_thoughts_as_output() -> None:
    usage = {
        "promptTokenCount": 12_000,
        "cachedContentTokenCount": 10_000,
        "candidatesTokenCount": 300,
        "thoughtsTokenCount": 700,
        "totalTokenCount": 13_000,
    }
    assert parse_usage(usage) == Usage(uncached=2_000, read=10_000, output=1_000)


def test_a_bedrock_converse_usage_reports_writes_and_reads_beside_input() -> None:
    usage = {
        "inputTokens": 40,
        "outputTokens": 90,
        "totalTokens": 5_130,
        "cacheReadInputTokens": 4_000,
        "cacheWriteInputTokens": 1_000,
    }
    assert parse_usage(usage) == Usage(uncached=40, write_5m=1_000, read=4_000, output=90)


def test_savings_go_back_where_the_prefix_and_the_tail_were_billed() -> None:
    warm = Usage(uncached=3, write_5m=10, read=101, output=9)
    assert warm.without_savings(50, 7) == Usage(uncached=3, write_5m=17, read=151, output=9)
    one_hour = Usage(uncached=3, write_1h=10, output=9)
    assert one_hour.without_savings(50, 7) == Usage(uncached=3, write_1h=67, output=9)
    uncached = Usage(uncached=3, output=9)
    assert uncached.without_savings(50, 7) == Usage(uncached=60, output=9)
    read_only = Usage(uncached=3, read=101, output=9)
    assert read_only.without_savings(50, 7) == Usage(uncached=10, read=151, output=9)


@given(st.sampled_from(sorted(PRICES)), st.integers(2020_01_01, 2029_12_31))
def test_any_dated_snapshot_of_an_entry_has_the_entry_price(model: str, date: int) -> None:
    assert price_for(f"{model}-{date}") == PRICES[model]


counts = st.integers(0, 10**9)
usages = st.builds(Usage, counts, counts, counts, counts, counts)


@given(st.sampled_from(sorted(PRICES)), usages, usages)
def test_dollars_add_up_exactly(model: str, a: Usage, b: Usage) -> None:
    price = price_for(model)
    assert price.cost(a + b) == price.cost(a) + price.cost(b)
