"""The sessions benchmark: multi-turn conversations replayed turn by turn, as a client sends
them (each turn resends the whole, uncompressed history plus one new tool result).

Sessions come from a corpus's `trajectory` payloads (real agent runs: each step's command and
its output) and from the other payloads of each kind in sequence. Each session is replayed
three ways: straight through (no headroom), in `cache` mode (with a process restart half-way:
the store is closed and reopened from its file) and in `token` mode. The bill follows
Anthropic prompt caching with the breakpoint on the newest message, as coding agents place it:
the prefix shared with the previous request is read (0.1x), the rest written (1.25x), output
ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headroom import tokens
from headroom.bench.corpus import load_manifest
from headroom.config import Settings
from headroom.conversation import prefix
from headroom.conversation.live_zone import compress_turn
from headroom.store import open_store
from headroom.store.base import Store

READ, WRITE = 0.1, 1.25
Step = tuple[str, str]
"""A tool call's command and its output."""


@dataclass(frozen=True)
class Session:
    name: str
    question: str
    steps: list[Step]


@dataclass
class Replay:
    """One session replayed one way."""

    tokens_sent: int = 0
    tokens_forwarded: int = 0
    stable_turns: int = 0
    compared_turns: int = 0
    turns: int = 0
    headroom_busts: int = 0
    bill: float = 0.0


@dataclass
class SessionResult:
    name: str
    turns: int
    direct: Replay
    cache: Replay
    token: Replay


def load_sessions(corpus: Path) -> list[Session]:
    """Sessions from the trajectories, then one per other kind from its payloads in order."""
    records = load_manifest(corpus)
    sessions = [
        _trajectory(corpus / r["file"], r["name"]) for r in records if r["kind"] == "trajectory"
    ]
    kinds = sorted({r["kind"] for r in records} - {"trajectory"})
    for kind in kinds:
        mine = [r for r in records if r["kind"] == kind]
        steps = [(f"cat {r['file']}", _read(corpus / r["file"])) for r in mine]
        sessions.append(Session(f"{kind} sequence", mine[0].get("question", ""), steps))
    return [s for s in sessions if s.steps]


def _read(path: Path) -> str:
    with path.open(encoding="utf-8", newline="") as handle:
        return handle.read()


def _trajectory(path: Path, name: str) -> Session:
    data = json.loads(_read(path))
    if isinstance(data, dict):  # SWE-agent: steps with an action and its observation
        history = data.get("history") or []
        question = next((_text(m.get("content")) for m in history if m.get("role") == "user"), "")
        steps = [
            (str(s.get("action", "")), str(s.get("observation", "")))
            for s in data.get("trajectory") or []
        ]
        return Session(name, question, steps)
    question = next((_text(m.get("content")) for m in data if m.get("role") == "user"), "")
    calls = {
        call.get("id"): json.dumps(call.get("function", {}).get("arguments", ""))
        for m in data if m.get("role") == "assistant" for call in m.get("tool_calls") or []
    }  # fmt: skip
    steps = [
        (calls.get(m.get("tool_call_id"), "tool"), _text(m.get("content")))
        for m in data
        if m.get("role") == "tool"
    ]
    return Session(name, question, steps)


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


def histories(session: Session) -> Iterator[list[dict[str, Any]]]:
    """What the client sends each turn: the whole history plus the newest tool result."""
    history: list[dict[str, Any]] = [{"role": "user", "content": session.question or "Help me."}]
    for number, (command, output) in enumerate(session.steps):
        call_id = f"toolu_{number:04d}"
        history.append(
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": call_id,
                        "name": "Bash",
                        "input": {"command": command},
                    }
                ],
            }
        )
        history.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call_id, "content": output}]})  # fmt: skip
        yield list(history)


class _Meter:
    """Counts tokens per distinct message once, and bills each request against the last."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._previous: list[str] = []

    def bill(self, messages: list[Any], replay: Replay) -> int:
        hashes = [prefix.digest(m) for m in messages]
        counts = [self._count(h, m) for h, m in zip(hashes, messages, strict=True)]
        shared = 0
        for old, new in zip(self._previous, hashes, strict=False):
            if old != new:
                break
            shared += 1
        cached = sum(counts[:shared])
        replay.bill += READ * cached + WRITE * (sum(counts) - cached)
        if self._previous:
            replay.compared_turns += 1
            replay.stable_turns += shared >= len(self._previous)
        self._previous = hashes
        return sum(counts)

    def _count(self, digest: str, message: Any) -> int:
        if digest not in self._counts:
            self._counts[digest] = tokens.count(json.dumps(message, ensure_ascii=False))
        return self._counts[digest]


def replay(session: Session, home: Path) -> SessionResult:
    """The session three ways: direct, cache mode (restarted half-way) and token mode."""
    direct, cache, token = Replay(), Replay(), Replay()
    meters = {id(r): _Meter() for r in (direct, cache, token)}
    sent = _Meter()
    db = f"sqlite:///{home / 'sessions.db'}"
    store: Store = open_store(db)
    token_store = open_store("memory://")
    all_turns = list(histories(session))
    for number, history in enumerate(all_turns):
        if number == len(all_turns) // 2:  # a restart: only the store's file survives
            store.close()
            store = open_store(db)
        client_tokens = sent.bill(history, Replay())
        for result, into in (
            (None, direct),
            (compress_turn(history, store, Settings(mode="cache"), session=session.name), cache),
            (
                compress_turn(history, token_store, Settings(mode="token"), session=session.name),
                token,
            ),
        ):
            forwarded = history if result is None else result.messages
            into.tokens_sent += client_tokens
            into.tokens_forwarded += meters[id(into)].bill(forwarded, into)
            into.turns += 1
            if result is not None:
                into.headroom_busts += sum(1 for e in result.busts if e.by == "headroom")
    store.close()
    return SessionResult(session.name, len(all_turns), direct, cache, token)


def run(
    corpus: Path, home: Path, progress: Callable[[list[Session]], Iterator[Session]] | None = None
) -> list[SessionResult]:
    sessions = load_sessions(corpus)
    items = progress(sessions) if progress else iter(sessions)
    results = []
    for index, session in enumerate(items):
        folder = home / f"s{index}"
        folder.mkdir(parents=True, exist_ok=True)
        results.append(replay(session, folder))
    return results


def table(results: list[SessionResult]) -> str:
    """Per session and overall: tokens, prefix stability, busts, and the three bills."""
    lines = [
        "| session | turns | tokens sent | forwarded (cache) | stable prefix (cache) | headroom busts | bill direct | bill cache | bill token | cache vs direct |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    total = SessionResult("all sessions", 0, Replay(), Replay(), Replay())
    for r in results:
        lines.append(_row(r))
        total.turns += r.turns
        for mine, theirs in (
            (total.direct, r.direct),
            (total.cache, r.cache),
            (total.token, r.token),
        ):
            for field in (
                "tokens_sent",
                "tokens_forwarded",
                "stable_turns",
                "compared_turns",
                "turns",
                "headroom_busts",
                "bill",
            ):
                setattr(mine, field, getattr(mine, field) + getattr(theirs, field))
    lines.append(_row(total))
    lines.append("\nBills in input-token units (1x input, 1.25x cache write, 0.1x cache read); "
                 "stable prefix = turns whose forwarded history began with the previous turn's, byte for byte.")  # fmt: skip
    return "\n".join(lines)


def _row(r: SessionResult) -> str:
    stable_of = max(r.cache.compared_turns, 1)
    saving = 100 * (1 - r.cache.bill / r.direct.bill) if r.direct.bill else 0.0
    return (
        f"| {r.name} | {r.turns} | {r.cache.tokens_sent:,} | {r.cache.tokens_forwarded:,} | "
        f"{100 * r.cache.stable_turns / stable_of:.0f}% | {r.cache.headroom_busts} | "
        f"{r.direct.bill:,.0f} | {r.cache.bill:,.0f} | {r.token.bill:,.0f} | {saving:.1f}% lower |"
    )
