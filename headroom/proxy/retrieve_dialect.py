"""What a provider supplies to retrieve in the loop (`retrieve_loop`): a `Dialect` that knows
how its requests, answers and streams carry tool calls and results, and the `StreamRelay` it
makes for one streamed answer; a `Hop` is one upstream answer as the loop reads it, and an
`Outcome` what the client's answer says of them all.

The parts every provider's dialect shares live here too: `HopRelay` (a relay's hop count,
failure flag and held-back tail), `join_results` (results that are messages of their own,
merged in call order), and the reading of error bodies (`json_object`, `error_of`) and
writing of named events (`sse_event`).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from headroom.proxy import hidden_turns
from headroom.proxy.retrieve_tool import Answer, Call
from headroom.proxy.sse import Event


@dataclass(frozen=True, slots=True)
class Hop:
    """One upstream answer: the assistant message as it goes back upstream, why it stopped,
    and the usage it was billed."""

    message: dict[str, Any]
    stop: str | None
    usage: dict[str, Any] | None

    @classmethod
    def of(cls, message: dict[str, Any], stop: str | None, usage: Any) -> Hop:
        """A hop whose answer reported `usage` (None where it is not an object)."""
        return cls(message, stop, usage if isinstance(usage, dict) else None)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the client's answer says of its hops: the one message it sees, the stop reason
    and the usage summed over hops (None where no hop reported any)."""

    visible: dict[str, Any]
    stop: str | None
    usage: dict[str, Any] | None

    def usage_or(self, fallback: Any) -> Any:
        """The summed usage, or `fallback` (the first answer's own) where there is none."""
        return self.usage if self.usage is not None else fallback


class StreamRelay(Protocol):
    """One streamed client answer over however many upstream hops it takes."""

    complete: bool
    """The current hop's stream ended the way a whole answer ends."""
    failed: bool
    """An error event went to the client."""

    def feed(self, event: Event) -> bytes:
        """What the client gets now for one event of the current hop."""
        ...

    def end_hop(self) -> Hop:
        """The hop whose stream ended; the next hop's events follow."""
        ...

    def tail(self) -> bytes:
        """The current hop's closing events, held back, as they came."""
        ...

    def finish(self, stop: str | None, usage: dict[str, Any] | None) -> bytes:
        """Closing events for the whole client answer."""
        ...

    def error(self, message: str, body: bytes = b"") -> bytes:
        """An error event: the upstream's error `body` when it is one, else `message`."""
        ...


class Dialect(hidden_turns.Shape, Protocol):
    """How one provider's requests, answers and streams carry tool calls and results."""

    tool: Mapping[str, Any]
    """The retrieve tool's definition in this provider's shape."""
    tool_stop: str
    """The stop reason of an answer that calls tools."""
    end_stop: str
    """The stop reason of an answer that is done."""

    def results(self, answered: list[tuple[Call, Answer]]) -> list[dict[str, Any]]:
        """The message(s) that carry the answers to these calls."""
        ...

    def visible(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The one assistant message a client sees for these upstream answers: their
        content in order, every retrieve call left out."""
        ...

    def continuation(self, forwarded: Mapping[str, Any], extra: list[Any]) -> dict[str, Any]:
        """The request body that continues `forwarded` with the hidden messages `extra`."""
        ...

    def read(self, answer: Mapping[str, Any]) -> Hop | None:
        """A JSON answer as a hop; None when it is not an answer to loop on."""
        ...

    def write(
        self, first: Mapping[str, Any], last: Mapping[str, Any], end: Outcome
    ) -> dict[str, Any]:
        """The JSON answer the client gets for the hops from `first` to `last`."""
        ...

    def stream(self) -> StreamRelay:
        """A relay for one streamed answer."""
        ...


class HopRelay(ABC):
    """What every `StreamRelay` keeps alike: the hops relayed so far, whether an error went
    to the client, and the current hop's closing events, held back (`hold`) for `tail`. A
    relay builds its hop (`_hop`) and resets its own per-hop state in `_new_hop`."""

    def __init__(self) -> None:
        self.hops = 0
        self.failed = False
        self._new_hop()

    def _new_hop(self) -> None:
        self.complete = False
        self._held: list[bytes] = []

    @abstractmethod
    def _hop(self) -> Hop:
        """The current hop, its stream ended."""

    def hold(self, raw: bytes) -> bytes:
        """Keeps `raw` for the tail; the client gets nothing now."""
        self._held.append(raw)
        return b""

    def end_hop(self) -> Hop:
        hop = self._hop()
        self.hops += 1
        self._new_hop()
        return hop

    def tail(self) -> bytes:
        return b"".join(self._held)


def join_results(
    pending: list[dict[str, Any]],
    following: Sequence[Any],
    order: Sequence[str],
    is_result: Callable[[Any], bool],
    key: str,
) -> tuple[list[Any], int]:
    """`Shape.join` where each result is a message of its own (`is_result`) naming its call
    by `key`: the run of results that follows and the pending ones, in call order."""
    run = 0
    while run < len(following) and is_result(following[run]):
        run += 1
    taken = list(following[:run])
    results = {m.get(key): m for m in [*pending, *taken]}
    placed = [results[id_] for id_ in order if id_ in results]
    rest = [m for m in taken if m.get(key) not in order]
    return placed + rest, run


def json_object(raw: bytes) -> dict[str, Any] | None:
    """`raw` as a JSON object, or None."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def error_of(body: bytes, default: dict[str, Any]) -> dict[str, Any]:
    """The `error` object of an upstream's JSON error body, else `default`."""
    error = (json_object(body) or {}).get("error")
    return error if isinstance(error, dict) else default


def sse_event(name: str, data: Mapping[str, Any]) -> bytes:
    """One named server-sent event, its data compact JSON (as Anthropic and OpenAI's
    Responses write them)."""
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
