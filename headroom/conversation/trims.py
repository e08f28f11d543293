"""Budget trims that last: a tool result stubbed to fit the context budget stays stubbed.

A trim is a deliberate, one-off rewrite of old messages (it costs one cache rewrite). After
it, every later turn must forward the same stubs, or the next turn would bring the originals
back and bust the cache again. Each stub is kept as a note keyed by the session and the
identity of the client's block it replaced, and replayed onto that block every turn.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from headroom.conversation import prefix
from headroom.conversation.budget import Stub
from headroom.errors import StoreError
from headroom.store.base import Store


def _note(session: str) -> str:
    return f"trims:{session}"


def remember(
    store: Store,
    session: str,
    client: Sequence[prefix.MessageHash],
    messages: Sequence[Any],
    stubs: Sequence[Stub],
) -> None:
    """Keep the stubs of a trim (added to the session's earlier ones)."""
    kept = _load(store, session)
    for stub in stubs:
        kept[prefix.identity(client, stub.message, stub.block)] = _content(
            messages[stub.message], stub.block
        )
    store.remember(_note(session), json.dumps(kept, ensure_ascii=False))


def replay(
    store: Store, session: str, client: Sequence[prefix.MessageHash], messages: list[Any]
) -> list[Any]:
    """Messages with every earlier stub of the session put back on its block."""
    kept = _load(store, session)
    if not kept:
        return messages
    result = list(messages)
    for index, message in enumerate(messages):
        content = message.get("content")
        if client[index].whole in kept:  # a whole message's content was stubbed (OpenAI tool)
            result[index] = _with_content(message, -1, kept[client[index].whole])
        elif isinstance(content, list):
            for block, _ in enumerate(content):
                stub = kept.get(prefix.identity(client, index, block))
                if stub is not None:
                    result[index] = _with_content(result[index], block, stub)
    return result


def _load(store: Store, session: str) -> dict[str, Any]:
    raw = store.recall(_note(session))
    try:
        loaded = json.loads(raw) if raw else {}
    except ValueError as exc:
        raise StoreError(f"the budget trims of session {session!r} are damaged ({exc})") from exc
    if not isinstance(loaded, dict):
        raise StoreError(f"the budget trims of session {session!r} are damaged (not an object)")
    return loaded


def _content(message: Any, block: int) -> Any:
    return message["content"] if block < 0 else message["content"][block]["content"]


def _with_content(message: Any, block: int, content: Any) -> Any:
    if block < 0:
        return {**message, "content": content}
    blocks = list(message["content"])
    blocks[block] = {**blocks[block], "content": content}
    return {**message, "content": blocks}
