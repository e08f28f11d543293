"""One request body through the conversation layer, as an edge (the proxy) hands it over.

The body is an Anthropic Messages or OpenAI Chat Completions request as a dict. Tool
definitions are normalised so equal tools serialise to equal bytes (and a client's varying
tool order is pinned to the order first forwarded), the messages go through the live zone,
volatile parts of the system prompt are reported (moved to its end only when the setting
asks), and an Anthropic request without `cache_control` gets breakpoints at stable
boundaries. The caller's body is never changed; what is forwarded is a new body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from headroom.config import Settings
from headroom.conversation import breakpoints, stable
from headroom.conversation.live_zone import Turn, compress_turn, session_id
from headroom.errors import InvalidMessagesError
from headroom.store.base import Store

PROVIDERS = ("anthropic", "openai")


@dataclass(frozen=True)
class Prepared:
    """What to forward for one request, and what the layer saw on the way."""

    body: dict[str, Any]
    turn: Turn
    volatile: list[stable.Volatile]
    """Volatile spans of the system prompt (dates, ids, listings), reported every turn."""


def prepare(
    body: Mapping[str, Any],
    provider: str,
    store: Store,
    settings: Settings,
    session: str | None = None,
) -> Prepared:
    """The body to forward for one request of a session (named by the caller, or derived
    from the system prompt and the first user message)."""
    if provider not in PROVIDERS:
        raise InvalidMessagesError(f"provider {provider!r} is not one of {', '.join(PROVIDERS)}")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidMessagesError("the request body has no 'messages' list")
    system = body.get("system") if provider == "anthropic" else _openai_system(messages)
    name = session or session_id(messages, system)
    forwarded = dict(body)
    if body.get("tools"):
        forwarded["tools"] = _tools(body["tools"], store, name)
    volatile = stable.find_volatile(system) if system else []
    if provider == "anthropic" and volatile and settings.move_volatile:
        forwarded["system"] = stable.move_volatile_to_end(body["system"], volatile)
    turn = compress_turn(
        messages, store, settings, model=body.get("model"), session=name, system=system
    )
    forwarded["messages"] = turn.messages
    if provider == "anthropic":
        forwarded = breakpoints.place_breakpoints(forwarded, turn.frozen)
    return Prepared(forwarded, turn, volatile)


def _tools(tools: Any, store: Store, session: str) -> list[dict[str, Any]]:
    note = f"tools:{session}"
    remembered = store.recall(note)
    previous = json.loads(remembered) if remembered else None
    normalized = stable.normalize_tools(tools, previous)
    store.remember(note, json.dumps(stable.tool_names(normalized)))
    return normalized


def _openai_system(messages: list[Any]) -> str | None:
    texts = [
        m.get("content")
        for m in messages
        if isinstance(m, Mapping) and m.get("role") in ("system", "developer")
    ]
    joined = "\n".join(t for t in texts if isinstance(t, str))
    return joined or None
