"""Server-sent events read off a byte stream as the chunks arrive."""

from __future__ import annotations

import asyncio
from typing import Any

from headroom.proxy.sse import events


def test_events_are_split_at_blank_lines_across_chunks() -> None:
    async def chunks() -> Any:
        for piece in (b'event: a\ndata: {"x"', b": 1}\n", b"\ndata: [DONE]\n\n", b"data: tail"):
            yield piece

    async def split() -> list[tuple[str | None, str, bytes]]:
        return [(e.name, e.data, e.raw) async for e in events(chunks())]

    found = asyncio.run(split())
    assert found == [
        ("a", '{"x": 1}', b'event: a\ndata: {"x": 1}\n\n'),
        (None, "[DONE]", b"data: [DONE]\n\n"),
        (None, "tail", b"data: tail"),
    ]
