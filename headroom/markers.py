"""The marker format: how compressed output says what was elided and how to get it back.

A compressed payload carries one header line naming the key of the whole original:

    [headroom 9f86d081884c7d65: log, 24011 lines; retrieve key for lines A-B or grep]

Inside the output, each elision is one line (indentation may precede it):

    [... 37 lines elided (2 warnings), lines=120-156]
    [... 480 records elided, key=0b1c2d3e4f5a6b7c; ids: 17, 18, 19, ...]

`lines=A-B` are 1-based inclusive line numbers of the whole original; `key=` names a part
stored on its own. Keys are 16 lowercase hex characters (longer only on a hash collision).
This module renders and parses markers; nothing else spells them out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KEY_PATTERN = r"[0-9a-f]{16,64}"

_HEADER = re.compile(rf"^\[headroom ({KEY_PATTERN}): ")
_ELISION = re.compile(r"^[ \t]*\[\.\.\. [^\]\n]*\]\r?$")
_KEY = re.compile(rf"key=({KEY_PATTERN})")
_LINES = re.compile(r"lines=(\d+)-(\d+)")
_INLINE_KEY = re.compile(rf"\[\.\.\. [^\]\n]*?key=({KEY_PATTERN})")


@dataclass(frozen=True, slots=True)
class Elision:
    """One elision marker, parsed."""

    text: str
    key: str | None
    first_line: int | None
    last_line: int | None


def header(key: str, kind: str, line_count: int) -> str:
    """The first line of a compressed payload: the whole original's key and how to ask for it."""
    return f"[headroom {key}: {kind}, {line_count} lines; retrieve key for lines A-B or grep]"


def elided_lines(first: int, last: int, what: str = "lines", note: str = "") -> str:
    """A marker for original lines first..last (1-based, inclusive) that were dropped."""
    count = last - first + 1
    detail = f" ({note})" if note else ""
    return f"[... {count} {what} elided{detail}, lines={first}-{last}]"


def elided_part(count: int, what: str, key: str, detail: str = "") -> str:
    """A marker for a part stored under its own key (records, a long string, a file's matches)."""
    tail = f"; {detail}" if detail else ""
    return f"[... {count} {what} elided, key={key}{tail}]"


def header_key(text: str) -> str | None:
    """The whole-original key named by a compressed payload's header, if it has one."""
    match = _HEADER.match(text)
    return match.group(1) if match else None


def is_marker(line: str) -> bool:
    """True for an elision marker line."""
    return _ELISION.match(line) is not None


def parse(text: str) -> list[Elision]:
    """Every elision marker in a compressed payload, in order."""
    found: list[Elision] = []
    for line in text.split("\n"):
        if not is_marker(line):
            continue
        key = _KEY.search(line)
        span = _LINES.search(line)
        found.append(
            Elision(
                text=line.strip(),
                key=key.group(1) if key else None,
                first_line=int(span.group(1)) if span else None,
                last_line=int(span.group(2)) if span else None,
            )
        )
    return found


def keys_in(text: str) -> list[str]:
    """Every store key a compressed payload names (header first), without repeats; markers
    inside a line (in a JSON string, say) count too."""
    keys: list[str] = []
    first = header_key(text)
    if first:
        keys.append(first)
    for key in _INLINE_KEY.findall(text):
        if key not in keys:
            keys.append(key)
    return keys
