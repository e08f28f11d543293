"""Stable tool definitions and system prompts: the first bytes of every cached prefix.

The provider caches tools, then system, then messages, so a changed byte in a tool schema or
the system prompt turns every later cached read into a write. `normalize_tools` makes equal
tools serialise to equal bytes: a tool equal as a JSON value (object key order set aside, list
order kept) to the one forwarded last turn goes with last turn's bytes, so a client whose
schemas come out in varying key order still hits its cache; a new or changed tool goes as the
client sent it. The first turn therefore forwards the client's own bytes, and a session through
headroom writes the same cache as one going direct. Tool order changes only where the client's
own order varies between turns: tools seen before keep the order forwarded last turn, new ones
follow in their arrival order. `cache_control` markers stay at their positions in the list
(the client marks "the end of the tools", not a tool).

`find_volatile` reports what in a system prompt changes from turn to turn or session to
session: dates, times, UUIDs, hex ids, counters, Claude Code's environment lines and git
status, directory listings. `diff_volatile` tells which of them changed since the previous
turn. `move_volatile_to_end` — an opt-in setting, never the default — moves the lines that
hold volatile content to the end, leaving every other line byte-identical and in order. Every
regex here is linear: no nested or overlapping unbounded repeats.
"""

from __future__ import annotations

import bisect
import copy
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from headroom.errors import HeadroomError, InvalidMessagesError

System = str | list[dict[str, Any]]

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_WEEKDAY = r"(?:(?:Mon|Tue(?:s)?|Wed(?:nes)?|Thu(?:rs)?|Fri|Sat(?:ur)?|Sun)(?:day)?\.?,? )?"
_DAY = r"(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?"
_YEAR = r"(?:19|20)\d{2}(?!\d)"
_TIME = (
    r"(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:[.,]\d{1,9})?)?(?: ?[AaPp]\.?[Mm]\.?(?![A-Za-z]))?"
    r"(?:Z(?![A-Za-z])|[+-](?:[01]\d|2[0-3]):?[0-5]\d(?!\d)| ?(?:UTC|GMT)\b)?"
)
_INLINE: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("uuid", re.compile(r"\b[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b")),
    (
        "date",
        re.compile(
            rf"(?<!\d)(?:19|20)\d{{2}}([-/.])(?:0[1-9]|1[0-2])\1(?:0[1-9]|[12]\d|3[01])(?!\d)"
            rf"(?:[T ]{_TIME})?"
            rf"|(?<![\d.])\d{{1,2}}[/.]\d{{1,2}}[/.]{_YEAR}"
            rf"|\b{_WEEKDAY}{_MONTH}\.? {_DAY},? {_YEAR}"
            rf"|\b{_WEEKDAY}{_DAY} (?:of )?{_MONTH}\.?,? {_YEAR}"
        ),
    ),
    ("time", re.compile(rf"(?<![\d:.]){_TIME}(?![\d:])")),
    ("hex", re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{7,}\b")),
    (
        "counter",
        re.compile(
            r"(?i)\b(?:turn|iteration|attempt|round)[ \t]?[:#]?[ \t]?\d+\b"
            r"|\b(?:step|message|request|call|page|part)[ \t]?#?\d+[ \t]?(?:of|/)[ \t]?\d+\b"
            r"|\b\d+[ \t](?:turn|step|request|message|call|attempt|token)s?[ \t](?:remaining|left|used)\b"
        ),
    ),
)
_ENVIRONMENT = re.compile(
    r"[ \t]*(?:(?:primary |additional )?working director(?:y|ies)|is directory a git repo"
    r"|platform|os version)[ \t]*:",
    re.I,
)
_GIT_VALUE = re.compile(r"(?:gitStatus|Current branch|Main branch\b[^:\n]*):")
_GIT_SECTION = re.compile(r"(?:Status|Recent commits):[ \t]*")
_PATH = re.compile(r"[\w.@~+/=,-]+")
_TREE = frozenset("│├└")
_LISTING_MIN_LINES = 5
_TAG = re.compile(r"[ \t]*<(/?)([A-Za-z][\w-]*)>[ \t]*")


@dataclass(frozen=True, slots=True)
class Volatile:
    """One span of a system prompt whose content changes between turns or sessions."""

    kind: str
    """"date", "time", "uuid", "hex", "counter", "environment", "git" or "listing"."""
    start: int
    end: int
    """Offsets into the block's text; `text` is `block_text[start:end]`."""
    text: str
    block_index: int
    """Index of the system block; -1 when the system prompt is a plain string."""


def tool_names(tools: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each tool's name: Anthropic `name`, OpenAI `function.name`, else a built-in's `type`."""
    if not isinstance(tools, Sequence) or isinstance(tools, str):
        raise InvalidMessagesError(
            f"tools must be a list of tool objects, got {type(tools).__name__}"
        )
    return [_tool_name(index, tool) for index, tool in enumerate(tools)]


def normalize_tools(
    tools: Sequence[Mapping[str, Any]], previous: Sequence[Mapping[str, Any]] | None
) -> list[dict[str, Any]]:
    """New tool dicts in the order forwarded last turn, each with last turn's bytes when it is
    equal to last turn's tool as a JSON value.

    `previous` is what was forwarded on the previous turn (without `cache_control`), or None
    on a session's first turn. Tools named there come in that order; tools not named there
    follow in their arrival order.
    """
    names = tool_names(tools)
    before = {
        name: tool for name, tool in zip(tool_names(previous or ()), previous or (), strict=True)
    }
    rank = {name: position for position, name in enumerate(before)}
    known = sorted(
        (i for i, name in enumerate(names) if name in rank), key=lambda i: rank[names[i]]
    )
    order = known + [i for i, name in enumerate(names) if name not in rank]
    result = []
    for position, index in enumerate(order):
        tool = {key: value for key, value in tools[index].items() if key != "cache_control"}
        earlier = before.get(names[index])
        if earlier is not None and _same_value(earlier, tool):
            tool = dict(earlier)
        tool = copy.deepcopy(tool)
        if "cache_control" in tools[position]:
            tool["cache_control"] = copy.deepcopy(tools[position]["cache_control"])
        result.append(tool)
    return result


def find_volatile(system: System) -> list[Volatile]:
    """The volatile spans of a system prompt, in order, never overlapping."""
    return [
        Volatile(kind, start, end, text[start:end], index)
        for index, text in _texts(system)
        for kind, start, end in _resolve(_line_spans(text) + _inline_spans(text))
    ]


def diff_volatile(previous_system: System, system: System) -> list[Volatile]:
    """The volatile spans of `system` that are new or whose text changed since the previous
    turn; spans are paired by block, kind and their order among that kind in the block."""
    before = {key: span.text for key, span in _keyed(find_volatile(previous_system))}
    return [span for key, span in _keyed(find_volatile(system)) if before.get(key) != span.text]


def move_volatile_to_end(system: System, found: Sequence[Volatile]) -> System:
    """The system prompt with every line that holds a found span moved to its end.

    Lines keep their order; an element whose tag lines stand alone (`<env>` … `</env>`) moves
    whole once all its inner lines move. A string prompt gets the lines at its end; a list
    gets one new final text block (blocks left empty are dropped, their `cache_control`
    passes to it). Pass `find_volatile(system)` itself, or a fixed filter of it by kind:
    moving a set that varies from turn to turn would itself change the prefix.
    """
    if not found:
        return system
    texts = dict(_texts(system))
    by_block: dict[int, list[tuple[int, int]]] = {}
    for span in found:
        text = texts.get(span.block_index)
        if text is None or span.start >= span.end or text[span.start : span.end] != span.text:
            raise HeadroomError(
                f"volatile {span.kind} span {span.start}:{span.end} of system block "
                f"{span.block_index} is not in this system prompt; pass what "
                "find_volatile returned for this very prompt"
            )
        by_block.setdefault(span.block_index, []).append((span.start, span.end))
    split = {index: _split(texts[index], by_block[index]) for index in sorted(by_block)}
    moved = "".join(lines for _, lines in split.values())
    if not moved:
        return system
    if isinstance(system, str):
        return _end_like(system, split[-1][0] + moved)
    return _move_blocks(system, split, moved)


def _move_blocks(
    system: list[dict[str, Any]], split: dict[int, tuple[str, str]], moved: str
) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    final: dict[str, Any] = {"type": "text", "text": moved[:-1]}
    for index, block in enumerate(system):
        if index not in split:
            result.append(block)
            continue
        rest = _end_like(block["text"], split[index][0])
        if rest.strip():
            result.append({**block, "text": rest})
        elif "cache_control" in block:
            final["cache_control"] = block["cache_control"]
    return [*result, final]


def _tool_name(index: int, tool: object) -> str:
    if not isinstance(tool, Mapping):
        raise InvalidMessagesError(f"tools[{index}] must be an object, got {type(tool).__name__}")
    function = tool.get("function")
    if isinstance(function, Mapping) and isinstance(function.get("name"), str):
        return str(function["name"])
    for key in ("name", "type"):
        if isinstance(tool.get(key), str):
            return str(tool[key])
    raise InvalidMessagesError(
        f"tools[{index}] has no name: give it 'name' (Anthropic, OpenAI Responses), "
        "'function.name' (OpenAI Chat) or, for a built-in tool, 'type'"
    )


def _same_value(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal as JSON values: object key order set aside, list order and number types kept."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _texts(system: object) -> list[tuple[int, str]]:
    if isinstance(system, str):
        return [(-1, system)]
    if not isinstance(system, list):
        raise InvalidMessagesError(
            f"system must be a string or a list of text blocks, got {type(system).__name__}"
        )
    texts = []
    for index, block in enumerate(system):
        if not isinstance(block, Mapping):
            raise InvalidMessagesError(f"system[{index}] must be an object with a 'type'")
        if block.get("type") == "text":
            if not isinstance(block.get("text"), str):
                raise InvalidMessagesError(
                    f"system[{index}] is a text block without a 'text' string"
                )
            texts.append((index, block["text"]))
    return texts


def _lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of each line, `end` before its newline."""
    spans, start = [], 0
    while start <= len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        spans.append((start, end))
        start = end + 1
    return spans


def _line_spans(text: str) -> list[tuple[str, int, int]]:
    lines = _lines(text)
    spans = [
        ("environment", start, end) for start, end in lines if _ENVIRONMENT.match(text, start, end)
    ]
    return spans + _git_spans(text, lines) + _listing_spans(text, lines)


def _git_spans(text: str, lines: list[tuple[int, int]]) -> list[tuple[str, int, int]]:
    """Claude Code's gitStatus block: labelled values and the Status / Recent commits items,
    blank lines between them included, as one span."""
    spans: list[tuple[str, int, int]] = []
    first = last = None
    in_items = False
    for start, end in [*lines, (len(text), len(text))]:
        if _GIT_VALUE.match(text, start, end) or _GIT_SECTION.fullmatch(text, start, end):
            first = start if first is None else first
            last, in_items = end, not _GIT_VALUE.match(text, start, end)
        elif not text[start:end].strip():
            in_items = False
        elif in_items:
            last = end
        elif first is not None and last is not None:
            spans.append(("git", first, last))
            first = None
    if first is not None and last is not None:
        spans.append(("git", first, last))
    return spans


def _listing_spans(text: str, lines: list[tuple[int, int]]) -> list[tuple[str, int, int]]:
    """Runs of path-like lines (`src/app.py`, `├── tests`): a directory listing."""
    spans, run = [], []
    for start, end in [*lines, (len(text), len(text))]:
        line = text[start:end]
        body = line.lstrip(" \t│├└─|`+-*")
        tree = any(char in _TREE for char in line[: len(line) - len(body)])
        if body and _PATH.fullmatch(body) and (tree or "/" in body or "." in body):
            run.append((start, end))
            continue
        if len(run) >= _LISTING_MIN_LINES:
            spans.append(("listing", run[0][0], run[-1][1]))
        run = []
    return spans


def _inline_spans(text: str) -> list[tuple[str, int, int]]:
    return [(kind, m.start(), m.end()) for kind, pattern in _INLINE for m in pattern.finditer(text)]


def _resolve(spans: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Keep the earliest-starting, then longest, span wherever spans overlap."""
    kept: list[tuple[str, int, int]] = []
    for kind, start, end in sorted(spans, key=lambda s: (s[1], -s[2])):
        if start < end and (not kept or start >= kept[-1][2]):
            kept.append((kind, start, end))
    return kept


def _keyed(found: list[Volatile]) -> list[tuple[tuple[int, str, int], Volatile]]:
    seen: dict[tuple[int, str], int] = {}
    keyed = []
    for span in found:
        ordinal = seen.get((span.block_index, span.kind), 0)
        seen[(span.block_index, span.kind)] = ordinal + 1
        keyed.append(((span.block_index, span.kind, ordinal), span))
    return keyed


def _split(text: str, spans: list[tuple[int, int]]) -> tuple[str, str]:
    """(kept lines, moved lines) of a text, every line ending with a newline."""
    lines = _lines(text)
    if lines[-1][0] == len(text) and len(lines) > 1:
        lines.pop()  # the empty remainder after a final newline is no line
    starts, ends = [start for start, _ in lines], [end for _, end in lines]
    delta = [0] * (len(lines) + 1)
    for a, b in spans:  # a line moves when a span overlaps its text: a < end and b > start
        delta[bisect.bisect_right(ends, a)] += 1
        delta[bisect.bisect_left(starts, b)] -= 1
    moved = [count > 0 for count in itertools.accumulate(delta[:-1])]
    _move_whole_elements(text, lines, moved)
    numbered = list(zip(lines, moved, strict=True))
    kept = "".join(text[start:end] + "\n" for (start, end), out in numbered if not out)
    gone = "".join(text[start:end] + "\n" for (start, end), out in numbered if out)
    return kept, gone


def _move_whole_elements(text: str, lines: list[tuple[int, int]], moved: list[bool]) -> None:
    """Mark `<tag>` and `</tag>` lines moved when every line between them is, in one pass."""
    stack: list[tuple[str, int]] = []
    where: dict[str, list[int]] = {}  # tag name -> its places on the stack
    last_kept = -1  # the latest line known to stay
    for number, (start, end) in enumerate(lines):
        tag = _TAG.fullmatch(text, start, end)
        if tag and not tag.group(1):
            where.setdefault(tag.group(2), []).append(len(stack))
            stack.append((tag.group(2), number))
            continue
        if not (tag and where.get(tag.group(2))):
            last_kept = last_kept if moved[number] else number
            continue
        at = where[tag.group(2)][-1]
        first = stack[at][1]
        for name, _ in stack[at:]:
            where[name].pop()
        whole = at == len(stack) - 1 and last_kept < first + 1 < number
        del stack[at:]
        if whole:
            moved[first] = moved[number] = True
        else:
            last_kept = number


def _end_like(original: str, text: str) -> str:
    """`text` (which ends with a newline) ending the way `original` does."""
    return text if original.endswith("\n") or not text else text[:-1]
