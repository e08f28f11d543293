"""What tokens cost: list prices for the Anthropic, OpenAI and Google models in one small table,
and token counts split the way providers bill them (`Usage`), read from a response's `usage`
object or simulated when there is none.

The prices are public list prices in US dollars per million tokens, checked in `CHECKED`: no
batch, priority, regional or negotiated rates, and no long-prompt premium (a model with a
cheaper band for short prompts is priced at that band). Anthropic bills five rates: input, a
cache write with the 5-minute and with the 1-hour TTL (1.25x and 2x input), a cache read
(0.1x input for most models, less for some: each rate is listed, not derived), and output.
OpenAI and Google cache prompt prefixes on their own, bill cached input at their published
price and charge nothing extra to write the cache, so both of their write rates equal input.

Sources: Anthropic's pricing page and model pages; OpenAI's pricing page as transcribed on
2026-11-05 (GPT-5.4, GPT-5.5) and its list prices for the older models; Google's Gemini API
pricing page. Not confirmed on a provider's own page, and marked `# unverified` below: the
cache prices of the Gemini models, the Sonnet 5.5 cache-read cut of 2026-10-07 and the Haiku
5.5 cache rates (both from pricing changelogs that cite Anthropic's page), and the minimum
cacheable prompt of the models Anthropic's prompt-caching page does not list.

A model name matches an entry when, once normalised, it is the entry's name. Normalising
lowercases it, drops a routing prefix (`anthropic/`, `models/`, a Bedrock ARN's path), a
Bedrock region and vendor (`us.anthropic.claude-sonnet-4-5-20250929-v1:0`), a context tag
(`[1m]`), and a snapshot suffix (`-20250929`, `@20250805`, `-2024-08-06`, `-latest`,
`-preview-09-2025`, `-001`); a Claude name may write its version with dots
(`claude-sonnet-4.5`). Nothing looser: `claude-opus-4-5` is never billed as `claude-opus-4`,
nor `gpt-5-mini` as `gpt-5`. A model matching no entry costs $0 and is flagged
(`Price.known` is False), so a report can say its dollars are missing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import astuple, dataclass
from decimal import Decimal
from typing import Any, Literal

from headroom.errors import InvalidMessagesError

CHECKED = "2026-11"
"""When the table was last checked against the providers' published list prices."""
MILLION = Decimal(1_000_000)

Provider = Literal["anthropic", "openai", "google"]


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

    def without_savings(self, earlier: int, new: int) -> Usage:
        """This bill had the prompt been `earlier + new` tokens longer: `earlier` tokens in
        the part of the conversation sent on earlier turns, billed where that part was (read
        from the cache, else written, else uncached), and `new` tokens in this turn's part,
        written when the turn writes the cache, else uncached (a negative saving, when
        headroom forwarded more than the client sent, takes away; no count goes below zero).
        Output is kept."""
        read, write_5m, write_1h, uncached = self.read, self.write_5m, self.write_1h, self.uncached
        if read:
            read += earlier
        elif write_5m or write_1h:
            new += earlier
        else:
            uncached += earlier
        if write_1h and not write_5m:
            write_1h += new
        elif write_5m:
            write_5m += new
        else:
            uncached += new
        uncached, write_5m, write_1h, read = (
            max(0, n) for n in (uncached, write_5m, write_1h, read)
        )
        return Usage(uncached, write_5m, write_1h, read, self.output)


@dataclass(frozen=True, slots=True)
class Price:
    """One model's list prices in US dollars per million tokens."""

    model: str
    """The table's name for the model (the normalised name, for an unknown one)."""
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
    """False when the model matched no entry: every price is zero."""

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


def _anthropic(model: str, prices: str, min_cache_tokens: int) -> Price:
    """An Anthropic entry from "input write_5m write_1h read output"."""
    input_, write_5m, write_1h, read, output = (Decimal(p) for p in prices.split())
    return Price(model, "anthropic", input_, write_5m, write_1h, read, output, min_cache_tokens)


def _cached_for_free(
    provider: Provider, model: str, prices: str, min_cache_tokens: int = 1024
) -> Price:
    """An OpenAI or Google entry from "input cached output"; a model without a cached price
    ("-") bills cached input as input."""
    input_, cached, output = prices.split()
    base = Decimal(input_)
    read = base if cached == "-" else Decimal(cached)
    return Price(model, provider, base, base, base, read, Decimal(output), min_cache_tokens)


def _openai(model: str, prices: str) -> Price:
    return _cached_for_free("openai", model, prices)


def _google(model: str, prices: str, min_cache_tokens: int) -> Price:
    return _cached_for_free("google", model, prices, min_cache_tokens)


_ENTRIES = (
    # Anthropic: input, 5-minute write, 1-hour write, read, output; minimum cached prompt.
    _anthropic("claude-fable-5-1", "10 12.50 20 0.25 50", 512),  # min unverified
    _anthropic("claude-mythos-5-1", "10 12.50 20 0.25 50", 512),  # min unverified
    _anthropic("claude-fable-5", "10 12.50 20 1 50", 512),
    _anthropic("claude-mythos-5", "10 12.50 20 1 50", 512),
    _anthropic("claude-opus-5-5", "4 5 8 0.20 20", 512),  # min unverified
    _anthropic("claude-opus-5", "5 6.25 10 0.50 25", 512),
    _anthropic("claude-opus-4-8", "5 6.25 10 0.50 25", 1024),
    _anthropic("claude-opus-4-7", "5 6.25 10 0.50 25", 2048),
    _anthropic("claude-opus-4-6", "5 6.25 10 0.50 25", 4096),
    _anthropic("claude-opus-4-5", "5 6.25 10 0.50 25", 4096),
    _anthropic("claude-opus-4-1", "15 18.75 30 1.50 75", 1024),
    _anthropic("claude-opus-4", "15 18.75 30 1.50 75", 1024),
    _anthropic("claude-3-opus", "15 18.75 30 1.50 75", 1024),
    _anthropic("claude-sonnet-5-5", "2 2.50 4 0.10 10", 1024),  # read, min unverified
    _anthropic("claude-sonnet-5", "2 2.50 4 0.20 10", 1024),
    _anthropic("claude-sonnet-4-6", "3 3.75 6 0.30 15", 1024),
    _anthropic("claude-sonnet-4-5", "3 3.75 6 0.30 15", 1024),
    _anthropic("claude-sonnet-4", "3 3.75 6 0.30 15", 1024),
    _anthropic("claude-3-7-sonnet", "3 3.75 6 0.30 15", 1024),
    _anthropic("claude-haiku-5-5", "0.10 0.125 0.20 0.01 0.50", 4096),  # cache, min unverified
    _anthropic("claude-haiku-4-5", "1 1.25 2 0.10 5", 4096),
    _anthropic("claude-3-5-haiku", "0.80 1 1.6 0.08 4", 2048),
    _anthropic("claude-3-haiku", "0.25 0.30 0.50 0.03 1.25", 2048),
    # OpenAI: input, cached input, output.
    _openai("gpt-5.5", "5 0.50 30"),
    _openai("gpt-5.5-pro", "30 - 180"),
    _openai("gpt-5.4", "2.50 0.25 15"),
    _openai("gpt-5.4-mini", "0.75 0.075 4.50"),
    _openai("gpt-5.4-nano", "0.20 0.02 1.25"),
    _openai("gpt-5.4-pro", "30 - 180"),
    _openai("gpt-5.2", "1.75 0.175 14"),
    _openai("gpt-5.2-codex", "1.75 0.175 14"),
    _openai("gpt-5.2-pro", "21 - 168"),
    _openai("gpt-5.1", "1.25 0.125 10"),
    _openai("gpt-5.1-codex", "1.25 0.125 10"),
    _openai("gpt-5.1-codex-max", "1.25 0.125 10"),
    _openai("gpt-5.1-codex-mini", "0.25 0.025 2"),
    _openai("gpt-5", "1.25 0.125 10"),
    _openai("gpt-5-codex", "1.25 0.125 10"),
    _openai("gpt-5-mini", "0.25 0.025 2"),
    _openai("gpt-5-nano", "0.05 0.005 0.40"),
    _openai("gpt-5-pro", "15 - 120"),
    _openai("gpt-4.1", "2 0.50 8"),
    _openai("gpt-4.1-mini", "0.40 0.10 1.60"),
    _openai("gpt-4.1-nano", "0.10 0.025 0.40"),
    _openai("gpt-4o", "2.50 1.25 10"),
    _openai("gpt-4o-2024-05-13", "5 - 15"),
    _openai("gpt-4o-mini", "0.15 0.075 0.60"),
    _openai("o3", "2 0.50 8"),
    _openai("o3-pro", "20 - 80"),
    _openai("o3-mini", "1.10 0.55 4.40"),
    _openai("o4-mini", "1.10 0.275 4.40"),
    _openai("o1", "15 7.50 60"),
    # Google, prompts up to 200k tokens: input, cached input (unverified), output.
    _google("gemini-3.1-pro", "2 0.20 12", 4096),
    _google("gemini-3-pro", "2 0.20 12", 4096),
    _google("gemini-3-flash", "0.50 0.05 3", 1024),
    _google("gemini-2.5-pro", "1.25 0.125 10", 4096),
    _google("gemini-2.5-flash", "0.30 0.03 2.50", 1024),
    _google("gemini-2.5-flash-lite", "0.10 0.01 0.40", 1024),
)
_ALIASES = {"claude-opus-4-0": "claude-opus-4", "claude-sonnet-4-0": "claude-sonnet-4"}

PRICES: dict[str, Price] = {price.model: price for price in _ENTRIES}
"""The table, by normalised model name."""

_ROUTE = re.compile(r"^.*/")  # `anthropic/…`, `models/…`, a Bedrock ARN's path
_BEDROCK = re.compile(r"^(?:[a-z-]+\.)?anthropic\.")  # `us.anthropic.`, `global.anthropic.`
_TAG = re.compile(r"\[[a-z0-9]+\]$")  # Claude Code's `[1m]`
_SUFFIX = re.compile(
    r"(?:-v\d+(?::\d+)?|[-@]\d{8}|-\d{4}-\d{2}-\d{2}|-latest|-preview(?:-\d{2}-\d{2,4})?"
    r"|-exp|-\d{3})$"
)


def normalize(model: str) -> str:
    """The table's form of a model name (see the module docstring)."""
    *_, name = _names(model)
    return name


def _names(model: str) -> list[str]:
    """The model's name, then each shorter form as snapshot suffixes come off: a dated entry
    (`gpt-4o-2024-05-13`) matches before its undated one."""
    name = _TAG.sub("", _BEDROCK.sub("", _ROUTE.sub("", model.strip().lower())))
    if name.startswith("claude-"):
        name = name.replace(".", "-")
    names = [_ALIASES.get(name, name)]
    while (shorter := _SUFFIX.sub("", name)) != name:
        name = shorter
        names.append(_ALIASES.get(name, name))
    return names


def price_for(model: str) -> Price:
    """The list prices for `model`; all zero, with `known=False`, when it is unknown."""
    names = _names(model)
    price = next((PRICES[name] for name in names if name in PRICES), None)
    if price is not None:
        return price
    zero = Decimal(0)
    name = names[-1]
    # 1024 tokens, the most common minimum, only shapes the simulated split of its tokens.
    return Price(name, _provider_of(name), zero, zero, zero, zero, zero, 1024, known=False)


def _provider_of(name: str) -> Provider:
    """Whose caching an unknown model's simulated usage follows, guessed from its name."""
    if name.startswith("gemini"):
        return "google"
    if re.match(r"(?:gpt|o\d|chatgpt)", name):
        return "openai"
    return "anthropic"


def parse_usage(usage: Mapping[str, Any]) -> Usage:
    """A provider's `usage` object as billed token counts.

    Chat Completions (`prompt_tokens`), Responses (`input_tokens_details`) and Gemini's
    `usageMetadata` (`promptTokenCount`) count cached tokens inside the prompt, and Gemini's
    thinking tokens are billed as output; Anthropic's `input_tokens` excludes cache writes and
    reads, and `cache_creation` splits the writes by TTL (writes it does not cover count as
    5-minute); Bedrock's Converse (`inputTokens`) reports the same split in camel case.
    """
    if "promptTokenCount" in usage:
        prompt = _tokens(usage, "promptTokenCount")
        output = _tokens(usage, "candidatesTokenCount") + _tokens(usage, "thoughtsTokenCount")
        return _prompt_with_cached(prompt, _tokens(usage, "cachedContentTokenCount"), output)
    if "inputTokens" in usage:
        return Usage(
            uncached=_tokens(usage, "inputTokens"),
            write_5m=_tokens(usage, "cacheWriteInputTokens"),
            read=_tokens(usage, "cacheReadInputTokens"),
            output=_tokens(usage, "outputTokens"),
        )
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
    last breakpoint ends the prompt) or billed as plain input (OpenAI, Google). A prompt shorter
    than the cached prefix shares none of it; one below the model's minimum is not cached at all."""
    price = price_for(model)
    if forwarded < price.min_cache_tokens:
        return Usage(uncached=forwarded)
    read = cached_prefix if cached_prefix <= forwarded else 0
    if price.provider != "anthropic":
        return Usage(uncached=forwarded - read, read=read)
    return Usage(write_5m=forwarded - read, read=read)
