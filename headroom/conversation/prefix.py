"""The per-session prefix tracker: what was sent before, and what changed since.

Each turn, every message is reduced to a hash of its canonical form (its JSON with
`cache_control` set aside, since clients move those every turn) and of each content block.
The record of the previous turn, kept as a note in the store, tells how many leading
messages the client sent before (the frozen prefix) and, comparing what headroom forwarded
this turn with last turn, whether a cached prefix changed: a cache bust, blamed on the client
(it edited an old message) or on headroom (it forwarded an old message differently: a bug).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from headroom.errors import StoreError
from headroom.store.base import Store

_HASH = 16
_LONG = 1024


@dataclass(frozen=True, slots=True)
class MessageHash:
    whole: str
    blocks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Record:
    """One turn as the tracker keeps it."""

    client: tuple[MessageHash, ...]
    forwarded: tuple[str, ...]


TOKEN_MODE = "token mode"
"""Who changed a cached prefix when token mode recompressed the history."""


@dataclass(frozen=True, slots=True)
class BustEvent:
    """A cached prefix that changed: where, and who changed it."""

    session: str
    message: int
    block: int | None
    by: str
    """"client" (it rewrote an old message), "headroom" (a bug: counted separately) or
    TOKEN_MODE (token mode recompressed history, as it may: its cost is in the bill)."""

    def describe(self) -> str:
        where = f"messages[{self.message}]" + (
            f".content[{self.block}]" if self.block is not None else ""
        )
        return f"{where} changed by {self.by}"


def without_cache_control(value: Any) -> Any:
    """A copy of a message structure with every `cache_control` key set aside."""
    if isinstance(value, Mapping):
        return {k: without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list | tuple):
        return [without_cache_control(item) for item in value]
    return value


def digest(value: Any) -> str:
    """A short hash of a value's canonical JSON (cache_control set aside)."""
    text = json.dumps(_hashable(value), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return _sha(text)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH]


def _hashable(value: Any) -> Any:
    """`without_cache_control`, with long strings replaced by their hash: hashing a payload
    directly is cheaper than escaping it into JSON first."""
    if isinstance(value, str):
        return value if len(value) < _LONG else "sha256:" + _sha(value)
    if isinstance(value, Mapping):
        return {k: _hashable(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list | tuple):
        return [_hashable(item) for item in value]
    return value


def hash_message(message: Mapping[str, Any]) -> MessageHash:
    """The message's hash and its blocks'; the message hash covers the block hashes, so each
    block's text is serialised once."""
    content = message.get("content")
    if not isinstance(content, list):
        return MessageHash(digest(message), ())
    blocks = tuple(digest(block) for block in content)
    return MessageHash(digest({**message, "content": list(blocks)}), blocks)


def identity(client: Sequence[MessageHash], message: int, block: int) -> str:
    """The hash of a content block of the client's messages, or of the whole message when
    `block` is -1 (string content, or an OpenAI tool message)."""
    hashes = client[message]
    return hashes.blocks[block] if block >= 0 and hashes.blocks else hashes.whole


def load(store: Store, session: str) -> Record | None:
    raw = store.recall(f"prefix:{session}")
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        client = tuple(MessageHash(whole, tuple(blocks)) for whole, blocks in data["client"])
        return Record(client, tuple(data["forwarded"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(
            f"the prefix record of session {session!r} is damaged ({exc}); "
            "it is rebuilt on the next turn once `headroom store purge --all` clears it"
        ) from exc


def save(store: Store, session: str, record: Record) -> None:
    data = {
        "client": [[m.whole, list(m.blocks)] for m in record.client],
        "forwarded": list(record.forwarded),
    }
    store.remember(f"prefix:{session}", json.dumps(data, separators=(",", ":")))


def frozen_count(previous: Record | None, client: Sequence[MessageHash]) -> int:
    """How many leading messages the client sent unchanged in the previous turn."""
    if previous is None:
        return 0
    count = 0
    for old, new in zip(previous.client, client, strict=False):
        if old.whole != new.whole:
            break
        count += 1
    return count


def busts(
    session: str,
    previous: Record | None,
    client: Sequence[MessageHash],
    forwarded: Sequence[str],
) -> list[BustEvent]:
    """Cache-bust events between the previous turn and this one."""
    if previous is None:
        return []
    frozen = frozen_count(previous, client)
    events = [
        BustEvent(session, index, None, "headroom")
        for index in range(min(frozen, len(previous.forwarded), len(forwarded)))
        if previous.forwarded[index] != forwarded[index]
    ]
    if frozen < min(len(previous.client), len(client)):
        old, new = previous.client[frozen], client[frozen]
        if old.blocks and new.blocks[: len(old.blocks)] == old.blocks:
            return events  # blocks appended after the cached ones: the prefix still holds
        block = next(
            (i for i, (a, b) in enumerate(zip(old.blocks, new.blocks, strict=False)) if a != b),
            min(len(old.blocks), len(new.blocks)) if old.blocks or new.blocks else None,
        )
        events.append(BustEvent(session, frozen, block, "client"))
    return events
