"""What a provider supplies to retrieve in the loop (`retrieve_loop`): a `Dialect` that knows
how its requests, answers and streams carry tool calls and results, and the `StreamRelay` it
makes for one streamed answer; a `Hop` is one upstream answer as the loop reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
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
        self,
        first: Mapping[str, Any],
        last: Mapping[str, Any],
        visible: Mapping[str, Any],
        stop: str | None,
        usage: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The JSON answer the client gets for the hops from `first` to `last`."""
        ...

    def stream(self) -> StreamRelay:
        """A relay for one streamed answer."""
        ...
