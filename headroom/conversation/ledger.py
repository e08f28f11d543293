"""The ledger: what headroom saved, per session and in total, in tokens and in dollars.

For every turn it records the tokens the client sent, the tokens headroom forwarded, and how the
provider billed the forwarded prompt (`prices.Usage`): read from the response's `usage` when the
caller passes it (Anthropic, OpenAI Chat Completions or Responses), else simulated from the prompt
the session last forwarded to that model, which the simulation takes to be cached; a recorded
event (bust or trim) empties that simulated cache. Dollars are exact, at list prices. "Without
headroom" bills the client's own tokens with the same cache behaviour: the tokens headroom saved
in messages sent on earlier turns are added where the cached prefix was billed (read, else
written), those saved in the turn's new messages where its tail was (written, else uncached);
tools and system prompt, which headroom does not shrink, count once, as billed.

It also counts, per kind, how many payloads were compressed and how often the model retrieved
what was elided (a kind retrieved often is compressed too hard), and the events the conversation
layer reports: cache busts caused by the client, busts caused by headroom (a bug) and trims.

The ledger is thread-safe, serialises to a JSON-able dict (`to_dict` / `from_dict`) so it can be
kept in the store, and `report.render` prints it for `headroom stats`. Sessions are listed by
when they were first seen (the injected clock), then by id.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import astuple, dataclass, field, fields
from decimal import Decimal
from typing import Any, Literal

from headroom.conversation import prices
from headroom.conversation.prices import Usage, price_for
from headroom.errors import ConfigError, StoreError

EventKind = Literal["cache_bust", "headroom_bust", "recompression", "trim"]
EVENT_KINDS: tuple[EventKind, ...] = ("cache_bust", "headroom_bust", "recompression", "trim")
VERSION = 1


@dataclass(frozen=True, slots=True)
class KindStats:
    """Compressions of one kind and how often the model retrieved what they elided."""

    kind: str
    compressed: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    retrieved: int = 0

    @property
    def retrieval_rate(self) -> float | None:
        """Retrievals per compressed payload; None when none was compressed."""
        return self.retrieved / self.compressed if self.compressed else None


@dataclass(frozen=True, slots=True)
class SessionStats:
    """One session's totals (or every session's, under the id `total`)."""

    session: str
    first_seen: float
    turns: int
    simulated_turns: int
    """Turns whose usage was simulated because no `usage` was passed in."""
    sent: int
    forwarded: int
    usage: Usage
    baseline: Usage
    """What the client's own tokens would have been billed as, without headroom."""
    cost: Decimal
    baseline_cost: Decimal
    unknown_models: tuple[str, ...]
    """Models missing from the price table: their tokens are counted, their dollars are not."""
    events: dict[str, tuple[int, str]]
    """Per event kind (every one of `EVENT_KINDS`): how many, and the last one's detail."""
    kinds: tuple[KindStats, ...]


@dataclass(slots=True)
class _Bucket:
    usage: Usage = field(default_factory=Usage)
    baseline: Usage = field(default_factory=Usage)
    cached_prefix: int = 0


@dataclass(slots=True)
class _Session:
    first_seen: float
    turns: int = 0
    simulated_turns: int = 0
    sent: int = 0
    forwarded: int = 0
    models: dict[str, _Bucket] = field(default_factory=dict)
    kinds: dict[str, KindStats] = field(default_factory=dict)
    events: dict[str, tuple[int, str]] = field(default_factory=dict)


class Ledger:
    """Tokens, dollars, retrievals and events, per session; safe to share between threads."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}

    def _session(self, session: str) -> _Session:
        if session not in self._sessions:
            self._sessions[session] = _Session(first_seen=self._clock())
        return self._sessions[session]

    def record_turn(
        self,
        session: str,
        model: str,
        *,
        sent: int,
        forwarded: int,
        usage: Mapping[str, Any] | None = None,
        saved_earlier: int = 0,
    ) -> Usage:
        """Records one forwarded request and returns how it was billed (reported or simulated).
        `saved_earlier` is the part of `sent - forwarded` in messages sent on earlier turns."""
        _check_counts(sent=sent, forwarded=forwarded)
        reported = None if usage is None else prices.parse_usage(usage)
        with self._lock:
            state = self._session(session)
            bucket = state.models.setdefault(model, _Bucket())
            billed = reported or prices.simulate_usage(model, forwarded, bucket.cached_prefix)
            bucket.usage += billed
            saved = sent - forwarded
            bucket.baseline += billed.without_savings(saved_earlier, saved - saved_earlier)
            cacheable = forwarded >= price_for(model).min_cache_tokens
            bucket.cached_prefix = forwarded if cacheable else 0
            state.turns += 1
            state.simulated_turns += reported is None
            state.sent += sent
            state.forwarded += forwarded
        return billed

    def record_compression(self, session: str, kind: str, tokens_in: int, tokens_out: int) -> None:
        """Records one payload of `kind` compressed from `tokens_in` to `tokens_out` tokens."""
        _check_counts(tokens_in=tokens_in, tokens_out=tokens_out)
        with self._lock:
            self._count_kind(session, KindStats(kind, 1, tokens_in, tokens_out))

    def record_retrieval(self, session: str, kind: str) -> None:
        """Records that the model retrieved something elided from a payload of `kind`."""
        with self._lock:
            self._count_kind(session, KindStats(kind, retrieved=1))

    def _count_kind(self, session: str, stats: KindStats) -> None:
        kinds = self._session(session).kinds
        kinds[stats.kind] = _add_kinds(kinds.get(stats.kind, KindStats(stats.kind)), stats)

    def record_event(self, session: str, kind: EventKind, detail: str) -> None:
        """Records a cache bust (by the client or by headroom) or a trim; empties the simulated cache."""
        if kind not in EVENT_KINDS:
            raise ConfigError(f"event kind {kind!r} is not one of {', '.join(EVENT_KINDS)}")
        with self._lock:
            state = self._session(session)
            count, _ = state.events.get(kind, (0, ""))
            state.events[kind] = (count + 1, detail)
            for bucket in state.models.values():
                bucket.cached_prefix = 0

    def sessions(self) -> tuple[SessionStats, ...]:
        """Every session's totals, first seen first (then by id)."""
        with self._lock:
            return tuple(_stats(sid, self._sessions[sid]) for sid in self._order())

    def total(self) -> SessionStats:
        """The totals over every session, under the id `total`."""
        return _combine(self.sessions())

    def _order(self) -> list[str]:
        return sorted(self._sessions, key=lambda sid: (self._sessions[sid].first_seen, sid))

    def to_dict(self) -> dict[str, Any]:
        """The whole ledger as plain JSON-able data (`from_dict` reads it back)."""
        with self._lock:
            return {
                "version": VERSION,
                "sessions": {sid: _dump(self._sessions[sid]) for sid in self._order()},
            }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], clock: Callable[[], float] = time.time) -> Ledger:
        """A ledger from `to_dict`'s output; raises StoreError when the data is damaged."""
        ledger = cls(clock)
        try:
            if data["version"] != VERSION:
                raise ValueError(f"version {data['version']!r}, not {VERSION}")
            for sid, raw in data["sessions"].items():
                ledger._sessions[sid] = _load(raw)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError(
                f"the saved ledger is damaged or from another headroom version ({exc!r}); "
                "start a new one with Ledger(): its old totals cannot be read"
            ) from exc
        return ledger


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name} must be a non-negative token count, got {value!r}")


def _stats(session: str, state: _Session) -> SessionStats:
    usage, baseline, cost, baseline_cost = Usage(), Usage(), Decimal(0), Decimal(0)
    for model, bucket in state.models.items():
        usage, baseline = usage + bucket.usage, baseline + bucket.baseline
        cost += price_for(model).cost(bucket.usage)
        baseline_cost += price_for(model).cost(bucket.baseline)
    return SessionStats(
        session=session,
        first_seen=state.first_seen,
        turns=state.turns,
        simulated_turns=state.simulated_turns,
        sent=state.sent,
        forwarded=state.forwarded,
        usage=usage,
        baseline=baseline,
        cost=cost,
        baseline_cost=baseline_cost,
        unknown_models=tuple(sorted(m for m in state.models if not price_for(m).known)),
        events={kind: state.events.get(kind, (0, "")) for kind in EVENT_KINDS},
        kinds=tuple(state.kinds[k] for k in sorted(state.kinds)),
    )


def _combine(all_stats: Sequence[SessionStats]) -> SessionStats:
    kinds: dict[str, KindStats] = {}
    for kind in (kind for one in all_stats for kind in one.kinds):
        kinds[kind.kind] = _add_kinds(kinds.get(kind.kind, KindStats(kind.kind)), kind)
    return SessionStats(
        session="total",
        first_seen=min((one.first_seen for one in all_stats), default=0.0),
        turns=sum(one.turns for one in all_stats),
        simulated_turns=sum(one.simulated_turns for one in all_stats),
        sent=sum(one.sent for one in all_stats),
        forwarded=sum(one.forwarded for one in all_stats),
        usage=sum((one.usage for one in all_stats), Usage()),
        baseline=sum((one.baseline for one in all_stats), Usage()),
        cost=sum((one.cost for one in all_stats), Decimal(0)),
        baseline_cost=sum((one.baseline_cost for one in all_stats), Decimal(0)),
        unknown_models=tuple(sorted({m for one in all_stats for m in one.unknown_models})),
        events={k: (sum(one.events[k][0] for one in all_stats), "") for k in EVENT_KINDS},
        kinds=tuple(kinds[k] for k in sorted(kinds)),
    )


def _add_kinds(a: KindStats, b: KindStats) -> KindStats:
    return KindStats(a.kind, *(x + y for x, y in zip(astuple(a)[1:], astuple(b)[1:], strict=True)))


def _dump(state: _Session) -> dict[str, Any]:
    return {
        "first_seen": state.first_seen,
        **{name: getattr(state, name) for name in _COUNTS},
        "models": {
            model: {
                "usage": _fields_of(bucket.usage),
                "baseline": _fields_of(bucket.baseline),
                "cached_prefix": bucket.cached_prefix,
            }
            for model, bucket in sorted(state.models.items())
        },
        "kinds": {kind: _fields_of(stats, skip=1) for kind, stats in sorted(state.kinds.items())},
        "events": {
            kind: {"count": count, "last": detail}
            for kind, (count, detail) in sorted(state.events.items())
        },
    }


def _fields_of(value: Usage | KindStats, skip: int = 0) -> dict[str, int]:
    return {f.name: getattr(value, f.name) for f in fields(value)[skip:]}


_COUNTS = ("turns", "simulated_turns", "sent", "forwarded")


def _load(raw: Mapping[str, Any]) -> _Session:
    first_seen = raw["first_seen"]
    if isinstance(first_seen, bool) or not isinstance(first_seen, int | float):
        raise TypeError(f"first_seen {first_seen!r} is not a number")
    state = _Session(float(first_seen))
    state.turns, state.simulated_turns, state.sent, state.forwarded = (
        _count(raw[name]) for name in _COUNTS
    )
    for model, bucket in raw["models"].items():
        state.models[model] = _Bucket(
            _usage(bucket["usage"]), _usage(bucket["baseline"]), _count(bucket["cached_prefix"])
        )
    for kind, stats in raw["kinds"].items():
        state.kinds[kind] = KindStats(kind, *(_count(stats[f]) for f in _KIND_FIELDS))
    for kind, event in raw["events"].items():
        if kind not in EVENT_KINDS or not isinstance(event["last"], str):
            raise ValueError(f"{kind!r}: {event!r} is not an event ledger entry")
        state.events[kind] = (_count(event["count"]), event["last"])
    return state


_KIND_FIELDS = tuple(f.name for f in fields(KindStats))[1:]


def _usage(raw: Mapping[str, Any]) -> Usage:
    return Usage(*(_count(raw[f.name]) for f in fields(Usage)))


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"{value!r} is not a count")
    return value
