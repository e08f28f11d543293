"""The sessions benchmark: multi-turn conversations replayed turn by turn, as a client sends
them (each turn resends the whole, uncompressed history plus one new tool result, or the user's
follow-up question).

Sessions come from a corpus's `trajectory` payloads (real agent runs: each step's command and
its output, and the user's own follow-ups where the run has them) and from the other payloads
of each kind in sequence, each asked with its own question. A SWE-agent run has no follow-ups
of its own, so the corpus's question about it is asked half-way, as a user checking in would.
Follow-ups are what set the modes apart: `cache` mode replays every earlier decision, `token`
mode recompresses the whole history for the new question and pays the cache rewrite.

Each session is replayed three ways: straight through (no headroom), in `cache` mode (with a
process restart half-way: the store is closed and reopened from its file) and in `token` mode.
The bill follows Anthropic prompt caching with the breakpoint on the newest message, as coding
agents place it: the prefix shared with the previous request is read (0.1x), the rest written
(1.25x), output ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
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
ANSWER = "Here is what I found so far."
"""The assistant's reply before a follow-up question (its text does not matter to the bill)."""


@dataclass(frozen=True)
class Step:
    """A tool call's command and its output, and the user's question asked before it, if any."""

    command: str
    output: str
    question: str = ""


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
    cache_writes: int = 0
    """Tokens billed as cache writes (1.25x)."""
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
        _trajectory(corpus / r["file"], r["name"], r.get("question", ""))
        for r in records
        if r["kind"] == "trajectory"
    ]
    kinds = sorted({r["kind"] for r in records} - {"trajectory"})
    for kind in kinds:
        mine = [r for r in records if r["kind"] == kind]
        first = mine[0].get("question", "")
        steps, asked = [], first
        for r in mine:
            question = r.get("question", "") or asked
            follow_up = question if question != asked else ""
            steps.append(Step(f"cat {r['file']}", _read(corpus / r["file"]), follow_up))
            asked = question
        sessions.append(Session(f"{kind} sequence", first, steps))
    return [s for s in sessions if s.steps]


def _read(path: Path) -> str:
    with path.open(encoding="utf-8", newline="") as handle:
        return handle.read()


def _trajectory(path: Path, name: str, about: str) -> Session:
    """A run's steps; `about` (the corpus's question on the run) is asked half-way through a
    SWE-agent run, which has no follow-ups of its own."""
    data = json.loads(_read(path))
    if isinstance(data, dict):  # SWE-agent: steps with an action and its observation
        history = data.get("history") or []
        question = next((_text(m.get("content")) for m in history if m.get("role") == "user"), "")
        steps = [
            Step(str(s.get("action", "")), str(s.get("observation", "")))
            for s in data.get("trajectory") or []
        ]
        if about and len(steps) > 1:
            middle = len(steps) // 2
            steps[middle] = Step(steps[middle].command, steps[middle].output, about)
        return Session(name, question, steps)
    return _chat_trajectory(data, name)


def _chat_trajectory(data: list[Any], name: str) -> Session:
    """A run in OpenAI chat shape: every tool message is a step, and a user message after the
    first is a follow-up asked before the next step."""
    users = [_text(m.get("content")) for m in data if m.get("role") == "user"]
    calls = {
        call.get("id"): json.dumps(call.get("function", {}).get("arguments", ""))
        for m in data if m.get("role") == "assistant" for call in m.get("tool_calls") or []
    }  # fmt: skip
    steps, pending, seen_user = [], "", False
    for m in data:
        if m.get("role") == "user":
            pending, seen_user = (_text(m.get("content")) if seen_user else ""), True
        elif m.get("role") == "tool":
            command = calls.get(m.get("tool_call_id"), "tool")
            steps.append(Step(command, _text(m.get("content")), pending))
            pending = ""
    return Session(name, users[0] if users else "", steps)


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


def histories(session: Session) -> Iterator[list[dict[str, Any]]]:
    """What the client sends each turn: the whole history plus the newest tool result; a
    follow-up question (after the assistant's answer) is a turn of its own."""
    history: list[dict[str, Any]] = [{"role": "user", "content": session.question or "Help me."}]
    for number, step in enumerate(session.steps):
        if step.question:
            history.append({"role": "assistant", "content": [{"type": "text", "text": ANSWER}]})
            history.append({"role": "user", "content": step.question})
            yield list(history)
        call_id = f"toolu_{number:04d}"
        history.append(
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": call_id,
                        "name": "Bash",
                        "input": {"command": step.command},
                    }
                ],
            }
        )
        history.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call_id, "content": step.output}]})  # fmt: skip
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
        replay.cache_writes += sum(counts) - cached
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
                into.headroom_busts += sum(1 for e in result.busts if e.by != "client")
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
        "| session | turns | tokens sent | forwarded cache / token | stable prefix cache / token "
        "| headroom busts cache / token | bill direct | bill cache | bill token "
        "| cache vs direct | token vs direct |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
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
            for name in (f.name for f in fields(Replay)):
                setattr(mine, name, getattr(mine, name) + getattr(theirs, name))
    lines.append(_row(total))
    lines.append(
        "\nBills in input-token units (1x input, 1.25x cache write, 0.1x cache read); stable "
        "prefix = turns whose forwarded history began with the previous turn's, byte for byte; "
        "token mode recompresses the history for each new question, so its busts are expected "
        "and their rewrites are in its bill."
    )
    return "\n".join(lines)


def _row(r: SessionResult) -> str:
    return (
        f"| {r.name} | {r.turns} | {r.cache.tokens_sent:,} | "
        f"{r.cache.tokens_forwarded:,} / {r.token.tokens_forwarded:,} | "
        f"{_stable(r.cache)} / {_stable(r.token)} | "
        f"{r.cache.headroom_busts} / {r.token.headroom_busts} | "
        f"{r.direct.bill:,.0f} | {r.cache.bill:,.0f} | {r.token.bill:,.0f} | "
        f"{_lower(r.cache, r.direct)} | {_lower(r.token, r.direct)} |"
    )


def _stable(replay: Replay) -> str:
    return f"{100 * replay.stable_turns / max(replay.compared_turns, 1):.0f}%"


def _lower(mode: Replay, direct: Replay) -> str:
    saving = 100 * (1 - mode.bill / direct.bill) if direct.bill else 0.0
    return f"{saving:.1f}% lower" if saving >= 0 else f"{-saving:.1f}% higher"
