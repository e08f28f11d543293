"""Anthropic's prompt cache, simulated for a fake upstream: which part of a request is read
from the cache, which part is written to it, and the `usage` the API reports for it.

The prompt is a sequence of blocks in the provider's prefix order: each tool, each system
block, each message content block (a string content is one block). A block that carries
`cache_control` is a breakpoint. A breakpoint's prefix (every block up to and including it,
with all `cache_control` markers set aside, under the request's model) is written when it
reaches the minimum cacheable length, and lives for its TTL (5 minutes, or 1 hour for
`"ttl": "1h"`) from its last use. A lookup from a breakpoint tries that prefix and the
prefixes ending at each of the 20 blocks before it, longest first; the longest hit over all
breakpoints is the cache read. Then, as the API reports it:

    cache_read_input_tokens      the prefix found in the cache
    cache_creation_input_tokens  from there up to the last breakpoint that can be cached
    input_tokens                 everything after that: the uncached tail

Tokens are counted with headroom's o200k counter on each block's JSON with sorted keys: an
estimate of Claude's own tokenizer, but deterministic, which is what the tests compare. The
cache key is stricter: it keeps the client's key order, so reordered keys are a miss.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from headroom import tokens

LOOK_BACK_BLOCKS = 20
MIN_CACHEABLE_TOKENS = 1024
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


@dataclass(frozen=True)
class Block:
    """One place of the prompt: its text as sent (markers set aside), the breakpoint TTL it
    carries, and its token count."""

    text: str
    ttl: str | None
    tokens: int


def without_cache_control(value: Any) -> Any:
    """A copy of a JSON value with every `cache_control` key removed, at any depth."""
    if isinstance(value, dict):
        return {k: without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [without_cache_control(item) for item in value]
    return value


def _ttl(block: Any) -> str | None:
    """The TTL of the breakpoint a block (or a block inside a tool result) carries."""
    if not isinstance(block, dict):
        return None
    inner = block.get("content") if block.get("type") == "tool_result" else None
    marked = [block, *(inner if isinstance(inner, list) else [])]
    for place in marked:
        if isinstance(place, dict) and isinstance(place.get("cache_control"), dict):
            return "1h" if place["cache_control"].get("ttl") == "1h" else "5m"
    return None


def _block(place: dict[str, Any], ttl: str | None) -> Block:
    """A block keyed by its JSON in the client's key order (a reordered key is another
    prompt), counted on its sorted JSON (the same content costs the same tokens)."""
    bare = without_cache_control(place)
    text = json.dumps(bare, ensure_ascii=False)
    return Block(text, ttl, tokens.count(json.dumps(bare, ensure_ascii=False, sort_keys=True)))


def prompt_blocks(body: dict[str, Any]) -> list[Block]:
    """The request's blocks in prefix order (tools, system, messages)."""
    result = [_block({"tool": tool}, _ttl(tool)) for tool in body.get("tools") or []]
    system = body.get("system")
    if isinstance(system, str) and system:
        result.append(_block({"system": system}, None))
    elif isinstance(system, list):
        result += [_block({"system": part}, _ttl(part)) for part in system]
    for index, message in enumerate(body.get("messages") or []):
        content = message.get("content")
        parts = [content] if isinstance(content, str) else content
        result += [
            _block({"message": index, "role": message.get("role"), "part": part}, _ttl(part))
            for part in parts
        ]
    return result


@dataclass
class PromptCache:
    """The cache entries of one fake API (one organisation), by prefix hash."""

    clock: Callable[[], float] = time.monotonic
    entries: dict[str, float] = field(default_factory=dict)
    """Prefix hash -> the time it expires."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def usage(self, body: dict[str, Any]) -> dict[str, Any]:
        """The input side of `usage` for a Messages request, updating the cache as the API
        does (hits refreshed, breakpoint prefixes written)."""
        blocks = prompt_blocks(body)
        cumulative = list(accumulate(block.tokens for block in blocks))
        hashes = _prefix_hashes(str(body.get("model")), blocks)
        marks = [i for i, block in enumerate(blocks) if block.ttl is not None]
        with self.lock:
            now = self.clock()
            hit = max((self._lookup(hashes, mark, now) for mark in marks), default=-1)
            read = cumulative[hit] if hit >= 0 else 0
            written = {"5m": 0, "1h": 0}
            end = hit
            for mark in marks:
                ttl = blocks[mark].ttl or "5m"
                if cumulative[mark] >= MIN_CACHEABLE_TOKENS:
                    self.entries[hashes[mark]] = now + TTL_SECONDS[ttl]
                    if mark > end:
                        written[ttl] += cumulative[mark] - (cumulative[end] if end >= 0 else 0)
                        end = mark
            if hit >= 0:
                self.entries[hashes[hit]] = max(self.entries[hashes[hit]], now + TTL_SECONDS["5m"])
        creation = written["5m"] + written["1h"]
        return {
            "input_tokens": (cumulative[-1] if blocks else 0) - read - creation,
            "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": written["5m"],
                "ephemeral_1h_input_tokens": written["1h"],
            },
        }

    def _lookup(self, hashes: list[str], mark: int, now: float) -> int:
        """The longest cached prefix within the look-back window of a breakpoint, or -1."""
        for index in range(mark, max(mark - LOOK_BACK_BLOCKS, 0) - 1, -1):
            if self.entries.get(hashes[index], 0.0) > now:
                return index
        return -1


def _prefix_hashes(model: str, blocks: list[Block]) -> list[str]:
    """The hash of each prefix: a chain over the model and the blocks' canonical text."""
    current = hashlib.sha256(model.encode()).hexdigest()
    result = []
    for block in blocks:
        current = hashlib.sha256(f"{current}\n{block.text}".encode()).hexdigest()
        result.append(current)
    return result


def total_tokens(body: dict[str, Any]) -> int:
    """The request's input tokens, as `count_tokens` reports them."""
    return sum(block.tokens for block in prompt_blocks(body))
