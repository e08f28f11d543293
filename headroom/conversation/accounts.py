"""The ledger kept in the store, shared by every process that uses it, and a memo of
per-message token counts.

Notes have no compare-and-swap, so no note is written by two sessions: each session's totals
live in a note of their own (a one-session `Ledger.to_dict()`), written only by the updates of
that session, and `load_ledger` merges them. Notes cannot be listed either, so session ids are
kept in `SHARDS` shard notes (a JSON list each, the shard picked by a hash of the id), which
`load_ledger` reads all of. The note names:

    ledger                          {"version": 1, "epoch": E}; absent means epoch "0"
    ledger:E:shard:NN               the ids of the sessions whose hash falls in shard NN
    ledger:E:session:ID             that session's totals

Races, and what they cost. Within a process, updates are serialised by a lock. Across
processes, two updates of one session at the same moment may lose one of them (a session's
turns come in sequence, so this is rare); two sessions of one shard that are first recorded
at the same moment may overwrite each other's shard entry, which only hides the lost session
from `load_ledger` until its next update adds it again (every update checks its shard).
Sessions of different shards never race.

`reset_ledger` starts a new epoch: every note of the old one becomes unreachable (damaged
ones included) and expires with the store's ttl, like any unused note. A note of the epoch in
use that cannot be read raises StoreError naming `headroom stats --reset`.

`TokenMemo` remembers token counts by message hash, so counting a whole history every turn
costs only the messages that are new.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from headroom import tokens
from headroom.conversation.ledger import VERSION, Ledger
from headroom.conversation.prefix import without_cache_control
from headroom.errors import ConfigError, StoreError
from headroom.store.base import Store

ROOT = "ledger"
SHARDS = 64
FIRST_EPOCH = "0"
DEFAULT_MEMO_ENTRIES = 4096
_RESET = "run `headroom stats --reset` to start a new ledger (the old totals cannot be read)"
_lock = threading.Lock()


def load_ledger(store: Store) -> Ledger:
    """Every recorded session, merged into one ledger (empty when none is recorded).

    Raises StoreError, naming `headroom stats --reset`, when a note cannot be read.
    """
    epoch = _epoch(store)
    sessions: dict[str, Any] = {}
    for shard in range(SHARDS):
        for session in _shard_ids(store, _shard_name(epoch, shard)):
            data = _session_data(store, epoch, session)
            if data is not None:  # its note expired: the session is forgotten
                sessions[session] = data["sessions"][session]
    return Ledger.from_dict({"version": VERSION, "sessions": sessions})


def update_ledger(
    store: Store,
    session: str,
    change: Callable[[Ledger], None],
    *,
    clock: Callable[[], float] = time.time,
) -> Ledger:
    """Loads `session`'s ledger, lets `change` record into it, saves it; returns it.

    `change` may record into `session` only (ConfigError otherwise, and nothing is saved);
    `clock` dates the session when this is its first record.
    """
    with _lock:
        epoch = _epoch(store)
        data = _session_data(store, epoch, session)
        ledger = Ledger(clock) if data is None else Ledger.from_dict(data, clock)
        change(ledger)
        after = ledger.to_dict()
        others = sorted(set(after["sessions"]) - {session})
        if others:
            raise ConfigError(
                f"the change recorded into sessions {others}, but update_ledger saves session "
                f"{session!r} only; update each session with its own update_ledger call"
            )
        if after["sessions"]:
            store.remember(_session_name(epoch, session), _json(after))
            _register(store, epoch, session)
        return ledger


def reset_ledger(store: Store) -> None:
    """Starts a new, empty ledger; the old notes (damaged ones too) are no longer read."""
    with _lock:
        previous = store.recall(ROOT) or ""
        epoch = hashlib.sha256(previous.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        store.remember(ROOT, _json({"version": VERSION, "epoch": epoch}))


def _register(store: Store, epoch: str, session: str) -> None:
    name = _shard_name(epoch, _shard(session))
    ids = _shard_ids(store, name)
    if session not in ids:
        store.remember(name, _json(sorted([*ids, session])))


def _epoch(store: Store) -> str:
    raw = store.recall(ROOT)
    if raw is None:
        return FIRST_EPOCH
    data = _parse(ROOT, raw)
    if (
        not isinstance(data, dict)
        or data.get("version") != VERSION
        or not isinstance(data.get("epoch"), str)
    ):
        raise _damaged(ROOT, f"{raw[:80]!r} is not a ledger root")
    epoch: str = data["epoch"]
    return epoch


def _shard_ids(store: Store, name: str) -> list[str]:
    raw = store.recall(name)
    if raw is None:
        return []
    ids = _parse(name, raw)
    if not isinstance(ids, list) or not all(isinstance(one, str) for one in ids):
        raise _damaged(name, f"{raw[:80]!r} is not a list of session ids")
    return ids


def _session_data(store: Store, epoch: str, session: str) -> dict[str, Any] | None:
    """The session's note as `Ledger.to_dict()` data, checked; None when there is none."""
    name = _session_name(epoch, session)
    raw = store.recall(name)
    if raw is None:
        return None
    data = _parse(name, raw)
    try:
        recorded = set(Ledger.from_dict(data).to_dict()["sessions"])
    except StoreError as exc:
        raise _damaged(name, repr(exc.__cause__ or exc)) from exc
    if recorded != {session}:
        raise _damaged(name, f"it holds sessions {sorted(recorded)}, not only {session!r}")
    checked: dict[str, Any] = data
    return checked


def _parse(name: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _damaged(name, f"not JSON: {exc}") from exc


def _damaged(name: str, why: str) -> StoreError:
    return StoreError(
        f"the ledger note {name!r} in the store is damaged or from another headroom version "
        f"({why}); {_RESET}"
    )


def _shard(session: str) -> int:
    digest = hashlib.sha256(session.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:4], "big") % SHARDS


def _shard_name(epoch: str, shard: int) -> str:
    return f"{ROOT}:{epoch}:shard:{shard:02d}"


def _session_name(epoch: str, session: str) -> str:
    return f"{ROOT}:{epoch}:session:{session}"


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class TokenMemo:
    """Token counts by key (a message hash), the least recently used dropped beyond
    `max_entries`; safe to share between threads."""

    def __init__(self, max_entries: int = DEFAULT_MEMO_ENTRIES) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigError(
                f"TokenMemo max_entries must be a positive whole number, got {max_entries!r}; "
                f"the default is {DEFAULT_MEMO_ENTRIES}"
            )
        self.max_entries = max_entries
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def count(self, key: str, counter: Callable[[], int]) -> int:
        """The count remembered under `key`, else `counter()`, remembered.

        `counter` runs outside the lock, so two threads missing one key at once both count it.
        """
        with self._lock:
            if key in self._counts:
                self._counts.move_to_end(key)
                return self._counts[key]
        value = counter()
        with self._lock:
            self._counts[key] = value
            self._counts.move_to_end(key)
            while len(self._counts) > self.max_entries:
                self._counts.popitem(last=False)
        return value

    def __len__(self) -> int:
        with self._lock:
            return len(self._counts)


def count_messages(
    messages: Sequence[Any], hashes: Sequence[str], model: str | None, memo: TokenMemo
) -> int:
    """The tokens of `messages` for `model`, each counted over its JSON text with
    `cache_control` set aside; `hashes[i]` names `messages[i]` (as `prefix.hash_message`
    gives it), so a message counted before, under that name, is not counted again."""
    if len(messages) != len(hashes):
        raise ConfigError(
            f"{len(messages)} messages but {len(hashes)} hashes; pass one per message"
        )
    encoding = tokens.encoding_name(model)
    return sum(
        memo.count(f"{encoding}:{name}", partial(_message_tokens, message, model))
        for message, name in zip(messages, hashes, strict=True)
    )


def _message_tokens(message: Any, model: str | None) -> int:
    text = json.dumps(without_cache_control(message), ensure_ascii=False)
    return tokens.count(text, model)
