"""Classify a payload: log, json, code (with language), search, diff, html, prose or unknown.

The decision reads a bounded sample of the text (head, middle and tail), so its cost does
not grow with the payload, plus hints when the caller has them: the command line that
produced a tool result, or the path of a file that was read. Misrouting is safe by
construction: a compressor that does not recognise its input hands it back untouched.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

SAMPLE_HEAD = 8192
SAMPLE_SPAN = 2048

_EXTENSIONS = {
    ".py": ("code", "py"), ".pyi": ("code", "py"),
    ".js": ("code", "js"), ".mjs": ("code", "js"), ".cjs": ("code", "js"), ".jsx": ("code", "js"),
    ".ts": ("code", "ts"), ".mts": ("code", "ts"), ".cts": ("code", "ts"), ".tsx": ("code", "tsx"),
    ".go": ("code", "go"), ".rs": ("code", "rs"), ".java": ("code", "java"),
    ".c": ("code", "c"), ".h": ("code", "c"),
    ".cc": ("code", "cpp"), ".cpp": ("code", "cpp"), ".cxx": ("code", "cpp"),
    ".hpp": ("code", "cpp"), ".hh": ("code", "cpp"), ".hxx": ("code", "cpp"),
    ".json": ("json", None), ".jsonl": ("json", None), ".ndjson": ("json", None),
    ".traj": ("json", None), ".ipynb": ("json", None),
    ".html": ("html", None), ".htm": ("html", None), ".xhtml": ("html", None),
    ".md": ("prose", None), ".markdown": ("prose", None), ".rst": ("prose", None),
    ".txt": ("prose", None), ".adoc": ("prose", None),
    ".log": ("log", None), ".out": ("log", None),
    ".diff": ("diff", None), ".patch": ("diff", None),
}  # fmt: skip

_COMMANDS = (
    (re.compile(r"\bgit\s+(?:-\S+\s+)*(?:diff|show|log\s[^|]*-p|format-patch)\b"), "diff"),
    (re.compile(r"(?:^|[\s|;&(])(?:grep|egrep|rg|ag|ack|git\s+grep)\s"), "search"),
    (re.compile(r"\bcurl\b|\bhttpie?\b|\bwget\b.*-O\s*-"), ""),
)

_DIFF = re.compile(r"^(?:diff --git |--- a/|\+\+\+ b/|@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@)", re.M)
# A path ends in a letter (timestamps such as 2022-05-30T09:10:31 end in digits).
_SEARCH_LINE = re.compile(r"^(?:[^\s:]{0,300}[A-Za-z_)][:-]\d+[:-]|\d+[:-](?!\d))")
_HTML_START = re.compile(r"^\s*(?:<!--.*?-->\s*)*<(?:!doctype html|html)\b", re.I | re.S)
_JSON_START = re.compile(
    r'^\s*(?:\{\s*(?:"|\})|\[\s*(?:[{\["\]]|-?\d[\d.eE+-]*\s*[,\]]|true|false|null))'
)
_TIMESTAMP = re.compile(
    r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d|\d\d:\d\d:\d\d|\b(?:INFO|WARN(?:ING)?|ERROR|DEBUG|TRACE|FATAL)\b"
)
# Each sign's line-anchored part starts with the line break before the line: the text is
# searched with a line break in front (so its first line counts too), and a literal first
# character lets the regex engine jump between line breaks instead of trying every position.
_JS_LINE = r"\n\s*(?:(?:const|let|var) \w+ = |function \w*\(|export (?:default )?|import .* from )"
_JS_METHOD = r"\w+: function\s*\("
_JS_THIS = r"\bthis\.\w+ = "
# The js sign without the alternatives whose literal is absent from the text: a branch that
# cannot match changes no count, and `\w+: function` backtracks through every word.
_JS_SIGNS = {
    (method, this): re.compile(
        "|".join([_JS_LINE, *([_JS_METHOD] if method else []), *([_JS_THIS] if this else [])]),
        re.M,
    )
    for method in (False, True)
    for this in (False, True)
}
_LANGUAGE_SIGNS = {
    "py": re.compile(r"\n\s*(?:def \w+\(|class \w+[(:]|from [\w.]+ import |import \w+$|@\w+)", re.M),
    "go": re.compile(r"\n(?:package \w+$|func (?:\(\w+ \*?\w+\) )?\w+\()", re.M),
    "rs": re.compile(r"\n\s*(?:pub(?:\(crate\))? )?(?:fn |impl\b|use [\w:]+|mod \w+|struct \w+)", re.M),
    "java": re.compile(r"\n\s*(?:package [\w.]+;|import [\w.]+;|public (?:final )?class )", re.M),
    "ts": re.compile(r"\n\s*(?:export )?(?:interface |type \w+ = |enum \w+ \{)|: (?:string|number)\b", re.M),
    "js": _JS_SIGNS[True, True],  # narrowed to the text's literals in `_language`
    "cpp": re.compile(r"\n\s*(?:template\s*<|namespace \w+|class \w+\s*[:{]|#include <\w+>$)|std::", re.M),
    "c": re.compile(r"\n\s*(?:#include [<\"]|#define \w+|static \w+|typedef )", re.M),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Hints:
    """What the caller knows about where a payload came from."""

    command: str | None = None
    """The shell command that produced it (a Bash tool call's input)."""
    path: str | None = None
    """The file it was read from (a Read tool call's input)."""


@dataclass(frozen=True, slots=True)
class Route:
    """A routing decision: the kind and, for code, the language."""

    kind: str
    language: str | None = None


def sample(text: str) -> str:
    """The bounded part of text that classification reads."""
    if len(text) <= SAMPLE_HEAD + 2 * SAMPLE_SPAN:
        return text
    middle = len(text) // 2
    return "\n".join((text[:SAMPLE_HEAD], text[middle : middle + SAMPLE_SPAN], text[-SAMPLE_SPAN:]))


def route(text: str, hints: Hints | None = None) -> Route:
    """Classify a payload from a sample of it and the hints."""
    hints = hints or Hints()
    head = sample(text)
    if hints.path:
        by_path = _EXTENSIONS.get(PurePosixPath(hints.path).suffix.lower())
        if by_path:
            kind, language = by_path
            if kind == "code" and language == "c" and _LANGUAGE_SIGNS["cpp"].search("\n" + head):
                language = "cpp"
            return Route(kind, language)
    if hints.command:
        for pattern, kind in _COMMANDS:
            if pattern.search(hints.command) and kind:
                return Route(kind)
    return classify(head)


def classify(head: str) -> Route:
    """Classify from content alone."""
    if not head.strip():
        return Route("unknown")
    if _JSON_START.match(head):
        return Route("log" if _captured_output_stream(head) else "json")
    if _HTML_START.match(head[:4096]):
        return Route("html")
    if len(_DIFF.findall(head)) >= 2:
        return Route("diff")
    lines = [line for line in head.split("\n") if line.strip()]
    if _share_at_least(lines, _SEARCH_LINE.match, 0.6):
        return Route("search")
    language = _language(head, lines)
    if language:
        return Route("code", language)
    if _share_at_least(lines, lambda line: line.lstrip().startswith("<"), 0.3):
        return Route("html")
    if _share_at_least(lines, _TIMESTAMP.search, 0.3):
        return Route("log")
    if _looks_like_prose(lines):
        return Route("prose")
    return Route("log")


def _share_at_least(items: list[str], test: Callable[[str], object], share: float) -> bool:
    """Whether at least `share` of `items` pass `test`, testing only until that is settled."""
    needed = share * len(items)
    passed, left = 0, len(items)
    for item in items:
        if passed >= needed or passed + left < needed:
            break
        left -= 1
        if test(item):
            passed += 1
    return passed >= needed


def _captured_output_stream(head: str) -> bool:
    """JSON Lines whose records carry lines of program output (`go test -json`, Docker's
    json-file logs): a log in JSON clothing, best compressed line by line."""
    lines = head.split("\n")[:-1]
    if len(lines) < 5 or not all(line.startswith("{") for line in lines[:5]):
        return False
    return sum(1 for line in lines if '\\n"' in line) >= 0.4 * len(lines)


def _language(head: str, lines: list[str]) -> str | None:
    signs = {**_LANGUAGE_SIGNS, "js": _JS_SIGNS[": function" in head, "this." in head]}
    lined = "\n" + head
    scores = {name: len(sign.findall(lined)) for name, sign in signs.items()}
    best = max(scores, key=lambda name: scores[name])
    if scores[best] < 3 or (scores[best] * 12 < len(lines) and not _code_shaped(lines)):
        return None
    if best == "c" and scores["cpp"] >= 2:
        return "cpp"
    if best == "js" and scores["ts"] * 4 >= scores["js"]:
        return "ts"
    return best


_CODE_LINE = re.compile(r"[{};:)(,]\s*$|^\s*(?://|/\*|\*|#|\}|@)")


def _code_shaped(lines: list[str]) -> bool:
    return _share_at_least(lines, _CODE_LINE.search, 0.5)


_WORD = re.compile(r"^[A-Za-z][a-z]*[,.;:]?$")


def _looks_like_prose(lines: list[str]) -> bool:
    """Mostly plain words and almost no digits (logs and data are full of numbers)."""
    tokens = [token for line in lines for token in line.split()]
    if len(tokens) < 40 or not _share_at_least(tokens, _WORD.match, 0.5):
        return False
    text = "".join(lines)
    # str.count runs in C, and for ASCII text isdigit means 0-9.
    ascii_digits = text.isascii()
    digits = sum(map(text.count, "0123456789")) if ascii_digits else sum(map(str.isdigit, text))
    return digits < 0.02 * len(text)
