"""The retrieve round trips a client never saw, remembered and spliced back into its history.

When the proxy answers the model's `headroom_retrieve` calls itself, the upstream sees an
exchange the client does not: assistant (retrieve call), user (the original), ..., assistant
(the answer). The client sees one assistant message, and sends that back next turn. So the
model keeps what it retrieved and the forwarded prefix stays what the upstream saw, each
such exchange is kept as a store note, and on every later request of the conversation the
client's message is replaced by the exact messages the upstream saw, before the
conversation layer runs.

An exchange is keyed by the conversation (the session the client names, the system prompt and
the messages up to the first user message), what identifies the client-visible assistant
message (`Shape.identity`, so fields an SDK adds or drops do not matter) and how many equal
messages came before it. Retrieve results that could not be sent upstream yet (the model
called a client tool in the same message) are kept as `pending` and merged into the client's
next message in call order. An assistant message is one whose role is `assistant` (`model` in
Gemini's contents; the Responses dialect groups a turn's output items into one). Notes:

    hidden-index:CONVERSATION   the keys of the conversation's exchanges (a JSON list)
    hidden:KEY                  {"messages": [...], "pending": [...]}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from headroom.conversation import prefix
from headroom.proxy.retrieve_tool import Call
from headroom.store.base import Store


class Shape(Protocol):
    """What splicing needs to know of a provider's messages."""

    def calls(self, message: Mapping[str, Any]) -> list[Call]:
        """The tool calls of an assistant message, in order."""
        ...

    def identity(self, message: Mapping[str, Any]) -> Any:
        """What identifies a client's assistant message, whatever fields its SDK adds or
        drops when it sends the message back."""
        ...

    def join(
        self, pending: list[dict[str, Any]], following: Sequence[Any], order: Sequence[str]
    ) -> tuple[list[Any], int]:
        """Retrieve results not yet sent upstream merged into the client's next message(s),
        in the calls' `order`; returns the messages and how many of `following` they
        replace."""
        ...


@dataclass(frozen=True)
class Exchange:
    """What the upstream saw in place of one client-visible assistant message."""

    messages: list[dict[str, Any]]
    """The assistant answers and the retrieve results between them, in order."""
    pending: list[dict[str, Any]] = field(default_factory=list)
    """Results for the last message's retrieve calls, sent with the client's next message."""


def conversation(session: str | None, body: Mapping[str, Any]) -> str:
    """The name of the conversation a request belongs to."""
    messages = body.get("messages")
    messages = messages if isinstance(messages, list) else []
    first_user = next(
        (i for i, m in enumerate(messages) if isinstance(m, Mapping) and m.get("role") == "user"),
        len(messages),
    )
    return prefix.digest([session, body.get("system"), messages[: first_user + 1]])


def splice(store: Store, name: str, messages: list[Any], shape: Shape) -> list[Any]:
    """The client's messages with each remembered exchange in place of the message the
    client saw; the messages themselves when the conversation has none."""
    known = set(_index(store, name))
    if not known:
        return messages
    result: list[Any] = []
    seen: dict[str, int] = {}
    index = 0
    while index < len(messages):
        message = messages[index]
        index += 1
        exchange = None
        if _is_assistant(message):
            key = _key(name, shape, message, seen)
            exchange = _load(store, key) if key in known else None
        if exchange is None:
            result.append(message)
            continue
        result += exchange.messages
        if exchange.pending:
            order = [call.id for call in shape.calls(exchange.messages[-1])]
            joined, used = shape.join(exchange.pending, messages[index:], order)
            result += joined
            index += used
    return result


def record(
    store: Store,
    name: str,
    client: Sequence[Any],
    visible: Mapping[str, Any],
    exchange: Exchange,
    shape: Shape,
) -> None:
    """Remember the exchange behind `visible`, the assistant message the client gets next
    after its messages `client`."""
    seen: dict[str, int] = {}
    for message in client:
        if _is_assistant(message):
            _key(name, shape, message, seen)
    key = _key(name, shape, visible, seen)
    data = {"messages": exchange.messages, "pending": exchange.pending}
    store.remember(f"hidden:{key}", json.dumps(data))
    keys = _index(store, name)
    if key not in keys:
        store.remember(f"hidden-index:{name}", json.dumps([*keys, key]))


def _is_assistant(message: Any) -> bool:
    return isinstance(message, Mapping) and message.get("role") in ("assistant", "model")


def _key(name: str, shape: Shape, message: Mapping[str, Any], seen: dict[str, int]) -> str:
    """The key of an assistant message, counting it among the equal ones seen so far."""
    identity = prefix.digest(shape.identity(message))
    count = seen.get(identity, 0)
    seen[identity] = count + 1
    return prefix.digest([name, identity, count])


def _index(store: Store, name: str) -> list[str]:
    raw = store.recall(f"hidden-index:{name}")
    try:
        keys = json.loads(raw) if raw else []
    except ValueError:
        return []  # a damaged index only loses the splices: the client's messages go as sent
    return [str(key) for key in keys] if isinstance(keys, list) else []


def _load(store: Store, key: str) -> Exchange | None:
    raw = store.recall(f"hidden:{key}")
    try:
        data = json.loads(raw) if raw else None
        return Exchange(list(data["messages"]), list(data["pending"])) if data else None
    except (ValueError, KeyError, TypeError):
        return None  # a damaged note only loses this splice: the client's message goes as sent
