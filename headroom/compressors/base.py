"""The one seam every compressor sits behind: the `Compressor` protocol, the `Compressed`
value it returns, the `Context` it is given, and the registry that maps a kind to it.

A compressor is pure: it reads text, returns shorter lines (or None to leave the payload
alone) and never raises on purpose; the pipeline guards it anyway (fail open). Lossy steps
are safe because the pipeline stores the whole original and names its key in a header;
a compressor addresses what it dropped as `lines=` slices of that original (see `markers`),
or stores a part on its own through `Context.stash`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from headroom.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Context:
    """What a compressor may know besides the text."""

    query: str = ""
    """The latest user question; compressors favour what it mentions."""
    language: str | None = None
    """For code: the language the router found (py, js, ts, tsx, go, rs, java, c, cpp)."""
    stash: Callable[[str], str] = field(default=lambda text: "")
    """Stores a part of the original on its own and returns its key (for markers)."""


@dataclass(frozen=True, slots=True)
class Compressed:
    """A compressor's output, as lines (markers included).

    `origin[i]` is the 0-based line of the input that `lines[i]` reproduces, or None for a
    marker or a line the compressor wrote. Line-subset compressors fill it so that a
    line-numbered file read keeps each kept line's number prefix; others leave it None.
    """

    lines: list[str]
    origin: list[int | None] | None = None

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class Compressor(Protocol):
    """Turns a payload of one kind into fewer tokens, or returns None to leave it alone."""

    kind: str

    def compress(self, text: str, ctx: Context) -> Compressed | None: ...


_REGISTRY: dict[str, Compressor] = {}


def register(compressor: Compressor) -> Compressor:
    """Adds a compressor for its kind; a second one for the same kind is an error."""
    if compressor.kind in _REGISTRY:
        raise ConfigError(f"a compressor for kind {compressor.kind!r} is already registered")
    _REGISTRY[compressor.kind] = compressor
    return compressor


def get(kind: str) -> Compressor | None:
    """The compressor registered for a kind, if any."""
    return _REGISTRY.get(kind)


def kinds() -> list[str]:
    """The kinds that have a compressor, sorted."""
    return sorted(_REGISTRY)
