"""Record analysis for the JSON compressor: which records of a long array (or of a big map of
similar entries) are worth keeping, and how to name and summarise the ones that are elided.

A record is kept when it is the first or the last, or when it is an anomaly an agent would ask
about: a failure-like status value (`failed`, `ERROR`, `CrashLoopBackOff`), a minority value
that names a doubtful state (`pending`, `skipped`), a non-2xx HTTP status, a value rare in its
column, a null or a missing key where the column is usually set, a numeric outlier, a record
sharing its id with an anomaly (the `testStart` of a failed test), or a match for a selective
term of the user's question. Columns are leaf paths (`State/Name`, `Instances/[]/State/Name`),
so a failure deep inside a record still counts; the statistical rules (rarity, nulls) only use
plain columns near the top, where "usually" means something. Each distinct (column, value) is
judged once, so a record's check is a set intersection.

Elided records are named by identity, since that is what an agent asks about: the map key, an
id-like field (`id`, `taskId`, a unique token-like column such as `ServiceNamespace`) and a
name-like field (`name`, `title`, `metadata/name`), looked for two keys deep. Status-like
columns (`type`, `status`, `result`, ...) with few values are summarised as counts.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SEP = "\x1f"
"""Joins the keys of a leaf path; no JSON key is likely to hold it."""

_CATEGORY_MAX = 64
_TEXT = ("text",)  # the token of a string longer than _CATEGORY_MAX: free text, never a category
# a failure word starting a part of a one-word status value: "failed", "ImagePullBackOff"
_FAILURE = re.compile(
    r"(?:[A-Za-z_.-]*(?:(?<=[_.-])|(?<=[a-z])(?=[A-Z])))?(?i:error|fail|fatal|crash|terminat"
    r"|stopped|cancel|abort|timeout|timed.out|reject|denied|unhealthy|killed|backoff|critical"
    r"|panic|exception|invalid|errimage)[A-Za-z_.-]*"
)
_DOUBTFUL = re.compile(
    r"(?i)pending|inactive|skipped|retry|retrying|warning|requires_[a-z_]+|unknown|degraded"
    r"|expired|missing|incomplete|blocked|suspended|declined|unavailable|not_?found"
)
_STATUS_KEY = re.compile(r"(?i)(?:^|_)(?:status|code)$|status_?code$|statuscode$")
_ERROR_KEY = re.compile(r"(?i)^(?:err|errors?|exception|failures?|stack_?trace|traceback)$")
_FACET_PATH = re.compile(r"(?i)type|kind|status|state|result|conclusion|outcome|level|severity")
_URL = ("http://", "https://")
_ID_EXACT = frozenset({"id", "_id", "uuid", "key", "arn", "sha", "guid"})
_ID_SUFFIX = ("id", "uuid", "arn", "key")
_NAME_HINT = re.compile(r"(?i)name|title")
_IDENTITY_HINT = re.compile(r"(?i)name|title|id$|uuid|arn$|key$|sha$")
_WORD = re.compile(r"[a-z0-9_][a-z0-9_.:/-]*[a-z0-9_]|[a-z0-9_]")
_STOP_WORDS = """the and are was were which what when where who whom why how does did done for from with
    without into onto that this those these there their its any all each every not but can could
    should would will shall may might must have has had been being about over under than then
    them they you your our out per via also only just more most other some such very get got
    show list give tell find see use used using many much one two it's what's"""
_STOP = frozenset(_STOP_WORDS.split())


class Num:
    """A JSON number kept as its source text, so that 1.10 and 10000000000000000001 round-trip."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class Words:
    """Lowercase words to find in lowercased text with `str.find` (far faster than a regex
    alternation). A `whole` word needs a boundary before and after (a plural suffix allowed);
    otherwise only the words in `bounded_start` need one before ("err" but not "stderr")."""

    def __init__(
        self, words: Sequence[str], whole: bool, bounded_start: Sequence[str] = ()
    ) -> None:
        self.words = list(words)
        self.whole = whole
        self.bounded_start = frozenset(bounded_start)

    @classmethod
    def of_question(cls, query: str) -> Words | None:
        stems: list[str] = []
        for word in _WORD.findall(query.lower()):
            if len(word) < 3 or word in _STOP:
                continue
            stem = word[:-1] if len(word) > 3 and word.endswith("s") else word
            if stem not in stems:
                stems.append(stem)
        return cls(stems[:24], whole=True) if stems else None

    def hits(self, text: str, starts: list[int]) -> dict[str, set[int]]:
        """For each word found: the indices of the segments (beginning at `starts`) holding it."""
        found: dict[str, set[int]] = {}
        for word in self.words:
            segments: set[int] = set()
            at = text.find(word)
            while at >= 0:
                if self._bounded(text, word, at):
                    segment = bisect_right(starts, at) - 1
                    segments.add(segment)
                    if segment + 1 >= len(starts):
                        break
                    at = text.find(word, starts[segment + 1])
                else:
                    at = text.find(word, at + 1)
            if segments:
                found[word] = segments
        return found

    def _bounded(self, text: str, word: str, start: int) -> bool:
        open_before = start == 0 or not _is_word_char(text[start - 1])
        if not self.whole:
            return open_before or word not in self.bounded_start
        if not open_before:
            return False
        end = start + len(word)
        for suffix in ("", "s", "es"):
            stop = end + len(suffix)
            if text.startswith(suffix, end) and (
                stop >= len(text) or not _is_word_char(text[stop])
            ):
                return True
        return False


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


_SIGNAL_WORDS = (
    "err|error|fail|fatal|exception|traceback|panic|denied|refused|killed|crash|backoff|warn"
    "|timeout|timed out|time out|abort|invalid|not found|unable to|cannot|pending|unhealthy|terminat"
)
SIGNAL = Words(_SIGNAL_WORDS.split("|"), whole=False, bounded_start=["err"])
"""Words that make a line of tool output worth keeping."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with each record of a long array or big map."""

    keep: list[bool]
    identities: list[tuple[object, ...]]
    """Per record: its key (maps only), id and name, each None if unknown."""
    facets: list[tuple[str, list[object]]]
    """Status-like columns to count in a marker: (column, value of each record)."""
    sizes: list[int]
    """Roughly each record's minified length."""
    text_chars: int
    """How much of the records' size is in strings of `long_text` characters or more."""


def plan(
    records: Sequence[object], keys: Sequence[str] | None, query: Words | None, long_text: int
) -> Plan:
    """Decides which records to keep, and names and summarises each one for the markers."""
    walks = [_Walk(record, long_text) for record in records]
    stats = _Stats(walks, records)  # also marks each walk missing a usual key
    keep = [not stats.anomalous.isdisjoint(walk.pairs) for walk in walks]
    shallow = [walk.shallow for walk in walks]
    for index in _related(shallow, keep) + _query_matches(walks, query):
        keep[index] = True
    keep[0] = keep[-1] = True
    facets = [
        (path.replace(SEP, "/"), [row.get(path) for row in shallow]) for path in stats.facets()
    ]
    sizes = [walk.size for walk in walks]
    return Plan(
        keep, _identities(shallow, keys), facets, sizes, sum(walk.text_chars for walk in walks)
    )


class _Walk:
    """One record's leaves as (path, token) pairs, its scalars at most two keys deep (outside
    arrays) by path, its strings, and its rough size."""

    __slots__ = ("pairs", "shallow", "size", "strings", "text_chars")

    def __init__(self, record: object, long_text: int) -> None:
        # A dict as an ordered set: iteration follows the record, not string hashes, so the
        # output is the same in every process (PYTHONHASHSEED).
        self.pairs: dict[tuple[str, object], None] = {}
        self.shallow: dict[str, object] = {}
        self.strings: list[str] = []
        size = text_chars = 0
        stack: list[tuple[str, object, int]] = [("", record, 0)]
        while stack:  # iterative and type()-dispatched: this walk visits every node
            path, value, depth = stack.pop()
            kind = type(value)
            if kind is dict:
                assert isinstance(value, dict)
                prefix = path + SEP if path else ""
                size += sum(len(key) + 4 for key in value)
                stack.extend((prefix + key, child, depth + 1) for key, child in value.items())
                continue
            if kind is list:
                assert isinstance(value, list)
                inner = path + SEP + "[]" if path else "[]"
                stack.extend((inner, child, 3) for child in value)
                continue
            if kind is str:
                assert isinstance(value, str)
                size += len(value) + 2
                self.strings.append(value)
                if len(value) >= long_text:
                    text_chars += len(value)
                token: object = value if len(value) <= _CATEGORY_MAX else _TEXT
            elif kind is Num:
                assert isinstance(value, Num)
                size += len(value.text)
                token = ("n", value.text)
            else:
                size += 4
                token = value
            self.pairs[path, token] = None
            if 0 < depth <= 2:
                self.shallow[path] = value
        self.size, self.text_chars = size, text_chars


class _Stats:
    """Column statistics over the records, and the set of (column, value) pairs that are anomalies."""

    def __init__(self, walks: list[_Walk], records: Sequence[object]) -> None:
        self.count = len(walks)
        self.rare = max(1, self.count // 20)
        self.present: Counter[str] = Counter()
        self.values: Counter[tuple[str, object]] = Counter()
        self.distinct: Counter[str] = Counter()
        for walk in walks:
            self.values.update(walk.pairs.keys())
            self.present.update(dict.fromkeys((path for path, _ in walk.pairs), 1))
        numbers: dict[str, list[float]] = {}
        self.number_of: dict[object, float] = {}
        for (path, token), seen in self.values.items():
            # a column holding any free text is not categorical: count it as all-distinct
            self.distinct[path] += self.count if token is _TEXT else 1
            number = _number(token)
            if number is not None:
                self.number_of[token] = number
                numbers.setdefault(path, []).extend([number] * seen)
        self.fences = {
            path: fence
            for path, values in numbers.items()
            if not _is_id_key(path) and (fence := _fences(values))
        }
        self.columns = {path: self._column(path) for path in self.present}
        self.anomalous = {
            pair for pair, seen in self.values.items() if self._is_anomaly(*pair, seen)
        }
        self._mark_missing_keys(walks, records)

    def _column(self, path: str) -> tuple[bool, bool, bool, bool]:
        """What the rules need to know of a column, worked out once: whether its key names an
        error or a status, whether it is plain, and whether it is categorical."""
        key = path.rsplit(SEP, 1)[-1]
        present = self.present[path]
        plain = present * 2 >= self.count and path.count(SEP) <= 2 and "[]" not in path
        categorical = path not in self.fences and self.distinct[path] * 5 <= max(present, 10)
        return bool(_ERROR_KEY.match(key)), bool(_STATUS_KEY.search(key)), plain, categorical

    def _is_anomaly(self, path: str, token: object, seen: int) -> bool:
        error_key, status_key, plain, categorical = self.columns[path]
        if error_key and token not in ("", None, False):
            return True
        if isinstance(token, str):
            if _FAILURE.fullmatch(token) and seen * 10 < self.count * 9:
                return True  # unless nearly every record says it: then it is a name, not a state
            if _DOUBTFUL.fullmatch(token) and seen * 2 < self.present[path]:
                return True
        number = self.number_of.get(token)
        if number is not None:
            if status_key and 100 <= number < 600 and not 200 <= number < 300:
                return True
            fence = self.fences.get(path)
            if fence and not fence[0] <= number <= fence[1]:
                return True
        if not plain or token is _TEXT:
            return False
        if token is None:  # a null where the column is usually set
            return seen * 10 <= self.present[path]
        return categorical and seen <= self.rare < self.present[path]  # a rare value

    def _mark_missing_keys(self, walks: list[_Walk], records: Sequence[object]) -> None:
        """A top-level key that nearly every record has is, where absent, an anomaly."""
        keys: Counter[str] = Counter()
        for record in records:
            if isinstance(record, dict):
                keys.update(record.keys())
        usual = [key for key, seen in keys.items() if self.count - self.rare <= seen < self.count]
        for key in usual:
            self.anomalous.add((key, _ABSENT))
            for walk, record in zip(walks, records, strict=True):
                if isinstance(record, dict) and key not in record:
                    walk.pairs[key, _ABSENT] = None

    def facets(self) -> list[str]:
        """Up to two status-like plain columns, at most two keys deep, with 2 to 8 values."""
        return [
            path
            for path, distinct in self.distinct.items()
            if 2 <= distinct <= 8
            and path.count(SEP) <= 1
            and self.columns[path][2]
            and _FACET_PATH.search(path)
        ][:2]


_ABSENT = ("absent",)


def _number(token: object) -> float | None:
    if not (isinstance(token, tuple) and len(token) == 2):
        return None
    try:
        number = float(token[1])
    except ValueError:
        return None
    return number if abs(number) < float("inf") else None  # also rejects NaN


def _is_id_key(path: str) -> bool:
    """Identifiers are labels, not quantities: an old id is no outlier."""
    return path.rsplit(SEP, 1)[-1].lower().endswith(_ID_SUFFIX)


def _fences(values: list[float]) -> tuple[float, float] | None:
    """Tukey's far-out fences (3 IQR) for a numeric column; None if it does not spread."""
    if len(values) < 8:
        return None
    ordered = sorted(values)
    q1, q3 = ordered[len(ordered) // 4], ordered[(3 * len(ordered)) // 4]
    spread = q3 - q1
    if spread <= 0:
        return None
    return q1 - 3 * spread, q3 + 3 * spread


def _related(shallow: list[dict[str, object]], anomalous: list[bool]) -> list[int]:
    """Records that share their own id with an anomaly (`test/id` 8 and `testID` 8 name the same
    test). An id that many records share groups them rather than names one, so it is no link."""
    id_paths: dict[str, str] = {}  # path -> normalised name: top-level `*id` and `x/id`
    for row in shallow:
        for path in row:
            if path not in id_paths:
                parts = path.lower().split(SEP)
                own = parts[-1].endswith("id") and (len(parts) == 1 or parts[1] == "id")
                id_paths[path] = "".join(parts).replace("_", "") if own else ""
    refs = [
        {
            (id_paths[p], _text(v))
            for p, v in row.items()
            if id_paths[p] and isinstance(v, str | Num)
        }
        for row in shallow
    ]
    shared = Counter(ref for found in refs for ref in found)
    limit = max(2, len(refs) // 20)
    wanted = {
        ref
        for index, found in enumerate(refs)
        if anomalous[index]
        for ref in found
        if shared[ref] <= limit
    }
    if not wanted:
        return []
    return [
        index
        for index, found in enumerate(refs)
        if not anomalous[index] and not wanted.isdisjoint(found)
    ]


def _query_matches(walks: list[_Walk], query: Words | None) -> list[int]:
    """Records whose text holds a question term that is selective here (in <= 1/10 of them):
    a word naming what every record is ("test", "event") picks nothing out."""
    if query is None:
        return []
    starts: list[int] = []
    texts: list[str] = []
    offset = 0
    for walk in walks:
        starts.append(offset)
        # a URL is an address, not content: "repos" in .../repos/x/events is no match
        text = "\n".join(s for s in walk.strings if not s.startswith(_URL)).lower() + "\n"
        texts.append(text)
        offset += len(text)
    limit = max(len(walks), 10) // 10
    matched: set[int] = set()
    for records in query.hits("".join(texts), starts).values():
        if len(records) <= limit:
            matched |= records
    return sorted(matched)


def _identities(
    shallow: list[dict[str, object]], keys: Sequence[str] | None
) -> list[tuple[object, ...]]:
    columns: dict[str, list[object]] = {}
    hinted: dict[str, bool] = {}
    for row in shallow:
        for path, value in row.items():
            if path not in hinted:
                hinted[path] = _IDENTITY_HINT.search(path.rsplit(SEP, 1)[-1]) is not None
            if hinted[path] and isinstance(value, str | Num):
                columns.setdefault(path, []).append(value)
    needed = (len(shallow) + 1) // 2
    columns = {path: values for path, values in columns.items() if len(values) >= needed}
    id_column = _best(columns, _id_rank) or SEP
    name_column = _best({p: v for p, v in columns.items() if p != id_column}, _name_rank) or SEP
    found: list[tuple[object, ...]] = []
    for index, row in enumerate(shallow):
        ident = (row.get(id_column), row.get(name_column))
        found.append((keys[index], *ident) if keys is not None else ident)
    return found


def _text(value: object) -> str:
    return value.text if isinstance(value, Num) else str(value)


def _distinct_ratio(values: list[object]) -> float:
    return len({_text(value) for value in values}) / len(values)


def _id_rank(path: str, values: list[object]) -> int | None:
    if _distinct_ratio(values) < 0.95 or any(len(_text(v)) > 100 for v in values):
        return None
    depth, key = path.count(SEP), path.rsplit(SEP, 1)[-1].lower()
    if key in _ID_EXACT:
        return depth * 3
    if key.endswith(_ID_SUFFIX):
        return depth * 3 + 1
    token_like = all(isinstance(v, str) and v and not any(c.isspace() for c in v) for v in values)
    return depth * 3 + 2 if token_like and _NAME_HINT.search(key) else None


def _name_rank(path: str, values: list[object]) -> int | None:
    key = path.rsplit(SEP, 1)[-1]
    ratio = _distinct_ratio(values)
    if not _NAME_HINT.search(key) or ratio < 0.5:
        return None
    return path.count(SEP) * 2 + (0 if key.lower() in ("name", "title") else 1) + (ratio < 0.95) * 4


def _best(
    columns: dict[str, list[object]], rank: Callable[[str, list[object]], int | None]
) -> str | None:
    ranked = [
        (score, order, path)
        for order, (path, values) in enumerate(columns.items())
        if (score := rank(path, values)) is not None
    ]
    return min(ranked)[2] if ranked else None
