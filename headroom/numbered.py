"""Line-numbered file reads, as coding agents receive them.

Claude Code's Read tool prints `     12→text`, `cat -n` prints `    12\ttext`. The number
prefixes are split off so the file's own content can be routed and compressed, and each
kept line gets its own prefix back. Lines after the numbered block (a reminder the client
appended) are carried through untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PREFIX = re.compile(r"^ *\d{1,9}(?:→|\t)")
_MIN_LINES = 3


@dataclass(frozen=True, slots=True)
class NumberedRead:
    prefixes: list[str]
    body: str
    """The file's text without the number prefixes."""
    rest: str
    """What follows the numbered lines, verbatim (empty or starting with a newline)."""


def split(text: str) -> NumberedRead | None:
    """The numbered block of a read, or None when text is not a numbered read."""
    if not _PREFIX.match(text):
        return None  # the first line decides, before the whole text is split
    lines = text.split("\n")
    prefixes: list[str] = []
    body: list[str] = []
    for line in lines:
        match = _PREFIX.match(line)
        if not match:
            break
        prefixes.append(match.group())
        body.append(line[match.end() :])
    if len(prefixes) < _MIN_LINES:
        return None
    rest = "\n".join(lines[len(prefixes) :])
    return NumberedRead(
        prefixes, "\n".join(body), "\n" + rest if len(prefixes) < len(lines) else ""
    )


def join(read: NumberedRead, lines: list[str], origin: list[int | None]) -> str:
    """Compressed body lines with each kept line's number prefix restored."""
    numbered = [
        read.prefixes[source] + line if source is not None else line
        for line, source in zip(lines, origin, strict=True)
    ]
    return "\n".join(numbered) + read.rest
