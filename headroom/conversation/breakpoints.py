"""Anthropic prompt-cache breakpoints: set them aside, count them, place them.

Clients move their `cache_control` markers every turn (Claude Code puts one on the newest
tool result), so "byte-identical" across turns means identical once the markers are set
aside: `strip_cache_control` gives that canonical form. `place_breakpoints` adds markers to
requests that carry none, at boundaries that stay put from turn to turn: the end of the
tools, the end of the system prompt, the end of the frozen prefix (what an earlier turn
already sent) and the newest message (written once, read next turn). It keeps within the
provider's rules: at most 4 markers, none on thinking blocks or empty text, none before the
minimum cacheable prefix, and an extra marker where message markers sit more than the 20
blocks apart that a cache lookup searches back. A client's own markers are left alone.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from headroom import tokens
from headroom.errors import ConfigError, InvalidMessagesError

MAX_BREAKPOINTS = 4
LOOK_BACK_BLOCKS = 20
MIN_CACHEABLE_TOKENS = 1024
_UNMARKABLE_TYPES = frozenset({"thinking", "redacted_thinking"})


@dataclass(frozen=True, slots=True)
class _Slot:
    """One place in the prompt, in cache prefix order (tools, system, messages)."""

    section: str
    """"tools", "system" or "messages"."""
    index: int
    """The tool, the system block or the message."""
    block: int
    """The content block within a message; -1 for tools, system blocks and string content."""
    text: str
    """What the slot adds to the prompt, as JSON (plain text for string content)."""
    markable: bool
    """Whether a breakpoint may go here."""


def strip_cache_control(body: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of body without any `cache_control` marker: the canonical form in which
    two turns' requests are compared byte for byte."""
    result = copy.deepcopy(body)
    for place in _marker_places(result):
        place.pop("cache_control", None)
    return result


def count_breakpoints(body: dict[str, Any]) -> int:
    """The number of `cache_control` markers in body (the provider allows 4)."""
    return sum("cache_control" in place for place in _marker_places(body))


def place_breakpoints(
    body: dict[str, Any], frozen_messages: int, min_tokens: int = MIN_CACHEABLE_TOKENS
) -> dict[str, Any]:
    """A copy of an Anthropic request body with cache breakpoints at stable boundaries.

    `frozen_messages` is how many leading messages an earlier turn already sent. Pass the
    body as it will be forwarded (after compression): a marked block must not change again.
    A body that already has a marker, or that gets none, is returned as it is.
    """
    if count_breakpoints(body):
        return body
    slots = _slots(body)
    messages: list[Any] = body.get("messages") or []
    if not 0 <= frozen_messages <= len(messages):
        raise ConfigError(
            f"frozen_messages is {frozen_messages}, but the request has {len(messages)} "
            "messages: pass how many leading messages an earlier turn already sent"
        )
    cacheable = _cacheable_from(slots, min_tokens, body.get("model"))
    picks = _stable_picks(slots, frozen_messages, messages, cacheable)
    picks += _bridges(slots, picks, cacheable)
    if not picks:
        return body
    return _apply(body, [slots[pick] for pick in sorted(picks)])


def _marker_places(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every object that may carry `cache_control`: tools, system blocks, message content
    blocks and the blocks inside a tool result."""
    yield from _dicts(body.get("tools"))
    yield from _dicts(body.get("system"))
    for message in _dicts(body.get("messages")):
        for block in _dicts(message.get("content")):
            yield block
            if block.get("type") == "tool_result":
                yield from _dicts(block.get("content"))


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _slots(body: dict[str, Any]) -> list[_Slot]:
    """The places of the prompt in cache prefix order; invalid shapes raise."""
    tools, system, messages = body.get("tools") or [], body.get("system"), body.get("messages")
    if not isinstance(tools, list) or not isinstance(messages, list):
        raise InvalidMessagesError(
            "an Anthropic request needs 'messages' as a list (and 'tools', if any, as a list)"
        )
    slots = [
        _Slot("tools", i, -1, _json(tool), isinstance(tool, dict)) for i, tool in enumerate(tools)
    ]
    if isinstance(system, str) and system:
        slots.append(_Slot("system", 0, -1, system, True))
    elif isinstance(system, list):
        slots += [_Slot("system", i, -1, _json(b), _markable(b)) for i, b in enumerate(system)]
    elif system:
        raise InvalidMessagesError("'system' must be a string or a list of text blocks")
    for m, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            # Marking string content would turn it into a block list: its bytes would change
            # between the turn that marks it and the next. It is counted, never marked.
            slots.append(_Slot("messages", m, -1, content, False))
        elif isinstance(content, list):
            slots += [
                _Slot("messages", m, b, _json(block), _markable(block))
                for b, block in enumerate(content)
            ]
        else:
            raise InvalidMessagesError(
                f"messages[{m}] must be an object whose 'content' is a string or a list of blocks"
            )
    return slots


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _markable(block: Any) -> bool:
    """Thinking blocks cannot carry `cache_control`; empty text blocks are refused."""
    if not isinstance(block, dict) or block.get("type") in _UNMARKABLE_TYPES:
        return False
    return not (block.get("type") == "text" and not block.get("text"))


def _cacheable_from(slots: list[_Slot], min_tokens: int, model: str | None) -> int:
    """The first slot whose prefix reaches min_tokens (estimated); len(slots) if none."""
    remaining = min_tokens
    for index, slot in enumerate(slots):
        if remaining <= 0 or tokens.at_least(slot.text, remaining, model):
            return index
        remaining -= tokens.count(slot.text, model)
    return len(slots)


def _stable_picks(
    slots: list[_Slot], frozen_messages: int, messages: list[Any], cacheable: int
) -> list[int]:
    """Slots for the end of the tools, of the system prompt, of the frozen prefix and, when
    a new user message follows the frozen prefix, of that newest message."""

    def last(section: str, before: int | None = None) -> int | None:
        return next(
            (
                i
                for i in range(len(slots) - 1, cacheable - 1, -1)
                if slots[i].section == section
                and slots[i].markable
                and (before is None or slots[i].index < before)
            ),
            None,
        )

    wanted = [last("tools"), last("system")]
    if frozen_messages:
        wanted.append(last("messages", before=frozen_messages))
    newest = len(messages) - 1
    if newest >= frozen_messages and messages[newest].get("role") == "user":
        # An assistant message last is a prefill: the reply extends it, so it will change.
        candidate = last("messages")
        wanted.append(
            candidate if candidate is not None and slots[candidate].index == newest else None
        )
    picks: list[int] = []
    for pick in wanted:
        if pick is not None and pick not in picks and len(picks) < MAX_BREAKPOINTS:
            picks.append(pick)
    return picks


def _bridges(slots: list[_Slot], picks: list[int], cacheable: int) -> list[int]:
    """Extra message breakpoints, newest gap first, so that no two consecutive message
    breakpoints are further apart than a cache lookup searches back (budget allowing)."""
    points = sorted(pick for pick in picks if slots[pick].section == "messages")
    added: list[int] = []
    later = len(points) - 1
    while later > 0 and len(picks) + len(added) < MAX_BREAKPOINTS:
        earlier, end = points[later - 1], points[later]
        # The earliest markable block a lookup from `end` still reaches.
        start = max(earlier + 1, end - LOOK_BACK_BLOCKS, cacheable)
        bridge = next((i for i in range(start, end) if slots[i].markable), None)
        if end - earlier > LOOK_BACK_BLOCKS and bridge is not None:
            points.insert(later, bridge)  # the gap from `earlier` to the bridge is next
            added.append(bridge)
        else:
            later -= 1
    return added


def _apply(body: dict[str, Any], slots: list[_Slot]) -> dict[str, Any]:
    """A copy of body with a marker on each slot; only what changes is copied."""
    result = dict(body)
    for slot in slots:
        if slot.section == "tools":
            result["tools"] = _marked(result["tools"], slot.index)
        elif slot.section == "system" and isinstance(result["system"], str):
            result["system"] = _marked([{"type": "text", "text": result["system"]}], 0)
        elif slot.section == "system":
            result["system"] = _marked(result["system"], slot.index)
        else:
            message = dict(result["messages"][slot.index])
            message["content"] = _marked(message["content"], slot.block)
            result["messages"] = list(result["messages"])
            result["messages"][slot.index] = message
    return result


def _marked(items: list[Any], index: int) -> list[Any]:
    """A copy of items whose item at index carries an ephemeral cache marker."""
    copied = list(items)
    copied[index] = {**items[index], "cache_control": {"type": "ephemeral"}}
    return copied
