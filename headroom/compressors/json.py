"""JSON compressor: minified JSON (or JSON Lines) with tables, elided records and short strings.

API responses, webhook payloads and test-runner JSON repeat their keys in every record and spend
most of their bytes on records nobody asks about. This compressor parses the payload (numbers kept
as their source text, key order kept) and writes it back compact:

- Minified. A container stays on one line when it fits in `LINE_MAX` characters; otherwise it
  opens a block with one child per line, indented one space per level, children still minified.
- An array of 3+ uniform objects (each holding at least 90 % of the union of keys) that would
  not fit on a line, with rows of `TABLE_ROW_MAX` characters or less on average, becomes a table:
  a `@columns [...]` line with the keys in first-seen order, then one row per record, a JSON
  array of its cells in column order. A key the record lacks is an empty cell (`[1,,3]`); a
  nested value inside a cell stays minified JSON:

      "steps":[
       @columns ["name","status","conclusion","number"]
       ["Set up job","completed","success",1],
       [... 6 records elided, key=5f84d3f95e22b896; conclusion: 6 "success"; ids: "Run x", ...]
       ["Run yarn run format-check","completed","failure",8]
      ]

- An array of 8+ records (or a map of 8+ objects sharing a key, such as tasks keyed by id) keeps
  its first and last record and every anomaly (see `json_table`); each run of other records
  becomes one marker line with their count, the key of their JSON text, counts of status-like
  values and their identities (`"key":"name"`; a budget of characters per array, then `+N more`).
  In a one-line context (a table cell, a JSON Lines record) the marker is a JSON string element
  instead, and in an object the value of a `"..."` key.
- A string longer than `STR_MAX` keeps its first and last lines and every line naming a failure,
  a selective question term or (in a patch) a change, unless an earlier string showed that line;
  each elided run of lines and each clipped long line says so with a marker inside the string,
  keyed to the whole string. A string of `REPEAT_MIN`+ characters seen before becomes a marker
  naming the JSON Pointer of its first occurrence.
- JSON Lines input keeps one value (or table row) per line, without enclosing brackets.

Input that does not parse as JSON or JSON Lines (or nests deeper than the parser can go) is not
this compressor's: it returns None.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from itertools import accumulate, groupby
from json.encoder import encode_basestring, encode_basestring_ascii

from headroom import markers
from headroom.compressors import json_table
from headroom.compressors.base import Compressed, Context, register
from headroom.compressors.json_table import Num, Plan

LINE_MAX = 240
STR_MAX = 400
REPEAT_MIN = 200
LINE_CAP = 300
ELIDE_MIN_RECORDS = 8
ELIDE_MIN_CHARS = 2000
MAP_MIN_ENTRIES = 8
TABLE_MIN_ROWS = 3
TABLE_ROW_MAX = 600
IDS_MIN_BUDGET = 8000
MARKER_CHARS = 80
HEAD_LINES, TAIL_LINES = 3, 2
MAX_TELLING = 200
SEEN_LINE_MIN = 24

_loads = json.JSONDecoder(parse_float=Num, parse_int=Num, parse_constant=Num).decode
_SENTINELS = "\x00\x01\x02\x03\x04\x05\x06\x07"  # escaped as \u00XX, in digits only
_Entry = tuple[str, object, str]  # (prefix such as '"key":', value, JSON Pointer)
Rendered = str | list[str]  # one line, or a block of lines


def parse(text: str) -> tuple[object, bool] | None:
    """The payload's value and whether it was JSON Lines (then a list of the lines' values)."""
    stripped = text.strip().lstrip("\ufeff")
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        return _loads(stripped), False
    except json.JSONDecodeError as error:
        if not error.msg.startswith("Extra data"):
            return None
    except (ValueError, RecursionError):
        return None
    lines = [line.strip() for line in stripped.split("\n") if line.strip()]
    if any(line[0] not in "[{" for line in lines):
        return None
    try:
        return [_loads(line) for line in lines], True
    except (ValueError, RecursionError):
        return None


class JsonCompressor:
    kind = "json"

    def compress(self, text: str, ctx: Context) -> Compressed | None:
        try:
            parsed = parse(text)
            if parsed is None:
                return None
            sentinel = next((c for c in _SENTINELS if f"\\u{ord(c):04x}" not in text), None)
            if sentinel is None:
                return None
            renderer = _Renderer(ctx, text.isascii(), sentinel)
            value, is_lines = parsed
            if is_lines and isinstance(value, list):
                lines = renderer.json_lines(value)
            else:
                block = renderer.block(value, "")
                lines = [block] if isinstance(block, str) else block
        except RecursionError:
            return None
        if sum(len(line) + 1 for line in lines) >= len(text):
            return None
        return Compressed(lines=lines)


def _scalar(value: object) -> str:
    if isinstance(value, Num):
        return value.text
    return "null" if value is None else "true" if value is True else "false"


def _pointer(ptr: str, key: str) -> str:
    return ptr + "/" + key.replace("~", "~0").replace("/", "~1")


def _marker_safe(text: str) -> str:
    """A marker ends at its first ']', so any other ']' is written as its JSON escape."""
    return text.replace("]", "\\u005d").replace("\n", "\\n")


class _Renderer:
    """Writes one parsed payload; remembers stash keys and long strings already shown."""

    def __init__(self, ctx: Context, ascii_only: bool, sentinel: str) -> None:
        self.stash = ctx.stash
        self.ascii_only = ascii_only
        self.sentinel = sentinel
        self.unquote_numbers = re.compile(rf'"\\u{ord(sentinel):04x}([^"]*)"').sub
        self.encode = encode_basestring_ascii if ascii_only else encode_basestring
        self.query = json_table.Words.of_question(ctx.query)
        self.first_seen: dict[str, str] = {}
        self.lines_seen: set[str] = set()
        self.stash_keys: dict[str, str] = {}

    def key(self, text: str) -> str:
        key = self.stash_keys.get(text)
        if key is None:
            key = self.stash_keys[text] = self.stash(text)
        return key

    # --- whole values ---------------------------------------------------------------------

    def raw(self, value: object) -> str:
        """The value minified in full (what a marker's key stores), by the C encoder: each
        number goes in as a string marked by a control character the source never escapes
        (so no string of its own holds it), and comes out unquoted."""
        text = json.dumps(
            value,
            ensure_ascii=self.ascii_only,
            separators=(",", ":"),
            default=self.sentinel_number,
            check_circular=False,
        )
        return self.unquote_numbers(r"\1", text)

    def sentinel_number(self, value: object) -> str:
        if not isinstance(value, Num):
            raise TypeError(f"not JSON: {type(value).__name__}")
        return self.sentinel + value.text

    def inline(self, value: object, ptr: str) -> str:
        """The value compressed on one line (markers become JSON strings)."""
        if isinstance(value, str):
            return self.string(value, ptr)
        if not isinstance(value, dict | list):
            return _scalar(value)
        parts = []
        for entry in self.entries(value, ptr):
            if isinstance(entry, str):
                parts.append(('"...":' if isinstance(value, dict) else "") + self.encode(entry))
            else:
                parts.append(entry[0] + self.inline(entry[1], entry[2]))
        return ("{%s}" if isinstance(value, dict) else "[%s]") % ",".join(parts)

    def block(self, value: object, ptr: str) -> Rendered:
        """The value compressed, on one line if it fits in LINE_MAX, else as a block."""
        if isinstance(value, str):
            return self.string(value, ptr)
        if not isinstance(value, dict | list):
            return _scalar(value)
        if isinstance(value, list):
            columns = _table_columns(value)
            if columns is not None:
                return ["[", *self.table(value, ptr, columns, commas=True), "]"]
        children: list[Rendered] = []
        has_marker = False
        for entry in self.entries(value, ptr):
            if isinstance(entry, str):
                children.append([entry])
                has_marker = True
            else:
                rendered = self.block(entry[1], entry[2])
                children.append(
                    entry[0] + rendered
                    if isinstance(rendered, str)
                    else [entry[0] + rendered[0], *rendered[1:]]
                )
        brackets = "{}" if isinstance(value, dict) else "[]"
        flat = [child for child in children if isinstance(child, str)]
        if (
            not has_marker
            and len(flat) == len(children)
            and sum(map(len, flat)) + len(flat) <= LINE_MAX
        ):
            return brackets[0] + ",".join(flat) + brackets[1]
        return [brackets[0], *_indent(children), brackets[1]]

    def json_lines(self, records: list[object]) -> list[str]:
        columns = _table_columns(records)
        if columns is not None:
            return self.table(records, "", columns, commas=False)
        lines = []
        for entry in self.entries(records, ""):
            lines.append(entry if isinstance(entry, str) else self.inline(entry[1], entry[2]))
        return lines

    def table(self, records: list[object], ptr: str, columns: list[str], commas: bool) -> list[str]:
        rows = ["@columns [" + ",".join(self.encode(column) for column in columns) + "]"]
        for entry in self.entries(records, ptr):
            if isinstance(entry, str):
                rows.append(entry)
                continue
            record, path = entry[1], entry[2]
            assert isinstance(record, dict)
            cells = [
                self.inline(record[c], _pointer(path, c)) if c in record else "" for c in columns
            ]
            rows.append("[" + ",".join(cells) + "]" + ("," if commas else ""))
        if commas:
            last = max(i for i, row in enumerate(rows) if row.endswith(","))
            rows[last] = rows[last][:-1]
        return [" " + row for row in rows] if commas else rows

    # --- containers -----------------------------------------------------------------------

    def entries(self, value: dict[str, object] | list[object], ptr: str) -> list[_Entry | str]:
        """A container's children to show, in order, with a marker line for each elided run."""
        if isinstance(value, list):
            keys = None
            items: list[_Entry] = [("", item, ptr + "/" + str(i)) for i, item in enumerate(value)]
            plan = self.plan(value, None)
        else:
            keys = list(value)
            items = [(self.encode(k) + ":", v, _pointer(ptr, k)) for k, v in value.items()]
            plan = self.plan(list(value.values()), keys) if _is_map_of_records(value) else None
        if plan is None:
            return list(items)
        shown: list[_Entry | str] = []
        start = 0
        budget = [max(IDS_MIN_BUDGET, sum(plan.sizes) // 10)]  # chars of ids, shared by the markers
        for run_start, run_end in [*_runs(plan.keep), (len(items), len(items))]:
            shown.extend(items[start:run_start])
            start = run_end
            if run_start < run_end:
                shown.append(self.elision(value, keys, plan, (run_start, run_end), budget))
        return shown

    def plan(self, records: list[object], keys: list[str] | None) -> Plan | None:
        if len(records) < ELIDE_MIN_RECORDS:
            return None
        plan = json_table.plan(records, keys, self.query, STR_MAX)
        size = sum(plan.sizes)
        if size < ELIDE_MIN_CHARS or plan.text_chars * 2 > size:
            return None  # small, or free text whose records no id can stand for
        keep = plan.keep
        for run_start, run_end in _runs(keep):
            # a marker's fixed cost matters only for a run of a few records
            if run_end - run_start > 3:
                continue
            detail = self.detail(plan, (run_start, run_end), [IDS_MIN_BUDGET])
            if sum(plan.sizes[run_start:run_end]) < 2 * (MARKER_CHARS + len(detail)):
                keep[run_start:run_end] = [True] * (run_end - run_start)
        return plan

    def elision(
        self,
        value: object,
        keys: list[str] | None,
        plan: Plan,
        run: tuple[int, int],
        budget: list[int],
    ) -> str:
        start, end = run
        if keys is None:
            assert isinstance(value, list)
            text = self.raw(value[start:end])
        else:
            assert isinstance(value, dict)
            text = self.raw({key: value[key] for key in keys[start:end]})
        detail = self.detail(plan, run, budget)
        return _marker(end - start, "record", self.key(text), detail)

    def detail(self, plan: Plan, run: tuple[int, int], budget: list[int]) -> str:
        """What a marker says of a run of records: status counts, then identities."""
        start, end = run
        parts = []
        for column, values in plan.facets:
            counts = Counter(self.label_part(v) for v in values[start:end] if v is not None)
            if counts:
                parts.append(column + ": " + ", ".join(f"{n} {v}" for v, n in counts.most_common()))
        names = self.identities(plan, run, budget)
        if names:
            parts.append("ids: " + names)
        return _marker_safe("; ".join(parts))

    def identities(self, plan: Plan, run: tuple[int, int], budget: list[int]) -> str:
        """The run's identities while `budget[0]` (characters) lasts, then how many are unnamed."""
        start, end = run
        if budget[0] <= 0 or not any(any(plan.identities[index]) for index in range(start, end)):
            return ""
        shown: list[str] = []
        for index in range(start, end):
            parts = [self.label_part(part) for part in plan.identities[index] if part is not None]
            shown.append(":".join(parts) or "null")
            budget[0] -= len(shown[-1]) + 2
            if budget[0] <= 0 and index + 1 < end:
                shown.append(f"+{end - index - 1} more")
                break
        return ", ".join(shown)

    def label_part(self, part: object) -> str:
        return self.encode(part) if isinstance(part, str) else _scalar(part)

    # --- strings --------------------------------------------------------------------------

    def string(self, text: str, ptr: str) -> str:
        """A string value: shortened if long, a reference to its first occurrence if repeated."""
        if len(text) < REPEAT_MIN:
            return self.encode(text)
        first = self.first_seen.get(text)
        if first is not None:
            detail = "same text as " + _marker_safe(first)
            return self.encode(_marker(len(text), "char", self.key(text), detail))
        self.first_seen[text] = ptr
        return self.encode(self.shorten(text) if len(text) > STR_MAX else text)

    def shorten(self, text: str) -> str:
        """The string's first and last lines and its telling ones, clipped, with markers."""
        lines = text.split("\n")
        keep = self.telling_lines(lines)
        for run_start, run_end in _runs(keep):
            if (
                run_end - run_start <= 2
                and sum(len(line) for line in lines[run_start:run_end]) < MARKER_CHARS
            ):
                keep[run_start:run_end] = [True] * (run_end - run_start)
        out: list[str] = []
        start = 0
        for run_start, run_end in [*_runs(keep), (len(lines), len(lines))]:
            out.extend(self.clip(line, text) for line in lines[start:run_start])
            start = run_end
            if run_start < run_end:
                detail = f"lines {run_start + 1}-{run_end} of the string"
                out.append(_marker(run_end - run_start, "line", self.key(text), detail))
        return "\n".join(out)

    def telling_lines(self, lines: list[str]) -> list[bool]:
        """Head and tail lines, and up to MAX_TELLING lines naming a failure, a question term or
        (in a patch) a change, except lines an earlier string already showed."""
        starts = list(accumulate((len(line) + 1 for line in lines[:-1]), initial=0))
        low = "\n".join(lines).lower()
        found = set().union(*json_table.SIGNAL.hits(low, starts).values())
        if self.query is not None:  # a term on most lines ("file", "pod") picks nothing out
            hits = self.query.hits(low, starts).values()
            found = found.union(*(lines_ for lines_ in hits if len(lines_) * 5 <= len(lines)))
        if any(line.startswith("@@ ") for line in lines):
            found.update(index for index, line in enumerate(lines) if line[:1] in "+-")
        telling = sorted(index for index in found if lines[index] not in self.lines_seen)
        if len(telling) > MAX_TELLING:
            telling = telling[: MAX_TELLING * 3 // 4] + telling[-(MAX_TELLING // 4) :]
        keep = [
            index < HEAD_LINES or index >= len(lines) - TAIL_LINES for index in range(len(lines))
        ]
        for index in telling:
            keep[index] = True
        self.lines_seen.update(line for line in lines if len(line) >= SEEN_LINE_MIN)
        return keep

    def clip(self, line: str, whole: str) -> str:
        if len(line) <= LINE_CAP:
            return line
        head, tail = line[:200], line[-60:]
        elided = len(line) - len(head) - len(tail)
        return head + _marker(elided, "char", self.key(whole)) + tail


def _marker(count: int, unit: str, key: str, detail: str = "") -> str:
    return markers.elided_part(count, unit if count == 1 else unit + "s", key, detail)


def _runs(keep: list[bool]) -> list[tuple[int, int]]:
    """The [start, end) spans of consecutive False values."""
    runs, start = [], 0
    for kept, group in groupby(keep):
        end = start + len(list(group))
        if not kept:
            runs.append((start, end))
        start = end
    return runs


def _indent(children: list[Rendered]) -> list[str]:
    """Children as block lines one level in; a comma after each value but the last."""
    last_value = max(
        (i for i, c in enumerate(children) if isinstance(c, str) or not markers.is_marker(c[0])),
        default=-1,
    )
    lines = []
    for index, child in enumerate(children):
        comma = "," if index < last_value else ""
        if isinstance(child, str):
            lines.append(" " + child + comma)
        else:
            lines.extend(" " + line for line in child[:-1])
            lines.append(" " + child[-1] + (comma if not markers.is_marker(child[-1]) else ""))
    return lines


def _table_columns(items: list[object]) -> list[str] | None:
    """The columns if `items` are 3+ uniform objects big enough to be worth a table."""
    if len(items) < TABLE_MIN_ROWS or not all(isinstance(item, dict) and item for item in items):
        return None
    columns: dict[str, None] = {}
    cells = 0
    for item in items:
        assert isinstance(item, dict)
        columns.update(dict.fromkeys(item))
        cells += len(item)
    if len(columns) < 2 or cells < 0.9 * len(columns) * len(items):
        return None
    size = len(json.dumps(items, ensure_ascii=False, separators=(",", ":"), default=_length_of))
    if size <= LINE_MAX or size > TABLE_ROW_MAX * len(items):
        return None
    return list(columns)


def _length_of(value: object) -> str:
    return value.text if isinstance(value, Num) else ""


def _is_map_of_records(value: dict[str, object]) -> bool:
    """A big map whose values are objects sharing a key: entries keyed by id or name."""
    if len(value) < MAP_MIN_ENTRIES or not all(isinstance(v, dict) for v in value.values()):
        return False
    common: dict[str, int] = {}
    for entry in value.values():
        assert isinstance(entry, dict)
        for key in entry:
            common[key] = common.get(key, 0) + 1
    return max(common.values(), default=0) * 3 >= len(value) * 2


COMPRESSOR = register(JsonCompressor())
