"""Prose compressor: documentation (Markdown, reStructuredText or plain paragraphs).

Documentation is mostly explanation wrapped around the few things an agent looks up:
headings, option names, identifiers, numbers, quoted values, code. This compressor keeps
those verbatim and drops explanation, least informative first. Deterministic, no model.

Rules (reading the document is `prose_parse`):
- Blocks are kept as whole input lines: headings with their rst/setext adornments, fenced
  and rst literal code, tables, HTML, directives, front matter, lines in no known shape.
  A code block over `_LONG_CODE` lines keeps its head and tail; a table loses its padding.
- Paragraphs and list items are reflowed onto one line (first line's indentation and
  bullet kept) and split into sentences; kept sentences are never altered otherwise.
- A sentence holding a fact (inline code, emphasised term, quoted value, option, number,
  identifier, path) that no block and no earlier sentence holds is kept. So is the first
  sentence of a field (`:name: what it is`), and the first of a list item or of a kept-from
  paragraph when short: structure stays, and kept text does not start mid-thought.
- Of the other sentences, the best `_PLAIN_SHARE` of their tokens is kept, ranked by query
  terms and by information content (words rare in the document; the first sentence of a
  section or item and a colon-ended lead-in to code score more). The rest are dropped.
  Rarity is counted within the document: wordfreq's tables take ~0.15 s to load.
- Boilerplate (an in-page table of contents, images, comment and anchor lines) is never
  kept for its own sake.
- Each run of dropped sentences becomes one `markers.elided_lines` marker naming its
  input lines; a run too short to pay for its marker is kept instead.
- Not prose (JSON, an HTML page, a diff, mostly code/log-shaped lines) or no saving: None.
"""

from __future__ import annotations

import functools
import math
import re

from headroom import markers
from headroom.compressors.base import Compressed, Context, register
from headroom.compressors.prose_parse import (
    CODE,
    FIELD,
    HEADING,
    TABLE,
    TEXT,
    Block,
    Paragraph,
    Part,
    Sentence,
    is_document,
    segment,
)

_LONG_CODE = 60  # lines; a longer code block keeps its first and last _CODE_KEEP
_CODE_KEEP = 20
_MARKER_TOKENS = 15  # what one marker line costs
_MIN_RUN_TOKENS = 20  # a dropped run must save more than its marker costs
_PLAIN_SHARE = 0.1  # of the tokens of sentences without a new fact, kept by rank
_STRUCTURE_BONUS = 4.0  # added to the rank of a sentence that opens or introduces
# Tokens: a first sentence this short is kept with its paragraph. Keeping every first
# sentence cost about a tenth of the saving on the development corpus.
_SHORT_OPENER = 15
_MAX_SPOTS = 64  # places a fact's rarest word is checked at in the blocks

_NOT_PROSE = re.compile(r"\s*(?:\{|\[\s*[\[{\"]|<!doctype|<html)", re.I)  # JSON, HTML page
_TABLE_RULE = re.compile(r"[ \t]*\|?[ \t:|-]*-{4,}[ \t:|-]*\r?$")
_WORD_RUN = re.compile(r"\w+")
_WORD = re.compile(r"[A-Za-z][a-z]{2,}")
_STOPWORD_LIST = (
    "the and for are but not you your with this that these those from into onto there "
    "their them they was were will would can could should may might must has have had "
    "been being which what when where who whom why how does did done also just than then "
    "such some any all each other its it's our out over only very more most much many "
    "one use used using like make makes about after before between both here thus via"
)
_STOPWORDS = frozenset(_STOPWORD_LIST.split())
_SUFFIXES = (
    ("ations", ""),
    ("ation", ""),
    ("ings", ""),
    ("ing", ""),
    ("ies", "y"),
    ("es", ""),
    ("s", ""),
    ("ed", ""),
)

Event = Part | Sentence  # a dropped sentence, or a paragraph standing for its kept line


class _BlockText:
    """The text of the kept blocks, indexed by word so that looking a fact up costs a few
    comparisons, not a scan of the blocks (which made long documents quadratic)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at: dict[str, list[int]] = {}
        for word in _WORD_RUN.finditer(text):
            self.at.setdefault(word.group(), []).append(word.start())

    def holds(self, fact: str) -> bool:
        """Whether the blocks hold the fact; when unsure (no word, or one or two characters
        that are found anywhere), no."""
        words = [(w.group(), w.start()) for w in _WORD_RUN.finditer(fact)]
        if len(fact) <= 2 or not words:
            return False
        word, offset = min(words, key=lambda w: len(self.at.get(w[0], ())))
        spots = self.at.get(word, [])[:_MAX_SPOTS]
        return any(self.text.startswith(fact, spot - offset) for spot in spots)


def _shown(block: Block) -> list[range]:
    """The lines of a block that are written: all, or a long code block's head and tail."""
    lines = block.lines
    if block.kind == CODE and len(lines) > _LONG_CODE:
        return [lines[:_CODE_KEEP], lines[-_CODE_KEEP:]]
    return [lines]


def _keep_novel(parts: list[Part], blocks: _BlockText) -> list[Sentence]:
    """Keeps each sentence holding a fact that no block and no earlier sentence holds;
    drops the others and returns those that are not boilerplate (the plain sentences)."""
    seen: set[str] = set()
    plain: list[Sentence] = []
    for part in parts:
        if not isinstance(part, Paragraph):
            continue
        for sentence in part.sentences:
            novel = [f for f in sentence.facts if f not in seen and not blocks.holds(f)]
            seen.update(sentence.facts)
            sentence.dropped = not novel
            if not novel and not sentence.boilerplate:
                plain.append(sentence)
    return plain


def _mark_structure(parts: list[Part]) -> None:
    """Flags the sentences that carry the document's structure: the first of a section or
    list item, and the colon-ended one that introduces a code block."""
    previous: Block | Paragraph | None = None
    for part in parts:
        if isinstance(part, int):
            continue
        if isinstance(part, Paragraph):
            after_heading = isinstance(previous, Block) and previous.kind == HEADING
            part.sentences[0].structural = bool(part.item) or after_heading
        elif isinstance(previous, Paragraph) and part.kind == CODE:
            last = previous.sentences[-1]
            last.structural = last.structural or last.text.endswith(":")
        previous = part


@functools.lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    """A crude stem, so that `proxies`/`proxy` and `serialization`/`serialize` meet; ""
    for a stopword."""
    word = word.lower()
    if word in _STOPWORDS:
        return ""
    for suffix, replacement in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + replacement
            break
    return word[:6]


def _stems(text: str) -> set[str]:
    return {stem for stem in map(_stem, _WORD.findall(text)) if stem}


def _ranked(plain: list[Sentence], query: str) -> list[Sentence]:
    """Plain sentences, best first: query terms, then information content, both weighed by
    how rare each word is among them (so a query word on every line counts for little)."""
    stems = [_stems(sentence.text) for sentence in plain]
    counts: dict[str, int] = {}
    for group in stems:
        for stem in group:
            counts[stem] = counts.get(stem, 0) + 1
    surprisal = {stem: math.log(len(plain) / count) for stem, count in counts.items()}
    wanted = _stems(query)
    scores = []
    for sentence, group in zip(plain, stems, strict=True):
        information = sum(surprisal[s] for s in group) / (len(group) + 1)
        relevance = sum(surprisal[s] for s in group & wanted)
        scores.append(information + relevance + _STRUCTURE_BONUS * sentence.structural)
    order = sorted(range(len(plain)), key=lambda k: -scores[k])  # stable: ties by position
    return [plain[k] for k in order]


def _keep_best(parts: list[Part], ranked: list[Sentence]) -> None:
    """Keeps the best plain sentences up to `_PLAIN_SHARE` of their tokens. One kept between
    two dropped ones splits a run, so it is charged for the marker it adds."""
    neighbours: dict[int, list[Sentence]] = {}  # by id(): looked up, never iterated
    for part in parts:
        if isinstance(part, Paragraph):
            sentences = part.sentences
            for k, sentence in enumerate(sentences):
                neighbours[id(sentence)] = sentences[max(k - 1, 0) : k] + sentences[k + 1 : k + 2]
    budget = _PLAIN_SHARE * sum(s.cost for s in ranked)
    for sentence in ranked:
        if budget <= 0:
            break
        splits = all(n.dropped for n in neighbours[id(sentence)])
        budget -= sentence.cost + (_MARKER_TOKENS if splits else 0)
        sentence.dropped = False


def _keep_structure(parts: list[Part]) -> None:
    """Keeps the first sentence of a field (a definition), and a short first sentence of a
    list item or of a paragraph that keeps anything."""
    for part in parts:
        if not isinstance(part, Paragraph) or part.sentences[0].boilerplate:
            continue
        first = part.sentences[0]
        opens = part.item or not all(s.dropped for s in part.sentences)
        if part.item == FIELD or (opens and first.cost <= _SHORT_OPENER):
            first.dropped = False


def _stream(parts: list[Part]) -> list[Event]:
    """The output in order: blank lines, blocks, dropped sentences, and paragraphs standing
    for the one line of their kept sentences. A paragraph's leading dropped sentences come
    before that line (they join a run from above), its other dropped ones after it."""
    stream: list[Event] = []
    for part in parts:
        if not isinstance(part, Paragraph):
            stream.append(part)
            continue
        head = 0
        while head < len(part.sentences) and part.sentences[head].dropped:
            head += 1
        stream.extend(part.sentences[:head])
        if head < len(part.sentences):
            stream.append(part)
            stream.extend(s for s in part.sentences[head:] if s.dropped)
    return stream


def _keep_short_runs(stream: list[Event]) -> None:
    """Keeps every run of dropped sentences too short to pay for the marker replacing it."""
    run: list[Sentence] = []
    for event in [*stream, Block(range(0), TEXT)]:
        if isinstance(event, Sentence):
            run.append(event)
        elif not isinstance(event, int):
            if sum(s.cost for s in run) < _MIN_RUN_TOKENS:
                for sentence in run:
                    sentence.dropped = False
            run = []


def _collapse_padding(line: str) -> str:
    """A table line without its alignment padding (a rule row also with short dashes)."""
    if _TABLE_RULE.match(line):
        return re.sub("-{4,}", "---", "".join(line.split()))
    return " ".join(line.split())


class _Writer:
    """Collects output lines; each run of dropped input becomes one marker where it ends."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.eol = "\r" if lines[0].endswith("\r") else ""  # CRLF text: written lines too
        self.out: list[str] = []
        self.origin: list[int | None] = []
        self.run: list[int] = []  # first and last input line of the pending dropped run
        self.blank: int | None = None  # a blank input line waiting to be written

    def write(self, line: str, index: int | None) -> None:
        if self.run:
            marker = markers.elided_lines(self.run[0] + 1, self.run[1] + 1)
            self.out.append(marker + self.eol)
            self.origin.append(None)
            self.run.clear()
        if self.blank is not None:
            self.out.append(self.lines[self.blank])
            self.origin.append(self.blank)
            self.blank = None
        self.out.append(line)
        self.origin.append(index)

    def drop(self, first: int, last: int) -> None:
        if not self.run:
            self.run.append(first)
            self.run.append(last)
        self.run[1] = last

    def event(self, event: Event) -> None:
        if isinstance(event, int):  # a blank line: one is kept between written lines
            if (self.out or self.run) and self.blank is None:
                self.blank = event
        elif isinstance(event, Sentence):
            if self.run:
                self.blank = None  # a blank line inside a dropped run goes with it
            self.drop(event.first, event.last)
        elif isinstance(event, Paragraph):
            kept = " ".join(s.text for s in event.sentences if not s.dropped)
            self.write(event.lead + kept + self.eol, None)
        else:
            self.block(event)

    def block(self, block: Block) -> None:
        for number, shown in enumerate(_shown(block)):
            if number:
                self.drop(block.lines.start + _CODE_KEEP, shown.start - 1)
            for index in shown:
                line = self.lines[index]
                if block.kind == TABLE:
                    self.write(_collapse_padding(line) + self.eol, None)
                else:
                    self.write(line, index)

    def result(self) -> Compressed:
        self.write("", None)  # flushes a trailing run and blank line
        return Compressed(self.out[:-1], self.origin[:-1])


class ProseCompressor:
    kind = "prose"

    def compress(self, text: str, ctx: Context) -> Compressed | None:
        if _NOT_PROSE.match(text):
            return None
        lines = text.split("\n")
        parts = segment(lines)
        if not is_document(lines, parts):
            return None
        shown = [r for p in parts if isinstance(p, Block) for r in _shown(p)]
        plain = _keep_novel(parts, _BlockText("\n".join(lines[i] for r in shown for i in r)))
        _mark_structure(parts)
        _keep_best(parts, _ranked(plain, ctx.query))
        _keep_structure(parts)
        _keep_short_runs(_stream(parts))
        writer = _Writer(lines)
        for event in _stream(parts):
            writer.event(event)
        result = writer.result()
        return result if len(result.text) < len(text) else None


register(ProseCompressor())
