"""The log compressor: CI/build/test output and system logs, as a faithful subset of lines.

Kept whole: every line reporting an error, failure, warning, exception or non-2xx/3xx
status (never collapsed: their ids are often the answer), the block an error opens (stack
frames, an exception's message lines, a test runner's failure section) minus lines it repeats
word for word, a few lines of context before an error that are new or indented under it,
command and section headers, the last line of each summary template, the log's last lines,
and lines naming a specific word of the question. A keyword only mentioned, not reported, does
not count: inside a lowercase word, an identifier, a path or a `--flag`, or as a zero count.

Every other line is collapsed by template (see `log_templates`): the first line of a
recurring template is kept as the run's example, later lines of it are elided behind
`markers.elided_lines`, and so are lines whose template never recurs. An HTTP status or exit
code is part of the template, so a line breaking a run's pattern (a 304 among 200s) is kept.
Kept lines lose their ANSI codes and a carriage-return redraw keeps only its final segment.

Speed: the text is scanned once per keyword as ASCII-lowercased bytes (offsets map to lines
exactly), over distinct lines only (lines differing just in digits read the same), and
templates are computed once per distinct masked line.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable
from itertools import accumulate

from headroom import markers
from headroom.compressors.base import Compressed, Context, register
from headroom.compressors.log_templates import mask, templates

OTHER, ERROR, WARN, QUERY, SUMMARY, HEADER = range(6)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_REDRAW = re.compile(r"\r(?=[^\n])")
_ERROR_WORDS = (
    b"error", b"fail", b"fatal", b"exception", b"traceback", b"panic", b"critical", b"crash",
    b"abort", b"segfault", b"segmentation fault", b"timed out", b"timeout", b"denied",
    b"refused", b"unexpected", b"assert", b"invalid", b"cannot", b"could not", b"unable to",
    b"no such", b"not found", b"out of memory", b"killed",
)  # fmt: skip
_WARN_WORDS = (b"warn", b"deprecat")
_ERROR_PATTERNS = (
    re.compile(rb"exit(?:ed)? (?:with|code|status)[ :]*[1-9]"),
    re.compile(rb'http/[\d.]+" +[45]\d\d\b'),
    re.compile(rb"status(?:[ _]?code)?[:=]? *[45]\d\d\b"),
)
# "failures: 0" and "0 errors" count nothing: not failures.
_ZERO_AFTER = re.compile(rb"[a-z]*\)?[:=]? *0(?![\d.])")
_ZERO_BEFORE = re.compile(rb"(?<![\d.])0 \Z")
_TOKEN = re.compile(rb"[^\s'\"\\]*")
_TOKEN_BREAKS = (b" ", b"\t", b"\n", b"\r", b'"', b"'", b"\\")
_SUMMARY = re.compile(
    rb"\d (?:passed|failed|passing|failing|pending|skipped|errors?|failures?|tests?|examples?"
    rb"|runs?|assertions?)\b|tests run:|test result:|ran \d+ tests?"
    rb"|build (?:success|failure|failed|successful)|exit(?:ed)? (?:with|code|status)"
)
# A leading timestamp some CI systems put on every line (GitHub Actions, Taskcluster).
_PREFIX = rb"(?:\d{4}-\d\d-\d\dt[\d:.]+z? |\[task [^\]\n]{0,40}\] )?"
_STRIP_PREFIX = re.compile(_PREFIX)
_HEADER = _PREFIX + (
    rb"(?:\$ |\+ |> |==> |##\[|\[command\]|step \d|run |travis_fold:start"
    rb"|[=*#-]{3,} [^\n]{1,80}? [=*#-]{3,}\r?$)"
)
_FRAME = _PREFIX + rb"[ \t]*(?:at |\.\.\. \d+ more|caused by:|file \"|\d+: |#\d+ |[\w/.-]+:\d+:in )"
_SECTION_END = re.compile(rb"[=*#-]{3}")
_BANNER_FILL = frozenset(b"=_*#-")
_CODE_LINE = re.compile(
    rb"[{;]\s*$|^\s*(?:def |class |import |from \S+ import |return\b|#include|//|/\*"
    rb"|(?:if|elif|else|try|except|for|while|with)\b.*:\s*$)"
)
_CATEGORICAL = (
    re.compile(rb'http/[\d.]+" +\d{3}\b'),
    re.compile(rb"status(?:[ _]?code)?[:=]? *\d{3}\b"),
    re.compile(rb"exit(?:ed)? (?:with|code|status)[ :]*\d+"),
)
# Digits other than 0 read as 1: lines differing only in numbers scan alike, zero counts stay.
_NONZERO_DIGITS = bytes.maketrans(b"23456789", b"11111111")
_QUERY_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]{3,}")
_QUERY_STOPWORDS = frozenset((
    "which", "what", "when", "where", "why", "how", "does", "this", "that", "there", "these",
    "those", "with", "from", "into", "about", "build", "step", "test", "tests", "error",
    "errors", "message", "messages", "fail", "failed", "failing", "failure", "failures",
    "final", "status", "quote", "occur", "occurs", "appear", "appears", "logged", "line",
    "lines", "log", "logs", "stream", "job", "task", "were", "have", "been", "give", "given",
    "travis", "jenkins", "github", "gitlab",
))  # fmt: skip

_MIN_LINES = 8
_CONTEXT_BEFORE = 3  # lines of context kept before an error, if not shown already
_MESSAGE_LOOKAHEAD = 8  # an exception's message lines before its first stack frame
_MAX_BLOCK = 400
_TAIL_LINES = 3
_SUMMARY_TAIL = 0.2  # the final summary is looked for in the last fifth of the log
_QUERY_TERM_SHARE = 0.15
_QUERY_TERM_KINDS = 6
_MIN_RUN = 2
_TOKEN_WINDOW = 40
_MARKER_CHARS = 50  # a run this short costs less kept than a marker does
_MAX_OUTPUT_SHARE = 0.9
_CODE_SAMPLE = 400
_CODE_SHARE = 0.12


class LogCompressor:
    kind = "log"

    def compress(self, text: str, ctx: Context) -> Compressed | None:
        lines = text.split("\n")
        if len(lines) < _MIN_LINES:
            return None
        clean = _clean_lines(text, lines)
        if _looks_like_code(clean):
            return None
        log = _Log(clean)
        keep = _select(log, _classify(log, ctx.query))
        return _render(clean, keep, len(text))


def _clean_lines(text: str, lines: list[str]) -> list[str]:
    """Lines without ANSI codes; a carriage-return redraw reduced to its final segment."""
    stripped = _ANSI.sub("", text) if "\x1b" in text else text
    clean = stripped.split("\n") if stripped is not text else list(lines)
    redraws = [match.start() for match in _REDRAW.finditer(stripped)]
    if redraws:
        starts = list(accumulate((len(line) + 1 for line in clean), initial=0))
        for index in dict.fromkeys(bisect_right(starts, p) - 1 for p in redraws):
            line = clean[index]
            body = line[:-1] if line.endswith("\r") else line
            cut = body.rfind("\r")
            if body[cut + 1 :].strip():
                clean[index] = line[cut + 1 :]
    return clean


def _looks_like_code(clean: list[str]) -> bool:
    """Source code routed here by mistake: many of its first lines end in `{` or `;` or open
    a definition. Logs almost never do; code compressed as a log would lose its bodies."""
    sample = [
        line.encode("utf-8", "surrogatepass") for line in clean[:_CODE_SAMPLE] if line.strip()
    ]
    shaped = sum(1 for line in sample if _CODE_LINE.search(line))
    return shaped > len(sample) * _CODE_SHARE


class _Text:
    """Lines as bytes, raw and ASCII-lowercased (same offsets), with line lookup by offset."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.low = raw.lower()
        self.lines = self.low.split(b"\n")
        self.starts = list(accumulate((len(line) + 1 for line in self.lines), initial=0))

    def line_of(self, offset: int) -> int:
        return bisect_right(self.starts, offset) - 1

    def lines_matching(self, pattern: re.Pattern[bytes], start: int = 0) -> set[int]:
        return {self.line_of(m.start()) for m in pattern.finditer(self.low, start)}

    def lines_starting(self, head: bytes) -> set[int]:
        """Lines that start with `head`; searched from newlines, a fast literal scan."""
        after_newline = re.finditer(b"\n" + head, self.low, re.MULTILINE)
        found = {self.line_of(m.start()) + 1 for m in after_newline}
        if re.match(head, self.low, re.MULTILINE):
            found.add(0)
        return found


class _Log(_Text):
    """The cleaned log: its masked lines and their templates, its stack frames, and a view of
    its distinct lines for keyword scans (lines differing only in digits read the same)."""

    def __init__(self, clean: list[str]) -> None:
        super().__init__("\n".join(clean).encode("utf-8", "surrogatepass"))
        self.masked = mask(self.low)
        self.templates = templates(self.masked)
        self.frames = self.lines_starting(_FRAME)
        groups: dict[bytes, list[int]] = {}
        for index, line in enumerate(self.raw.translate(_NONZERO_DIGITS).split(b"\n")):
            groups.setdefault(line, []).append(index)
        self.distinct = _Text(b"\n".join(groups))
        self.copies = list(groups.values())

    def expand(self, distinct_lines: Iterable[int]) -> set[int]:
        """The log's lines behind lines of the distinct view."""
        return {index for line in distinct_lines for index in self.copies[line]}

    def body(self, index: int) -> bytes:
        """A line without its leading timestamp prefix."""
        line = self.lines[index]
        match = _STRIP_PREFIX.match(line)
        return line[match.end() :] if match else line


def _classify(log: _Log, query: str) -> bytearray:
    """One class per line; the first class found wins (errors before warnings before ...)."""
    classes = bytearray(len(log.lines))

    def mark(lines: Iterable[int], cls: int) -> None:
        for index in lines:
            if classes[index] == OTHER:
                classes[index] = cls

    mark(_error_lines(log), ERROR)
    mark(log.expand(_word_lines(log.distinct, _WARN_WORDS)), WARN)
    mark(_query_lines(log, query), QUERY)
    tail = log.starts[int(len(log.lines) * (1 - _SUMMARY_TAIL))]
    mark(log.lines_matching(_SUMMARY, tail), SUMMARY)
    mark(log.lines_starting(_HEADER), HEADER)
    return classes


def _error_lines(log: _Log) -> set[int]:
    found = log.expand(_word_lines(log.distinct, _ERROR_WORDS, counts=True))
    for pattern in _ERROR_PATTERNS:
        found |= log.lines_matching(pattern)
    return found


def _word_lines(log: _Text, words: Iterable[bytes], counts: bool = False) -> set[int]:
    """Lines where one of `words` is reported, not just mentioned (see `_is_mention`)."""
    found: set[int] = set()
    low = log.low
    for word in words:
        start = low.find(word)
        while start >= 0:
            index = log.line_of(start)
            if index in found or not _is_mention(log, start, start + len(word), counts):
                found.add(index)
                start = low.find(word, log.starts[index + 1])
            else:
                start = low.find(word, start + len(word))
    return found


def _is_mention(log: _Text, start: int, end: int, counts: bool) -> bool:
    """True when a keyword names something rather than reports it: inside a lowercase word
    (`mozcrash`) or an identifier (`error_list`), a path or URL, a command-line flag
    (`--timeout`, `-Werror`), or a zero count (`failures: 0`, `0 errors`) when `counts`."""
    low = log.low
    before = low[start - 1 : start]
    if before == b"_" or low[end : end + 1] == b"_":
        return True
    if before.isalpha() and log.raw[start : start + 1].islower():
        return True
    head = b""
    if before and before not in _TOKEN_BREAKS:
        window = low[max(0, start - _TOKEN_WINDOW) : start]
        head = window[max(map(window.rfind, _TOKEN_BREAKS)) + 1 :]
    tail = _TOKEN.match(low, end, end + _TOKEN_WINDOW)
    if head.lstrip(b"[(,=").startswith(b"-") or b"/" in head or (tail and b"/" in tail[0]):
        return True
    return counts and bool(
        _ZERO_AFTER.match(low, end, end + 12) or _ZERO_BEFORE.search(low, max(0, start - 8), start)
    )


def _query_lines(log: _Log, query: str) -> set[int]:
    """Lines naming a word of the question (as a 6-letter stem) that picks out one kind of
    line: few templates and few lines. A word spread over many kinds (a tool's name, a path
    part) says nothing about which lines matter."""
    words = {w.lower() for w in _QUERY_WORD.findall(query)} - _QUERY_STOPWORDS
    limit = max(3, int(len(log.lines) * _QUERY_TERM_SHARE))
    found: set[int] = set()
    for stem in sorted({w[:6].encode() for w in words}):
        lines = log.expand(_word_lines(log.distinct, (stem,)))
        kinds = {log.templates[log.masked[i]] for i in lines}
        if len(lines) <= limit and len(kinds) <= _QUERY_TERM_KINDS:
            found |= lines
    return found


def _select(log: _Log, classes: bytearray) -> bytearray:
    """Which lines to keep: important ones, their blocks and context, first of each template."""
    n = len(log.lines)
    keep = bytearray(n)
    for i, cls in enumerate(classes):
        if cls in (ERROR, WARN, QUERY):
            keep[i] = 1
    _keep_blocks(log, classes, keep)
    _keep_last_summaries(log, classes, keep)
    _keep_first_of_templates(log, classes, keep)
    _keep_context(log, classes, keep)
    for i in range(max(0, n - _TAIL_LINES), n):
        keep[i] = 1
    return keep


def _keep_blocks(log: _Log, classes: bytearray, keep: bytearray) -> None:
    """Keeps what follows an error (frames, deeper-indented lines, a failure section), except
    lines repeating one already kept word for word (the same stack trace printed again)."""
    shown: set[bytes] = set()
    next_stop = _next_stops(log)
    i = 0
    while i < len(log.lines):
        if classes[i] != ERROR:
            i += 1
            continue
        end = _block_end(log, i, next_stop)
        for j in range(i + 1, end):
            body = log.body(j)
            if classes[j] == ERROR or body not in shown:
                shown.add(body)
                keep[j] = 1
        i = max(i + 1, end)


def _next_stops(log: _Log) -> list[int]:
    """For each line, the first line at or after it that is blank or a stack frame."""
    n = len(log.lines)
    stops = [n] * (n + 1)
    for i in range(n - 1, -1, -1):
        stops[i] = i if i in log.frames or not log.lines[i].strip() else stops[i + 1]
    return stops


def _block_end(log: _Log, start: int, next_stop: list[int]) -> int:
    """The first line after the block that the error line at `start` opens: a failure
    section runs to the next banner; otherwise frames, lines indented deeper than the error,
    and message lines shortly followed by a frame (blank lines only between frames)."""
    n = len(log.lines)
    head = log.body(start)
    j = start + 1
    if _is_failure_banner(head):
        while j < n and j - start < _MAX_BLOCK * 4 and not _SECTION_END.match(log.body(j)):
            j += 1
        return j
    indent = _indent(head)
    while j < n and j - start < _MAX_BLOCK:
        stop = next_stop[j]
        body = log.body(j)
        if not body.strip():
            if j + 1 in log.frames:
                j += 1
                continue
            break
        frame_soon = stop in log.frames and stop - j < _MESSAGE_LOOKAHEAD
        if not (frame_soon or _indent(body) > indent):
            break
        j += 1
    return j


def _is_failure_banner(line: bytes) -> bool:
    """A test runner's section banner about failures or errors (`=== FAILURES ===`)."""
    text = line.strip()
    return (
        len(text) > 6
        and _BANNER_FILL.issuperset(text[:3] + text[-3:])
        and (b"fail" in text or b"error" in text)
    )


def _indent(line: bytes) -> int:
    return len(line) - len(line.lstrip())


def _keep_last_summaries(log: _Log, classes: bytearray, keep: bytearray) -> None:
    """Of the summary lines sharing a template, the last is the final summary: keep it."""
    last = {log.masked[i]: i for i, cls in enumerate(classes) if cls == SUMMARY}
    for i in last.values():
        keep[i] = 1


def _keep_first_of_templates(log: _Log, classes: bytearray, keep: bytearray) -> None:
    """The first line of each template (with its categorical fields) whose base template
    recurs, unless a line of it is kept already: one example per run, and a line that
    breaks a run's pattern (a 304 among 200s). Headers use the finer masked line as
    template and are kept even when unique. A line whose template never recurs is neither
    a run nor near an error: it is elided."""
    fields = _categorical_fields(log)
    bases = [
        masked if classes[i] == HEADER else log.templates[masked]
        for i, masked in enumerate(log.masked)
    ]
    counts = Counter(bases)
    seen: set[bytes] = set()
    for i, base in enumerate(bases):
        key = base + fields.get(i, b"")
        if keep[i] or key in seen or not log.masked[i].strip() or classes[i] == SUMMARY:
            seen.add(key)
        elif counts[base] >= _MIN_RUN or classes[i] == HEADER:
            seen.add(key)
            keep[i] = 1


def _categorical_fields(log: _Log) -> dict[int, bytes]:
    """Short standalone numbers (an HTTP status, an exit code) per line: few values, so part
    of a template though digits are masked."""
    found: dict[int, bytes] = {}
    for pattern in _CATEGORICAL:
        for match in pattern.finditer(log.low):
            index = log.line_of(match.start())
            found[index] = found.get(index, b"") + match.group()
    return found


def _keep_context(log: _Log, classes: bytearray, keep: bytearray) -> None:
    """Up to a few lines before each error that say what failed: lines indented deeper than
    the error (a test's name above its failure) or of a template not shown yet; never a line
    already shown. Flat neighbours in a system log are just other records."""
    shown = {masked for masked, kept in zip(log.masked, keep, strict=True) if kept}
    kinds = {log.templates[masked] for masked in shown}
    for i, cls in enumerate(classes):
        if cls != ERROR:
            continue
        indent = -1
        for j in range(i - 1, max(-1, i - 1 - _CONTEXT_BEFORE), -1):
            masked = log.masked[j]
            if not masked.strip():
                break
            if keep[j] or masked in shown:
                continue
            if log.templates[masked] in kinds:
                indent = _indent(log.body(i)) if indent < 0 else indent
                if _indent(log.body(j)) <= indent:
                    continue
            shown.add(masked)
            kinds.add(log.templates[masked])
            keep[j] = 1


def _render(clean: list[str], keep: bytearray, size: int) -> Compressed | None:
    """Kept lines plus one marker per elided run; runs too short to pay for a marker stay."""
    out: list[str] = []
    origin: list[int | None] = []
    n = len(clean)
    i = 0
    while i < n:
        j = i
        while j < n and not keep[j]:
            j += 1
        if j == i:
            out.append(clean[i])
            origin.append(i)
            i += 1
            continue
        if sum(len(clean[k]) for k in range(i, j)) <= _MARKER_CHARS:
            out.extend(clean[i:j])
            origin.extend(range(i, j))
        else:
            out.append(markers.elided_lines(i + 1, j))
            origin.append(None)
        i = j
    if sum(len(line) + 1 for line in out) >= size * _MAX_OUTPUT_SHARE:
        return None
    return Compressed(lines=out, origin=origin)


register(LogCompressor())
