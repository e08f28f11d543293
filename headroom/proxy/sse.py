"""Server-sent events read off a byte stream, each with the bytes it came as, so a relay can
pass an event on untouched or rewrite it.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

_EVENT_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event: its bytes as they came, its name and its data."""

    raw: bytes
    name: str | None
    data: str

    def json(self) -> dict[str, Any] | None:
        """The data as a JSON object, or None."""
        try:
            value = json.loads(self.data)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


async def events(chunks: AsyncIterator[bytes]) -> AsyncIterator[Event]:
    """The server-sent events of a byte stream, each as soon as its blank line arrives."""
    buffer = b""
    async for chunk in chunks:
        start = max(len(buffer) - 3, 0)  # a boundary may straddle the chunks
        buffer += chunk
        while match := _EVENT_END.search(buffer, start):
            yield _event(buffer[: match.end()])
            buffer, start = buffer[match.end() :], 0
    if buffer.strip():
        yield _event(buffer)


def _event(raw: bytes) -> Event:
    name, data = None, []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    return Event(raw, name, "\n".join(data))
