"""The one-call library: `compress(messages)` and `retrieve(key)`.

`compress` reads a conversation (Anthropic or OpenAI shape), compresses each tool result
through the pipeline and returns the same conversation with smaller payloads, plus what it
did. `retrieve` gives back an original, whole or a slice of it, by the key a marker names.
The store is opened once per process from the settings (the SQLite file by default).
"""

from __future__ import annotations

import re
import re._constants as sre_constants  # type: ignore[import-not-found]  # to vet a pattern
import re._parser as sre_parser  # type: ignore[import-not-found]
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from headroom import tokens
from headroom.config import DAY, Settings
from headroom.conversation.accounts import update_ledger
from headroom.conversation.live_zone import compress_turn, origin
from headroom.errors import ConfigError, StoreError
from headroom.pipeline import Transform
from headroom.store import Store, open_store

_stores: dict[tuple[str, float, int], Store] = {}
_stores_lock = threading.Lock()


@dataclass(frozen=True)
class CompressResult:
    """A compressed conversation and what was done to it. Token counts are computed on
    first use with the model's encoding (o200k for Claude models: an estimate)."""

    messages: list[Any]
    transforms: list[Transform]
    model: str | None
    original: Sequence[Any]

    @cached_property
    def tokens_before(self) -> int:
        return _count_messages(self.original, self.model)

    @cached_property
    def tokens_after(self) -> int:
        return _count_messages(self.messages, self.model)

    @property
    def tokens_saved(self) -> int:
        return self.tokens_before - self.tokens_after

    @property
    def compression_ratio(self) -> float:
        """tokens_after / tokens_before (1.0 when nothing was there to count)."""
        return self.tokens_after / self.tokens_before if self.tokens_before else 1.0


def store_for(settings: Settings) -> Store:
    """The process-wide store for these settings, opened on first use."""
    url = settings.store_url()
    ttl, max_bytes = settings.ttl_days * DAY, settings.max_store_mb * 1 << 20
    with _stores_lock:
        if (url, ttl, max_bytes) not in _stores:
            _stores[url, ttl, max_bytes] = open_store(url, ttl=ttl, max_bytes=max_bytes)
        return _stores[url, ttl, max_bytes]


def compress(
    messages: Sequence[Any],
    model: str | None = None,
    config: Settings | None = None,
    session: str | None = None,
) -> CompressResult:
    """Compress the tool results of a conversation; raises InvalidMessagesError on bad shapes.

    Called every turn with the full history, it returns the same bytes for every payload it
    compressed (or left alone) before, and compresses only what is new. `session` names the
    conversation; by default it is derived from the first user message, so conversations that
    open alike share a name: harmless, since a decision is replayed only where the history up
    to the payload is the same.
    """
    settings = config or Settings.from_env()
    turn = compress_turn(messages, store_for(settings), settings, model=model, session=session)
    return CompressResult(turn.messages, turn.transforms, model, list(messages))


def retrieve(
    key: str, lines: str | None = None, grep: str | None = None, config: Settings | None = None
) -> str | None:
    """The original for a key, or the slice asked for; None for an unknown key.

    `lines="120-180"` gives those lines (1-based, inclusive); `grep="pattern"` gives the
    lines matching a regular expression, each prefixed with its line number.
    Raises ExpiredKeyError for a key whose original has expired.
    """
    return retrieve_from(store_for(config or Settings.from_env()), key, lines, grep)


def retrieve_from(
    store: Store, key: str, lines: str | None = None, grep: str | None = None
) -> str | None:
    """`retrieve` against a given store (the proxy's, say); the retrieval is counted in the
    ledger against the session and kind that stored the key."""
    key = key.strip().lower()
    text = store.get(key)
    if text is None:
        return None
    first = 1
    if lines:
        first, last = line_range(text, lines)
        text = "\n".join(text.split("\n")[first - 1 : last])
    if grep:
        text = grep_lines(text, grep, first=first)
    _count_retrieval(store, key)
    return text


def _count_retrieval(store: Store, key: str) -> None:
    """Counts a retrieval against the session and kind that stored the key; statistics
    never stand between a caller and its original, so a store failure here is ignored."""
    try:
        source = origin(store, key)
        if source is not None:
            session, kind = source
            update_ledger(store, session, lambda ledger: ledger.record_retrieval(session, kind))
    except StoreError:
        pass


def slice_lines(text: str, spec: str) -> str:
    """Lines A-B (1-based, inclusive; `A-` to the end, `A` alone for one line)."""
    first, last = line_range(text, spec)
    return "\n".join(text.split("\n")[first - 1 : last])


def line_range(text: str, spec: str) -> tuple[int, int]:
    """The first and last line numbers (1-based, inclusive) a `lines` spec names in text."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d*)\s*)?", spec)
    if not match:
        raise ConfigError(f"lines={spec!r} is not a range; write it as A-B, e.g. lines=120-180")
    first = max(int(match.group(1)), 1)
    last_text = match.group(2)
    count = text.count("\n") + 1
    last = int(last_text) if last_text else (count if match.group(0).count("-") else first)
    if last < first:
        raise ConfigError(f"lines={spec!r} ends before it starts; write it as A-B with A <= B")
    return first, last


def grep_lines(text: str, pattern: str, first: int = 1) -> str:
    """The lines matching pattern, as `N:line`; N is the line's number, `first` that of
    text's first line (a slice's lines keep the original's numbers)."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"grep={pattern!r} is not a valid regular expression: {exc}") from None
    if _nests_unbounded_repeats(sre_parser.parse(pattern), inside=False):
        # Python's re has no timeout: a pattern like (a+)+ can backtrack for hours on one line,
        # and the model writes these patterns.
        raise ConfigError(
            f"grep={pattern!r} repeats a repeat (like (a+)+), which can run for hours; "
            "write it without the outer repeat, e.g. a+ or (ab)+"
        )
    return "\n".join(
        f"{number}:{line}"
        for number, line in enumerate(text.split("\n"), first)
        if compiled.search(line)
    )


_REPEATS = (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT)


def _nests_unbounded_repeats(items: Any, inside: bool) -> bool:
    """Whether a parsed pattern has an unbounded repeat within an unbounded repeat."""
    for op, argument in items:
        if op in _REPEATS:
            _, most, sub = argument
            unbounded = most == sre_constants.MAXREPEAT
            if (unbounded and inside) or _nests_unbounded_repeats(sub, inside or unbounded):
                return True
            continue
        for part in argument if isinstance(argument, tuple) else ():
            for sub in part if isinstance(part, list) else [part]:  # a branch lists its arms
                if isinstance(sub, sre_parser.SubPattern) and _nests_unbounded_repeats(sub, inside):
                    return True
    return False


def _count_messages(messages: Sequence[Any], model: str | None) -> int:
    return sum(tokens.count(text, model) for text in _texts(messages))


_NOT_READ = frozenset(
    ("id", "tool_use_id", "tool_call_id", "type", "role", "source", "image_url", "input_audio")
)
"""Keys whose values the model does not read as text: ids, and media (images are billed by
size, not by their base64 characters)."""


def _texts(value: Any) -> list[str]:
    """Every string in a message structure: what the model reads, approximately."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for key, item in value.items() if key not in _NOT_READ for t in _texts(item)]
    if isinstance(value, list | tuple):
        return [t for item in value for t in _texts(item)]
    return []
