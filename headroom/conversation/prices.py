"""What tokens cost: list prices for the Anthropic and OpenAI models in one small table, and
token counts split the way providers bill them (`Usage`), read from a response's `usage` object
or simulated when there is none.

The prices are public list prices in US dollars per million tokens, checked 2026-11 against the
providers' pricing pages: no batch, priority, regional or negotiated rates, and no long-context
premium. Anthropic bills five rates off one input price: a cache write costs 1.25x input with the
default 5-minute TTL and 2x with the 1-hour TTL, a cache read 0.1x. OpenAI caches prompt
prefixes on its own, bills cached input at its published price and charges nothing extra to
write the cache, so both of its write rates equal its input price.

A model name matches an entry when it is the entry's name, optionally followed by a dated
snapshot suffix (`claude-sonnet-4-5-20250929`, `claude-opus-4-1@20250805`,
`gpt-4o-2024-08-06`) or `-latest`. Nothing looser: `claude-opus-4-5` must not be billed as
`claude-opus-4`, nor `gpt-5-mini` as `gpt-5`. A model matching no entry is priced as
`DEFAULT_MODEL` and flagged (`Price.known` is False), so a report can say its dollars are a guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import astuple, dataclass, replace
from decimal import Decimal
from typing import Any, Literal

from headroom.errors import InvalidMessagesError

CHECKED = "2026-11"
"""When the table was last checked against the providers' published list prices."""
DEFAULT_MODEL = "claude-sonnet-4-5"
"""The entry whose prices stand in for a model the table does not know."""
MILLION = Decimal(1_000_000)

Provider = Literal["anthropic", "openai"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens split the way providers bill them: input neither read from nor written to the
    cache, cache writes with a 5-minute and a 1-hour TTL, cache reads, and output."""

    uncached: int = 0
    write_5m: int = 0
    write_1h: int = 0
    read: int = 0
    output: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def scaled(self, numerator: int, denominator: int) -> Usage:
        """The input-side counts times numerator / denominator, rounded; output is kept.
        A zero denominator leaves the counts as they are."""
        if denominator == 0:
            return self

        def scale(n: int) -> int:
            return (n * numerator + denominator // 2) // denominator

        return Usage(
            scale(self.uncached),
            scale(self.write_5m),
            scale(self.write_1h),
            scale(self.read),
            self.output,
        )


@dataclass(frozen=True, slots=True)
class Price:
    """One model's list prices in US dollars per million tokens."""

    model: str
    """The table's name for the model (`DEFAULT_MODEL` for an unknown one)."""
    provider: Provider
    input: Decimal
    """Input neither read from nor written to the cache."""
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal
    output: Decimal
    min_cache_tokens: int
    """The shortest prompt the provider caches at all."""
    known: bool = True
    """False when the model matched no entry and these are `DEFAULT_MODEL`'s prices."""

    def cost(self, usage: Usage) -> Decimal:
        """Exact dollars for `usage` at these prices."""
        total = (
            usage.uncached * self.input
            + usage.write_5m * self.cache_write_5m
            + usage.write_1h * self.cache_write_1h
            + usage.read * self.cache_read
            + usage.output * self.output
        )
        return total / MILLION


def _anthropic(model: str, input_: str, output: str, min_cache_tokens: int) -> Price:
    base = Decimal(input_)
    return Price(
        model=model,
        provider="anthropic",
        input=base,
        cache_write_5m=base * Decimal("1.25"),
        cache_write_1h=base * 2,
        cache_read=base * Decimal("0.1"),
        output=Decimal(output),
        min_cache_tokens=min_cache_tokens,
    )


def _openai(model: str, input_: str, cached: str, output: str) -> Price:
    base = Decimal(input_)
    return Price(
        model=model,
        provider="openai",
        input=base,
        cache_write_5m=base,
        cache_write_1h=base,
        cache_read=Decimal(cached),
        output=Decimal(output),
        min_cache_tokens=1024,
    )


_ENTRIES = (
    _anthropic("claude-opus-4-5", "5", "25", 4096),
    _anthropic("claude-opus-4-1", "15", "75", 1024),
    _anthropic("claude-opus-4", "15", "75", 1024),
    _anthropic("claude-sonnet-4-5", "3", "15", 1024),
    _anthropic("claude-sonnet-4", "3", "15", 1024),
    _anthropic("claude-haiku-4-5", "1", "5", 4096),
    _anthropic("claude-3-5-haiku", "0.80", "4", 2048),
    _openai("gpt-4o", "2.50", "1.25", "10"),
    _openai("gpt-4o-mini", "0.15", "0.075", "0.60"),
    _openai("gpt-4.1", "2", "0.50", "8"),
    _openai("gpt-5", "1.25", "0.125", "10"),
)
_ALIASES = {"claude-opus-4-0": "claude-opus-4", "claude-sonnet-4-0": "claude-sonnet-4"}

PRICES: dict[str, Price] = {price.model: price for price in _ENTRIES}
"""The table, by model name without a snapshot suffix."""

_SUFFIX = re.compile(r"(?:[-@]\d{8}|-\d{4}-\d{2}-\d{2}|-latest)$")


def price_for(model: str) -> Price:
    """The list prices for `model`; `DEFAULT_MODEL`'s, with `known=False`, when it is unknown."""
    name = _SUFFIX.sub("", model.strip().lower())
    price = PRICES.get(_ALIASES.get(name, name))
    if price is None:
        return replace(PRICES[DEFAULT_MODEL], known=False)
    return price


def parse_usage(usage: Mapping[str, Any]) -> Usage:
    """A provider's `usage` object as billed token counts.

    Chat Completions (`prompt_tokens`) and Responses (`input_tokens_details`) count cached
    tokens inside the prompt; Anthropic's `input_tokens` excludes cache writes and reads, and
    `cache_creation` splits the writes by TTL (writes it does not cover count as 5-minute).
    """
    if "prompt_tokens" in usage:
        prompt, output = _tokens(usage, "prompt_tokens"), _tokens(usage, "completion_tokens")
        return _prompt_with_cached(
            prompt, _tokens(_part(usage, "prompt_tokens_details"), "cached_tokens"), output
        )
    if "input_tokens_details" in usage:
        prompt, output = _tokens(usage, "input_tokens"), _tokens(usage, "output_tokens")
        return _prompt_with_cached(
            prompt, _tokens(_part(usage, "input_tokens_details"), "cached_tokens"), output
        )
    split = _part(usage, "cache_creation")
    write_1h = _tokens(split, "ephemeral_1h_input_tokens")
    write_5m = max(
        _tokens(usage, "cache_creation_input_tokens") - write_1h,
        _tokens(split, "ephemeral_5m_input_tokens"),
    )
    return Usage(
        uncached=_tokens(usage, "input_tokens"),
        write_5m=write_5m,
        write_1h=write_1h,
        read=_tokens(usage, "cache_read_input_tokens"),
        output=_tokens(usage, "output_tokens"),
    )


def _prompt_with_cached(prompt: int, cached: int, output: int) -> Usage:
    if cached > prompt:
        raise InvalidMessagesError(
            f"usage reports {cached} cached tokens in a prompt of {prompt}; pass the response's "
            "`usage` object unchanged"
        )
    return Usage(uncached=prompt - cached, read=cached, output=output)


def _part(usage: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = usage.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidMessagesError(
            f"usage.{name} is {value!r}, not an object; pass `usage` unchanged"
        )
    return value


def _tokens(usage: Mapping[str, Any], name: str) -> int:
    value = usage.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidMessagesError(
            f"usage.{name} is {value!r}, not a token count; pass the response's `usage` unchanged"
        )
    return value


def simulate_usage(model: str, forwarded: int, cached_prefix: int) -> Usage:
    """How the provider bills a `forwarded`-token prompt whose first `cached_prefix` tokens are
    cached: those are read, the rest is written (Anthropic, 5-minute TTL, as when the client's
    last breakpoint ends the prompt) or billed as plain input (OpenAI). A prompt shorter than
    the cached prefix shares none of it; one below the model's minimum is not cached at all."""
    price = price_for(model)
    if forwarded < price.min_cache_tokens:
        return Usage(uncached=forwarded)
    read = cached_prefix if cached_prefix <= forwarded else 0
    if price.provider == "openai":
        return Usage(uncached=forwarded - read, read=read)
    return Usage(write_5m=forwarded - read, read=read)
