"""Compress only what is new, and replay every earlier decision byte for byte.

Agents resend the whole, uncompressed history every turn. A compression decision for a
payload is taken once, when the payload is first seen, and kept as a note in the store
(keyed by the session, the payload's place in the conversation, its content and everything
before it), so a later turn, a new question or a restarted process forwards the same bytes.
Payloads in messages the client already sent in an earlier turn are never compressed for the
first time: that would rewrite what the provider has cached.

In `token` mode every payload is compressed afresh with the current question (maximum
savings; the cache cost shows in the ledger).

A turn may carry a deadline (the proxy's `compress_timeout_ms`). A thread cannot be stopped
from outside, so the deadline is checked between payloads: a payload not yet decided when it
has passed is forwarded as it came, and that decision is kept like any other, so later turns
forward the same bytes. Earlier decisions are replayed whatever the time.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from headroom import messages as conversation
from headroom.config import Settings
from headroom.conversation import prefix
from headroom.errors import StoreError
from headroom.pipeline import Request, Transform, compress_payload
from headroom.store.base import Store

OVER_DEADLINE = "compression deadline passed"
"""Why a payload was forwarded as it came when the turn's deadline had passed."""


@dataclass(frozen=True)
class Turn:
    """One turn's forwarded messages and what was done to get them."""

    session: str
    messages: list[Any]
    transforms: list[Transform]
    frozen: int
    """Leading messages the client had sent in an earlier turn."""
    busts: list[prefix.BustEvent]
    client: tuple[prefix.MessageHash, ...]
    """The hashes of the client's messages (cache_control set aside)."""
    forwarded: tuple[str, ...]
    """The hashes of `messages`, the client's with the payloads replaced."""
    query: str
    """The latest user question of the conversation."""


def session_id(messages: Sequence[Any], system: Any = None) -> str:
    """A session named by its system prompt and first user message."""
    first_user = next((m for m in messages if m.get("role") == "user"), None)
    return prefix.digest([system, first_user])


def compress_turn(
    messages: Sequence[Any],
    store: Store,
    settings: Settings,
    *,
    model: str | None = None,
    session: str | None = None,
    system: Any = None,
    deadline: float | None = None,
) -> Turn:
    """Compress one turn of a session: new payloads once, earlier ones replayed; none for the
    first time once `deadline` (a `time.monotonic()` value) has passed.

    If the store fails (unreachable, damaged notes), the turn fails open: the messages go
    through as the client sent them, each payload marked as skipped with the reason."""
    found = conversation.read(messages)
    try:
        return _turn(messages, found, store, settings, model, session, system, deadline)
    except StoreError as exc:
        skipped = [
            Transform(
                p.location,
                "unknown",
                skipped="store unavailable",
                error=str(exc),
                model=model,
                original=p.text,
                output=p.text,
            )
            for p in found.payloads
        ]
        name = session or session_id(messages, system)
        hashes = tuple(prefix.hash_message(m) for m in messages)
        wholes = tuple(h.whole for h in hashes)
        return Turn(name, list(messages), skipped, 0, [], hashes, wholes, found.query)


def _turn(
    messages: Sequence[Any],
    found: conversation.Conversation,
    store: Store,
    settings: Settings,
    model: str | None,
    session: str | None,
    system: Any,
    deadline: float | None,
) -> Turn:
    name = session or session_id(messages, system)
    client = [prefix.hash_message(m) for m in messages]
    previous = prefix.load(store, name)
    frozen = prefix.frozen_count(previous, client)
    chains = _chains(client)
    identities = [_identity(payload, client, chains) for payload in found.payloads]
    transforms = _decisions(found, identities, frozen, name, store, settings, model, deadline)
    replacements = {t.location: t.output for t in transforms if t.skipped is None}
    forwarded = conversation.write(messages, replacements)
    forwarded_hashes = tuple(
        mine.whole if sent is original else prefix.hash_message(sent).whole
        for sent, original, mine in zip(forwarded, messages, client, strict=True)
    )  # an untouched message is the client's own object: its hash is known
    events = prefix.busts(name, previous, client, forwarded_hashes)
    if settings.mode == "token":  # its rewrites are what it is for, not a bug
        events = [replace(e, by=prefix.TOKEN_MODE) if e.by == "headroom" else e for e in events]
    prefix.save(store, name, prefix.Record(tuple(client), forwarded_hashes))
    return Turn(
        name, forwarded, transforms, frozen, events, tuple(client), forwarded_hashes, found.query
    )


def _chains(client: Sequence[prefix.MessageHash]) -> list[str]:
    """For each message, a hash of every message before it."""
    chains, running = [], hashlib.sha256()
    for message in client:
        chains.append(running.hexdigest())
        running.update(message.whole.encode())
    return chains


def _identity(
    payload: conversation.Payload, client: Sequence[prefix.MessageHash], chains: Sequence[str]
) -> str:
    """The identity of a payload: the hash of the block holding it (of its message, for
    OpenAI) and of everything before it. Two conversations that share their opening (and so a
    derived session name) share a decision only where they are the same conversation up to
    the payload, with the same edits before it and the same question asked."""
    index = payload.location[0]
    block = payload.location[1] if len(payload.location) > 2 else -1
    before = client[index].blocks[:block] if block >= 0 else ()
    return prefix.digest([chains[index], *before, prefix.identity(client, index, block)])


def _decisions(
    found: conversation.Conversation,
    identities: Sequence[str],
    frozen: int,
    session: str,
    store: Store,
    settings: Settings,
    model: str | None,
    deadline: float | None,
) -> list[Transform]:
    """Each payload's transform: earlier decisions replayed, the keys their outputs name
    touched in one go before anything new is stored, then new payloads decided in order."""
    payloads = found.payloads
    if settings.mode == "token":
        return [
            _decide(payload, found.query, frozen, session, store, settings, model, deadline)
            for payload in payloads
        ]
    notes = [
        _note_name(session, p, identity) for p, identity in zip(payloads, identities, strict=True)
    ]
    replayed = [
        None if raw is None else _replay(raw, payload, model)
        for payload, raw in zip(payloads, [store.recall(note) for note in notes], strict=True)
    ]
    used = [key for transform in replayed if transform is not None for key in transform.keys]
    if used:
        store.touch(used)  # forwarding an output that names keys is a use of them
    transforms = []
    for payload, note, transform in zip(payloads, notes, replayed, strict=True):
        if transform is None:
            transform = _decide(
                payload, found.query, frozen, session, store, settings, model, deadline
            )
            store.remember(note, _encode(transform))
        transforms.append(transform)
    return transforms


def _decide(
    payload: conversation.Payload,
    query: str,
    frozen: int,
    session: str,
    store: Store,
    settings: Settings,
    model: str | None,
    deadline: float | None,
) -> Transform:
    """A payload without a remembered decision (every payload, in token mode): compressed,
    or forwarded as it came when the client sent it in an earlier turn (cache mode) or the
    deadline has passed."""
    if settings.mode != "token" and payload.location[0] < frozen:
        return _as_is(payload, "sent in an earlier turn", model)
    if deadline is not None and time.monotonic() > deadline:
        return _as_is(payload, OVER_DEADLINE, model)
    request = Request(
        payload.text, payload.hints, query, payload.location, payload.ranged_read, payload.edited
    )
    return remember_origin(compress_payload(request, store, settings, model), session, store)


def _as_is(payload: conversation.Payload, reason: str, model: str | None) -> Transform:
    """A payload forwarded as it came, and why."""
    return Transform(payload.location, "unknown", skipped=reason, model=model,
                     original=payload.text, output=payload.text)  # fmt: skip


def remember_origin(transform: Transform, session: str, store: Store) -> Transform:
    """Notes which session and kind each key of the output came from (the original's and
    those of parts stored on their own), so their retrievals can be counted."""
    for key in transform.keys:
        store.remember(f"origin:{key}", json.dumps([session, transform.kind]))
    return transform


def origin(store: Store, key: str) -> tuple[str, str] | None:
    """The session and kind whose compression stored `key`, if known."""
    raw = store.recall(f"origin:{key}")
    if raw is None:
        return None
    try:
        session, kind = json.loads(raw)
    except (ValueError, TypeError):
        return None  # only statistics hang on it: a damaged note counts as unknown
    return str(session), str(kind)


def _note_name(session: str, payload: conversation.Payload, identity: str) -> str:
    place = json.dumps([session, list(payload.location), identity])
    return "decision:" + hashlib.sha256(place.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _encode(transform: Transform) -> str:
    compressed = transform.skipped is None
    return json.dumps(
        {
            "kind": transform.kind,
            "language": transform.language,
            "keys": list(transform.keys),
            "skipped": transform.skipped,
            "error": transform.error,
            "output": transform.output if compressed else None,
        },
        ensure_ascii=False,
    )


def _replay(raw: str, payload: conversation.Payload, model: str | None) -> Transform:
    try:
        data = json.loads(raw)
        keys = tuple(str(key) for key in data["keys"])
        output = payload.text if data["output"] is None else str(data["output"])
        transform = Transform(payload.location, data["kind"], data["language"], keys,
                              data["skipped"], data["error"], model, payload.text, output,
                              replayed=True)  # fmt: skip
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"a remembered decision is damaged ({exc})") from exc
    return transform
