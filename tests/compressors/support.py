"""Helpers shared by the compressor tests."""

from __future__ import annotations


class Stash:
    """A dict-backed `Context.stash`, so tests can read back what was stored."""

    def __init__(self) -> None:
        self.parts: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        key = f"{len(self.parts):016x}"
        self.parts[key] = text
        return key
