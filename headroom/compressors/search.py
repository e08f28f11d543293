"""Search compressor: grep / ripgrep / git grep output, shortened to a faithful line subset.

What an agent needs from a search is which files match, how many times, and a few
representative matches; files with many matches are where the tokens go. So every file keeps
its path (on a kept line or its heading), its first match, a second one while the output stays
small, and every match that mentions a discriminating term of the question; the other matches
are dropped, stored on their own with `ctx.stash`, and named by ONE marker at the end that
says how many matches each shortened file had.

Recognised shapes (ANSI colour codes are removed first):
- `path:line:content` (grep -n, git grep -n, rg), with `-C` context lines `path-line-content`
  and `--` separators between groups;
- `--heading` (ripgrep's default on a terminal, git grep --heading): a path line, then
  `line:content` / `line-content` rows;
- `path:content` without line numbers (grep -r), accepted only when the paths look like paths
  and each file's lines are contiguous, as grep prints them.
Anything else (most lines not parsing) returns None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from headroom import markers
from headroom.compressors.base import Compressed, Context, register

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# A path runs up to the first colon (a drive letter such as `C:\` aside); no backtracking.
_NUMBERED = re.compile(r"((?:[A-Za-z]:[\\/])?[^:]+):(\d+):")
_PLAIN = re.compile(r"((?:[A-Za-z]:[\\/])?[^:\s]+):")
_ROW = re.compile(r"(\d+)([:-])")
# `-12-` inside a context line `path-12-content`; the lookahead lets `a-1-2-x` try both.
_CONTEXT_NUMBER = re.compile(r"-(\d+)(?=-)")
_FILE_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9_]{0,11}$")
_QUERY_TERM = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[.-][A-Za-z_][A-Za-z0-9_]*)*")

MATCH, CONTEXT, HEADING, SEPARATOR, BLANK, OTHER = range(6)

_MIN_PARSED_SHARE = 0.8
"""Share of non-blank lines that must parse before the payload counts as search output."""
_KEPT_SHARE = 0.4
"""Second matches per file are kept while the output stays within this share of the input."""
_MIN_DROPPED_PER_FILE = 2
"""A file is shortened only when that drops at least this many matches."""
_COMMON_TERM_SHARE = 0.25
"""A question term found in more of the groups than this says nothing about which to keep."""
_SELECTED_SHARE = 1 / 3
"""The question's terms together may keep at most this share of the groups."""
_MIN_TERM_LENGTH = 3
_DETAIL_FILES = 6
"""Shortened files the marker names with their counts (the biggest); the rest as `+N files`."""
_MIN_DROPPED_CHARS = 400
"""Below this, the marker and lost detail are not worth the saving."""

_STOPWORD_TEXT = """
    a about across after all also an and any are as at be been being both but by can could
    did do does doing each every for from had has have here how if in into is it its itself
    just may me might more most my no not of on once only or other our out over own same
    should so some such than that the their them then there these they this those through
    to too under until up use used uses using very was we were what when where which while
    who whom why will with within would you your
    code codebase call called calls defined define defines definition definitions exist exists
    file files find found give implement implements implemented line lines list match matches
    matching place places repo repository search show tell
    """
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
"""English function words and generic words of questions about code; never search terms."""


@dataclass(slots=True)
class _Parsed:
    """Per input line: its kind, its file (index into paths, -1 for none), its content start."""

    kinds: list[int] = field(default_factory=list)
    files: list[int] = field(default_factory=list)
    content_at: list[int] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def add(self, kind: int, file: int = -1, content_at: int = 0) -> None:
        self.kinds.append(kind)
        self.files.append(file)
        self.content_at.append(content_at)


@dataclass(slots=True)
class _Group:
    """A run of one file's lines shown together: one match, or a `-C` group of matches."""

    file: int
    first: int
    last: int
    matches: int


class SearchCompressor:
    """Keeps every file and its representative matches; elides the rest behind one marker."""

    kind = "search"

    def compress(self, text: str, ctx: Context) -> Compressed | None:
        if not text or "\x00" in text:
            return None
        lines = text.split("\n")
        if "\x1b" in text:
            lines = [_ANSI.sub("", line) for line in lines]
        parsed = _parse(lines)
        if parsed is None:
            return None
        groups = _groups(parsed)
        texts = [_group_text(lines, parsed, group) for group in groups]
        dropped = _dropped_groups(lines, parsed, groups, _question_hits(ctx.query, texts))
        dropped_lines = _dropped_lines(parsed, groups, dropped)
        if sum(len(lines[i]) for i in dropped_lines) < _MIN_DROPPED_CHARS:
            return None
        return _render(lines, parsed, groups, dropped, dropped_lines, ctx)


def _parse(lines: list[str]) -> _Parsed | None:
    """The first reading of the lines as search output under which most of them parse."""
    for reader in (_parse_numbered, _parse_heading, _parse_plain):
        parsed = reader(lines)
        if parsed is not None and _looks_parsed(parsed):
            return parsed
    return None


def _looks_parsed(parsed: _Parsed) -> bool:
    kinds = parsed.kinds
    if kinds.count(MATCH) < 2:
        return False
    nonblank = len(kinds) - kinds.count(BLANK)
    return nonblank - kinds.count(OTHER) >= _MIN_PARSED_SHARE * nonblank


def _parse_numbered(lines: list[str]) -> _Parsed | None:
    """`path:line:content` with optional `path-line-content` context and `--` separators."""
    candidates = [_NUMBERED.match(line) for line in lines]
    known = {path for path in {m.group(1) for m in candidates if m is not None} if _is_path(path)}
    if not known:
        return None
    longest = max(len(path) for path in known)
    parsed = _Parsed()
    index: dict[str, int] = {}
    for line, found in zip(lines, candidates, strict=True):
        # A context line whose content holds `:12:` also reads as a match of a longer "path".
        context = _context_path(line, known, longest) if "-" in line else None
        if context is not None and (found is None or len(context[0]) < len(found.group(1))):
            parsed.add(CONTEXT, _file_index(parsed, index, context[0]), context[1])
        elif found is not None and found.group(1) in known:
            parsed.add(MATCH, _file_index(parsed, index, found.group(1)), found.end())
        else:
            parsed.add(_structural_kind(line))
    return parsed


def _context_path(line: str, known: set[str], longest: int) -> tuple[str, int] | None:
    """The known path a context line `path-12-content` starts with, and its content start."""
    for number in _CONTEXT_NUMBER.finditer(line):
        if number.start() > longest:
            return None  # past any known path: stop, so a long line costs linear time
        if line[: number.start()] in known:
            return line[: number.start()], number.end() + 1
    return None


def _parse_heading(lines: list[str]) -> _Parsed | None:
    """`--heading` (rg, git grep): a path line, then `line:content` / `line-content` rows."""
    parsed = _Parsed()
    index: dict[str, int] = {}
    file = -1
    for line in lines:
        row = _ROW.match(line)
        kind = _structural_kind(line)
        if row is not None and file >= 0:
            parsed.add(MATCH if row.group(2) == ":" else CONTEXT, file, row.end())
        elif kind == OTHER and _is_path(line.rstrip("\r")):
            file = _file_index(parsed, index, line.rstrip("\r"))
            parsed.add(HEADING, file)
        else:
            parsed.add(kind)
    return parsed if parsed.paths else None


def _parse_plain(lines: list[str]) -> _Parsed | None:
    """`path:content` (grep -r without -n): paths must look like paths and stay contiguous."""
    parsed = _Parsed()
    index: dict[str, int] = {}
    for line in lines:
        found = _PLAIN.match(line)
        path = found.group(1) if found is not None else ""
        if found is None or not _has_path_shape(path):
            parsed.add(_structural_kind(line))
            continue
        if path in index and parsed.files[-1] != index[path]:
            return None  # grep prints a file's lines together; scattered "paths" are not paths
        parsed.add(MATCH, _file_index(parsed, index, path), found.end())
    return parsed


def _is_path(candidate: str) -> bool:
    """Looks like a file path: a separator or an extension, else one word not led by a digit.

    This keeps log timestamps (`2024-01-02 12:00:00`, `2024-01-02T12:00:00`) from reading as
    `path:line:`.
    """
    if not candidate or candidate != candidate.strip() or len(candidate) > 4096:
        return False
    if _has_path_shape(candidate):
        return True
    return candidate[0].isalpha() and not any(char.isspace() for char in candidate)


def _has_path_shape(candidate: str) -> bool:
    return "/" in candidate or "\\" in candidate or _FILE_EXTENSION.search(candidate) is not None


def _structural_kind(line: str) -> int:
    bare = line.rstrip("\r")
    if not bare.strip():
        return BLANK
    return SEPARATOR if bare == "--" else OTHER


def _file_index(parsed: _Parsed, index: dict[str, int], path: str) -> int:
    if path not in index:
        index[path] = len(parsed.paths)
        parsed.paths.append(path)
    return index[path]


def _groups(parsed: _Parsed) -> list[_Group]:
    """Runs of one file's match/context lines; without context, every match stands alone."""
    kinds, files = parsed.kinds, parsed.files
    with_context = CONTEXT in kinds or SEPARATOR in kinds
    groups: list[_Group] = []
    current: _Group | None = None
    for i, kind in enumerate(kinds):
        if kind not in (MATCH, CONTEXT):
            current = None
            continue
        if current is None or current.file != files[i] or not with_context:
            current = _Group(files[i], i, i, 0)
            groups.append(current)
        current.last = i
        current.matches += kind == MATCH
    return groups


def _question_hits(query: str, texts: list[str]) -> list[bool]:
    """Per group, whether it mentions a term of the question that picks out a minority."""
    terms: list[str] = []
    for word in _QUERY_TERM.findall(query.lower()):
        if len(word) >= _MIN_TERM_LENGTH and word not in _STOPWORDS and word not in terms:
            terms.append(word)
    hits = {term: [term in text for text in texts] for term in terms}
    terms = [term for term in terms if sum(hits[term]) <= _COMMON_TERM_SHARE * len(texts)]
    # Terms that together pick out a large share are the search pattern restated: drop the
    # commonest until the rest are selective.
    terms.sort(key=lambda term: sum(hits[term]))
    union = _union(terms, hits, len(texts))
    while terms and sum(union) > _SELECTED_SHARE * len(texts):
        terms.pop()
        union = _union(terms, hits, len(texts))
    return union


def _union(terms: list[str], hits: dict[str, list[bool]], count: int) -> list[bool]:
    if not terms:
        return [False] * count
    return [any(row) for row in zip(*(hits[term] for term in terms), strict=True)]


def _group_text(lines: list[str], parsed: _Parsed, group: _Group) -> str:
    """A group's contents without the path prefixes, lower-cased, for term lookups."""
    starts = parsed.content_at
    return "\n".join(lines[i][starts[i] :].lower() for i in range(group.first, group.last + 1))


def _dropped_groups(
    lines: list[str], parsed: _Parsed, groups: list[_Group], on_question: list[bool]
) -> list[bool]:
    """Per group, whether it is elided: past its file's first match(es) and off the question.

    Every file keeps its first match; a second one per file is kept while the output stays
    within `_KEPT_SHARE` of the input, the files with most matches first.
    """
    droppable = _droppable_by_file(parsed, groups, on_question)
    sizes = [sum(len(lines[i]) + 1 for i in range(g.first, g.last + 1)) for g in groups]
    total = sum(len(line) + 1 for line in lines)
    budget = _KEPT_SHARE * total - (total - sum(sizes[p] for ps in droppable for p in ps))
    matches = [0] * len(parsed.paths)
    for group in groups:
        matches[group.file] += group.matches
    for file in sorted(range(len(droppable)), key=lambda f: (-matches[f], f)):
        positions = droppable[file]
        if not positions or sizes[positions[0]] > budget:
            continue
        if sum(groups[p].matches for p in positions[1:]) >= _MIN_DROPPED_PER_FILE:
            budget -= sizes[positions[0]]
            del positions[0]
    dropped = [False] * len(groups)
    for positions in droppable:
        for position in positions:
            dropped[position] = True
    return dropped


def _droppable_by_file(
    parsed: _Parsed, groups: list[_Group], on_question: list[bool]
) -> list[list[int]]:
    """Per file, its groups past the first match that no question term picks out.

    A file that would lose fewer than `_MIN_DROPPED_PER_FILE` matches loses none.
    """
    droppable: list[list[int]] = [[] for _ in parsed.paths]
    kept_matches = [0] * len(parsed.paths)
    for position, group in enumerate(groups):
        if kept_matches[group.file] < 1:
            kept_matches[group.file] += group.matches
        elif not on_question[position]:
            droppable[group.file].append(position)
    for positions in droppable:
        if sum(groups[p].matches for p in positions) < _MIN_DROPPED_PER_FILE:
            positions.clear()
    return droppable


def _dropped_lines(parsed: _Parsed, groups: list[_Group], dropped: list[bool]) -> list[int]:
    """Indices of dropped group lines plus the `--` separators no kept pair of groups needs."""
    kinds = parsed.kinds
    gone = [False] * len(kinds)
    for group, is_dropped in zip(groups, dropped, strict=True):
        if is_dropped:
            for i in range(group.first, group.last + 1):
                gone[i] = True
    # A separator stays only between a kept group before it and a kept group right after it.
    next_kept = [False] * len(kinds)
    following = False
    for i in range(len(kinds) - 1, -1, -1):
        next_kept[i] = following
        if kinds[i] in (MATCH, CONTEXT):
            following = not gone[i]
    kept_before = False
    for i, kind in enumerate(kinds):
        if kind in (MATCH, CONTEXT):
            kept_before = kept_before or not gone[i]
        elif kind == SEPARATOR:
            gone[i] = not (kept_before and next_kept[i])
            kept_before = kept_before and gone[i]
    return [i for i, is_gone in enumerate(gone) if is_gone]


def _render(
    lines: list[str],
    parsed: _Parsed,
    groups: list[_Group],
    dropped: list[bool],
    dropped_lines: list[int],
    ctx: Context,
) -> Compressed:
    gone = set(dropped_lines)
    kept = [i for i in range(len(lines)) if i not in gone]
    # The marker goes after the last non-blank kept line, so a trailing newline stays last.
    at = len(kept)
    while at > 0 and parsed.kinds[kept[at - 1]] == BLANK:
        at -= 1
    key = ctx.stash("\n".join(lines[i] for i in dropped_lines))
    elided = sum(g.matches for g, is_dropped in zip(groups, dropped, strict=True) if is_dropped)
    marker = markers.elided_part(elided, "matches", key, _detail(parsed, groups, dropped))
    out_lines = [lines[i] for i in kept]
    origin: list[int | None] = list(kept)
    out_lines.insert(at, marker)
    origin.insert(at, None)
    return Compressed(lines=out_lines, origin=origin)


def _detail(parsed: _Parsed, groups: list[_Group], dropped: list[bool]) -> str:
    """`matches per shortened file: a.py 12, b.py 7, +N files`, biggest files first."""
    totals = [0] * len(parsed.paths)
    shortened = [False] * len(parsed.paths)
    for group, is_dropped in zip(groups, dropped, strict=True):
        totals[group.file] += group.matches
        shortened[group.file] = shortened[group.file] or is_dropped
    files = [f for f in range(len(totals)) if shortened[f]]
    # A `]` would end the marker early (`pages/[id].tsx`): such files are only counted.
    nameable = [f for f in files if "]" not in parsed.paths[f]]
    nameable.sort(key=lambda f: (-totals[f], f))
    parts = [f"{parsed.paths[f]} {totals[f]}" for f in nameable[:_DETAIL_FILES]]
    rest = len(files) - len(parts)
    if rest > 0:
        parts.append(f"+{rest} files")
    return "matches per shortened file: " + ", ".join(parts)


register(SearchCompressor())
