"""The store of originals: the `Store` protocol, the `StoreStats` it reports, and the rules
every backend shares (how a key is derived, how an original is packed, what a limit may be).

Compressed output names a key; the store holds the exact original under it, so whatever a
compressor elided can be retrieved. Keys are content addresses: the first 16 lowercase hex
characters (64 bits) of the SHA-256 of the text's UTF-8 bytes. Only when a different original
already holds that key does a text get a longer one (20, 24, ... characters), which is why each
entry keeps its full digest. The same text always maps to the same key, and `verify()` re-derives
every key from its content.

An original lives `ttl` seconds from its last use (a `get`, a `put` of the same text, or a
`touch` when an output naming it is forwarded). Originals and notes are stored zstd-compressed
and the store keeps at most `max_bytes` of both together, evicting the least recently used
first, whichever it is; the entry just stored stays even if it alone exceeds the cap. An
expired or evicted key leaves a tombstone (its key, digest and when it expired), so asking for
it raises `ExpiredKeyError` rather than looking unknown; tombstones go after `TOMBSTONE_TTL`.
An expired or evicted note is simply gone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import zstandard

from headroom.errors import ConfigError, StoreError

DAY = 24 * 60 * 60.0
DEFAULT_TTL = 7 * DAY
"""Seconds an original lives after its last use."""
DEFAULT_MAX_BYTES = 1 << 30
"""Compressed bytes a store holds (1 GiB) before it evicts the least recently used."""
TOMBSTONE_TTL = 30 * DAY
"""Seconds a tombstone is kept after its original expired, so the key still answers 'expired'."""
KEY_LENGTH = 16
KEY_STEP = 4
DIGEST_LENGTH = 64
ZSTD_LEVEL = 3

Clock = Callable[[], float]
"""Seconds since the epoch; `time.time` outside tests."""


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What a store holds right now."""

    keys: int
    """Keys whose original is held."""
    expired: int
    """Tombstones: keys whose original expired or was evicted."""
    original_bytes: int
    """UTF-8 size of the held originals."""
    stored_bytes: int
    """Compressed size of the held originals (`max_bytes` caps it together with the notes)."""
    location: str
    """Where the store lives: `memory://` or the SQLite file's path."""
    oldest_use: float | None
    """Last use of the least recently used held original, or None when empty."""


class Store(Protocol):
    """Holds exact originals under content-derived keys, for a while."""

    def put(self, text: str) -> str:
        """Stores `text` (or refreshes it if already held) and returns its key."""
        ...

    def get(self, key: str) -> str | None:
        """The exact original for `key`, None if unknown; raises ExpiredKeyError if expired."""
        ...

    def touch(self, keys: Iterable[str]) -> None:
        """Refreshes the last use of the held keys among `keys`; others are ignored."""
        ...

    def stats(self) -> StoreStats:
        """Counts and sizes of what the store holds."""
        ...

    def remember(self, name: str, value: str) -> None:
        """Keeps a small named note (a decision the conversation layer must replay);
        notes live `ttl` seconds from their last use (a `recall` is a use), and count their
        stored size against `max_bytes`, like originals."""
        ...

    def recall(self, name: str) -> str | None:
        """The note kept under `name`, or None when there is none (or it expired)."""
        ...

    def purge(self, everything: bool = False) -> int:
        """Drops expired originals, notes and old tombstones (or every entry); returns how many."""
        ...

    def verify(self) -> list[str]:
        """Keys whose stored original no longer hashes to them (empty when all is well)."""
        ...

    def close(self) -> None:
        """Releases the store; using it afterwards raises StoreError."""
        ...


def encode(text: str) -> bytes:
    """The UTF-8 bytes of `text`; lone surrogates (valid in JSON strings) pass through."""
    return text.encode("utf-8", "surrogatepass")


def digest_of(data: bytes) -> str:
    """The full SHA-256 of `data`, as lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def derive_key(digest: str, digest_at: Callable[[str], str | None]) -> str:
    """The key for the original with full `digest`.

    `digest_at(key)` returns the full digest already stored under `key` (held or tombstoned),
    or None if the key is free. The key is the shortest prefix of `digest`, from 16 characters
    in steps of 4, that is free or already names this same digest.
    """
    for length in range(KEY_LENGTH, DIGEST_LENGTH, KEY_STEP):
        key = digest[:length]
        if digest_at(key) in (None, digest):
            return key
    return digest


def pack(data: bytes) -> bytes:
    """`data` as one zstd frame."""
    try:
        return zstandard.compress(data, ZSTD_LEVEL)
    except zstandard.ZstdError as exc:
        raise StoreError(
            f"could not compress an original of {len(data)} bytes: {exc}. "
            "The process may be short of memory; retry with less running."
        ) from exc


def unpack(body: bytes, key: str, location: str) -> str:
    """The original text held in `body`, the zstd frame stored under `key`."""
    try:
        return zstandard.decompress(body).decode("utf-8", "surrogatepass")
    except (zstandard.ZstdError, UnicodeDecodeError) as exc:
        raise StoreError(
            f"the original under key {key} in {location} cannot be read back ({exc}). "
            "The store is damaged: run verify() to list the damaged keys, then purge them with "
            "purge(everything=True) or move the store aside to start afresh."
        ) from exc


def is_intact(key: str, digest: str, body: bytes, location: str) -> bool:
    """True if `body` unpacks to a text whose SHA-256 is `digest` and begins with `key`."""
    try:
        text = unpack(body, key, location)
    except StoreError:
        return False
    actual = digest_of(encode(text))
    return actual == digest and len(key) >= KEY_LENGTH and actual.startswith(key)


def check_limits(ttl: float, max_bytes: int) -> None:
    """Rejects a ttl or size cap no store can honour."""
    if not ttl > 0:
        raise ConfigError(
            f"store ttl must be a positive number of seconds, got {ttl!r}; "
            f"the default is {DEFAULT_TTL:.0f} (7 days)."
        )
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise ConfigError(
            f"store max_bytes must be a positive whole number of bytes, got {max_bytes!r}; "
            f"the default is {DEFAULT_MAX_BYTES} (1 GiB)."
        )


def closed_error(location: str) -> StoreError:
    """The error for using a store after `close()`."""
    return StoreError(
        f"the store at {location} is closed; open a new one with headroom.store.open_store()."
    )
