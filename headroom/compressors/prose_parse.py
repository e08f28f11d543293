"""Reading a prose document for the prose compressor: blocks, paragraphs, sentences, facts.

A document becomes, in order, blank lines, blocks kept whole (headings with their
adornments, code, tables, HTML, directives, front matter, lines in no known shape) and
paragraphs (list items and fields included) split into sentences. Markdown and
reStructuredText are recognised where they show; plain text is just paragraphs. Each
sentence carries its "facts": the needle-like things an agent looks up (inline code,
emphasised terms, quoted values, options, numbers, identifiers, paths).

Every scan is linear: bounded regex quantifiers, no search that restarts per line.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

CODE, HEADING, TABLE, TEXT = "code", "heading", "table", "text"
OTHER = "other"  # lines in no known shape that do not read as prose
BULLET, FIELD = "bullet", "field"

_FENCE = re.compile(r"[ \t]*(`{3,}|~{3,})")
_ATX_HEADING = re.compile(r"[ \t]{0,3}#{1,6}(?:[ \t]|\r?$)")
_ADORNMENT = re.compile(r"([=\-~^\"'`#*+<>:._])\1{2,}[ \t]*\r?$")
_RST_TABLE = re.compile(r"[ \t]*(?:\+[-=+]{2,}|=+(?:[ \t]+=+)+[ \t]*\r?$)")
_HTML = re.compile(r"[ \t]*<(?:/?[A-Za-z][\w-]*(?:[ \t>/]|\r?$)|!--)")
_DIRECTIVE = re.compile(r"[ \t]*\.\.(?:[ \t]+([\w:-]+)::|[ \t]|\r?$)")
_FRONT_FIELD = re.compile(r"[A-Z][\w-]*:[ \t]")
_ITEM = re.compile(
    r"[ \t]*(?:[-*+\u2022][ \t]+|\d{1,3}[.)][ \t]+|#\.[ \t]+"
    r"|:(?:[^:\s\\]|\\.)(?:[^:\\]|\\.){0,80}:(?:[ \t]+|\r?$)|\.\.[ \t]+[\w-]+::[ \t]+)"
)
# Admonitions hold prose; every other directive (code, tables, images, toctrees) is kept.
_PROSE_DIRECTIVE_LIST = (
    "note warning tip hint important caution attention danger error seealso admonition "
    "deprecated versionadded versionchanged topic sidebar"
)
_PROSE_DIRECTIVES = frozenset(_PROSE_DIRECTIVE_LIST.split())
_BLOCK_STARTS = frozenset("=-~^\"'`#*+<>:._|")  # first characters of every block above
# A line only of an HTML comment, empty anchors or an rst label: markup, not content.
_MARKUP_ONLY = re.compile(
    r"<!--.{0,500}-->|(?:<(?:a|i|span) [^<>]{0,300}></(?:a|i|span)>)+|\.\. _[^:`]{1,200}:"
)
_HTML_SCAN = 2000  # lines searched for the end of an HTML <pre> block

_BACKTICKS = re.compile(r"`+")
_BOUNDARY = re.compile(r"[.!?][)\]\"'\u201d*_]* (?=[A-Z\"'(\[*`\u201c:0-9])")
_ABBREVIATION = re.compile(r"(?:[A-Za-z]\.)+|(?:e\.g|i\.e|etc|vs|cf|al|approx|no|fig)\.", re.I)
_FACT = re.compile(
    r"""``[^`]{1,300}``|`[^`]{1,300}`                   # inline code, rst roles and links
    |\*\*[^*]{1,200}\*\*|(?<![\w*])\*[^\s*][^*]{0,200}\*  # bold, emphasis (defined terms)
    |"[^"]{0,200}"|\u201c[^\u201d]{0,200}\u201d|(?<!\w)'[^'\s][^']{0,200}'(?!\w)  # quoted
    |(?<![\w-])--?[A-Za-z][\w-]{0,80}(?:=\S{1,80})?    # options
    |(?<![^\s(\[])(?=[^\s(\[]{0,80}?[\d_A-Z.(:/])       # (a cheap test first: this is slow)
     [^\s(\[]{0,80}              # a word holding a number, an identifier shape or a path
     (?:\d|\w_\w|[a-z][A-Z]|\w\w\.\w|\w\(|::|(?<![^\s(\[])[~.]?/\w|\w/[\w.-]{0,80}\.\w|://)
     [^\s,;:)\]]{0,80}""",
    re.VERBOSE,
)
_TRAILING = ".,;:!?)]'\""
# A sentence made only of in-page links (a table of contents entry) or images.
_PAGE_LINK = r"\[[^\]]{0,300}\]\(#[^)\s]{0,300}\)"
_IMAGE = r"\[?!\[[^\]]{0,300}\]\([^)\s]{0,500}\)(?:\]\([^)\s]{0,500}\))?"
_BOILERPLATE = re.compile(rf"(?:{_PAGE_LINK}|{_IMAGE})(?: (?:{_PAGE_LINK}|{_IMAGE}))*")

_PLAIN_TOKEN = re.compile(r"\(?[A-Za-z][a-z]*[,.;:!?)]?")
_CODE_LINE = re.compile(r"[ \t]*(?://|/\*|#|--|;|\[|\d{2}|\$ |>>>|[\w./-]+[:-]\d+[:-])")
_PROSE_SHARE = 0.6  # of a paragraph's words that are plain words
_DIFF_LINE = re.compile(r"(?:diff --git |@@ -\d|\+\+\+ |--- a/)")
_OTHER_SHARE = 0.15  # of a document's lines that may be in no known shape


@dataclass(slots=True)
class Sentence:
    text: str  # whitespace collapsed
    first: int  # 0-based input lines it spans
    last: int
    cost: int  # estimated tokens
    facts: list[str]
    boilerplate: bool  # a table of contents entry, an image, a comment: never worth keeping
    dropped: bool = False
    structural: bool = False  # opens a section or list item, or introduces a code block


@dataclass(frozen=True, slots=True)
class Block:
    """Input lines kept whole (a long code block may lose its middle, a table its padding)."""

    lines: range
    kind: str  # CODE, HEADING, TABLE, TEXT or OTHER


@dataclass(slots=True)
class Paragraph:
    lead: str  # indentation and bullet or field name of its first line, kept as is
    sentences: list[Sentence]
    item: str  # BULLET, FIELD, or "" for a plain paragraph


Part = int | Block | Paragraph  # an int is a blank input line


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _is_title(lines: list[str], i: int) -> bool:
    """A text line underlined by an adornment line (rst section title, setext heading)."""
    if i + 1 >= len(lines) or not _ADORNMENT.match(lines[i + 1]):
        return False
    return bool(lines[i].strip()) and not _ADORNMENT.match(lines[i])


def _indented_end(lines: list[str], start: int, base: int) -> int:
    """End of the run of blank or deeper-than-`base` lines from `start`, trailing blanks off."""
    end = last = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
        end += 1
        if lines[end - 1].strip():
            last = end
    return last


def _until_blank(lines: list[str], start: int) -> int:
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    return end


def _fence_end(lines: list[str], start: int, fence: str) -> int:
    for end in range(start + 1, len(lines)):
        stripped = lines[end].strip()
        if stripped.startswith(fence) and not stripped.strip(fence[0]):
            return end + 1
    return len(lines)


def _html_end(lines: list[str], start: int) -> tuple[int, str]:
    """End of an HTML block (to the blank line, or past a `</pre>`) and its kind."""
    if "<pre" in lines[start] and "</pre>" not in lines[start]:
        for end in range(start + 1, min(start + _HTML_SCAN, len(lines))):
            if "</pre>" in lines[end]:
                return max(end + 1, _until_blank(lines, end)), CODE
    end = _until_blank(lines, start)
    return end, TABLE if lines[start].lstrip().lower().startswith("<table") else TEXT


def _block_end(lines: list[str], i: int) -> tuple[int, str]:
    """End of the block kept whole that starts at line i (i if none does), and its kind."""
    line = lines[i]
    if line.lstrip()[:1] not in _BLOCK_STARTS:  # most lines: words, not markup
        return (i + 2, HEADING) if _is_title(lines, i) else (i, TEXT)
    fence = _FENCE.match(line)
    if fence:
        return _fence_end(lines, i, fence.group(1)), CODE
    directive = _DIRECTIVE.match(line)
    if directive and directive.group(1) not in _PROSE_DIRECTIVES:
        return max(i + 1, _indented_end(lines, i + 1, _indent(line))), CODE
    if directive and not line.split("::", 1)[1].strip():
        return i + 1, TEXT  # an admonition's first line; its body is read as prose
    if _ATX_HEADING.match(line):
        return i + 1, HEADING
    if _ADORNMENT.match(line):
        overlined = i + 2 < len(lines) and lines[i + 2].strip() == line.strip()
        return (i + 3 if overlined and lines[i + 1].strip() else i + 1), HEADING
    if _is_title(lines, i):
        return i + 2, HEADING
    if line.lstrip().startswith("|") and line.count("|") >= 2:
        return _until_blank(lines, i), TABLE
    if _RST_TABLE.match(line) or line.lstrip().startswith(">"):
        return _until_blank(lines, i), TEXT
    if _HTML.match(line):
        return _html_end(lines, i)
    return i, TEXT


def _front_matter_end(lines: list[str]) -> int:
    """End of a PEP/email-style `Field: value` header or YAML front matter at the top."""
    if lines[0].rstrip() == "---":
        for end in range(1, len(lines)):
            if lines[end].rstrip() == "---":
                return end + 1
        return 0
    end = 0
    while end < len(lines) and (
        _FRONT_FIELD.match(lines[end]) or (end and lines[end][:1] in " \t" and lines[end].strip())
    ):
        end += 1
    return end if end >= 2 else 0


def _paragraph_end(lines: list[str], i: int, item: bool) -> int:
    """End of the paragraph (or list item) starting at line i."""
    base = _indent(lines[i])
    end = i + 1
    while end < len(lines) and lines[end].strip():
        if _block_end(lines, end)[0] > end or _ITEM.match(lines[end]):
            break
        # Without a bullet, a deeper line starts a definition: the line above is its term.
        if not item and _indent(lines[end]) > base:
            break
        end += 1
    return end


def _code_spans(text: str) -> list[tuple[int, int]]:
    """Inline code spans: a run of backticks closed by the next run of the same length."""
    spans: list[tuple[int, int]] = []
    opened: tuple[int, int] | None = None  # (width, start) of the open run
    for run in _BACKTICKS.finditer(text):
        width = len(run.group())
        if opened is None:
            opened = (width, run.start())
        elif width == opened[0]:
            spans.append((opened[1], run.end()))
            opened = None
    return spans


def _sentence_ends(text: str) -> list[int]:
    """Offsets of the spaces that end sentences: after terminal punctuation, before a likely
    sentence start, outside inline code, not after an abbreviation or an initial."""
    spans = _code_spans(text)
    ends: list[int] = []
    span = 0
    for match in _BOUNDARY.finditer(text):
        while span < len(spans) and spans[span][1] <= match.start():
            span += 1
        if span < len(spans) and spans[span][0] <= match.start():
            continue
        word_start = text.rfind(" ", 0, match.start()) + 1
        if not _ABBREVIATION.fullmatch(text[word_start : match.start() + 1].lstrip("([\"'*")):
            ends.append(match.end() - 1)
    return ends


def _facts(text: str) -> list[tuple[int, str]]:
    """Where the text's facts start, and each as it would read in a code block (markup and
    trailing punctuation off)."""
    facts = []
    for match in _FACT.finditer(text):
        fact = match.group()
        if fact[0] in "`*":
            fact = fact.strip("`*")
        elif fact[0] not in "\"'\u201c":
            fact = fact.rstrip(_TRAILING)
        facts.append((match.start(), fact))
    return facts


def _paragraph(lines: list[str], start: int, end: int) -> Paragraph:
    """Lines start..end as one whitespace-collapsed text split into sentences."""
    item = _ITEM.match(lines[start])
    lead = item.group() if item else lines[start][: _indent(lines[start])]
    words: list[str] = []
    line_starts: list[int] = []  # offset in the text where each line begins
    offset = 0
    for index in range(start, end):
        line_starts.append(offset)
        for word in (lines[index][len(lead) :] if index == start else lines[index]).split():
            words.append(word)
            offset += len(word) + 1
    text = " ".join(words)
    facts = _facts(text)
    sentences: list[Sentence] = []
    begin = taken = 0
    for cut in [*_sentence_ends(text), len(text)]:
        held = taken
        while held < len(facts) and facts[held][0] < cut:
            held += 1
        piece = text[begin:cut]
        if piece:
            first = start + bisect_right(line_starts, begin) - 1
            last = start + bisect_right(line_starts, cut - 1) - 1
            boilerplate = _BOILERPLATE.fullmatch(piece) is not None
            own = [] if boilerplate else [fact for _, fact in facts[taken:held]]
            sentences.append(Sentence(piece, first, last, _cost(piece), own, boilerplate))
        begin, taken = cut + 1, held
    kind = "" if item is None or lead.lstrip().startswith("..") else BULLET
    kind = FIELD if kind and lead.lstrip().startswith(":") else kind
    return Paragraph(lead.rstrip("\r\n"), sentences, kind)


def _cost(text: str) -> int:
    """Tokens, estimated (English prose runs near five characters a token)."""
    return len(text) // 5 + 1


def _reads_as_prose(paragraph: Paragraph, lines: list[str]) -> bool:
    """Mostly plain words, in lines that do not start like code, comments or log records:
    anything else (misrouted code or logs, an indented Markdown code block) stays as is."""
    tokens = [token for sentence in paragraph.sentences for token in sentence.text.split()]
    plain = sum(1 for token in tokens if _PLAIN_TOKEN.fullmatch(token))
    coded = sum(1 for line in lines if _CODE_LINE.match(line))
    short = len(tokens) < 12  # a short line or item: nothing to judge, little to lose
    return (short or plain >= _PROSE_SHARE * len(tokens)) and coded * 2 <= len(lines)


def _markup_line(line: str, index: int) -> Paragraph:
    """A comment or anchor line, invisible in rendered docs: it may join a dropped run."""
    text = line.strip()
    sentence = Sentence(text, index, index, _cost(text), [], True)
    return Paragraph(line[: _indent(line)], [sentence], "")


def _prose_or_block(lines: list[str], start: int, end: int, column: int | None) -> Part:
    """Lines start..end as a paragraph, or as a block when they are a definition's term,
    do not read as prose, or sit deeper than the paragraph above that introduced them with
    a colon (`column`; plain text marks code and quotations by indentation alone)."""
    paragraph = _paragraph(lines, start, end)
    term = end == start + 1 and end < len(lines) and lines[end].strip() != ""
    if term and not paragraph.item and _indent(lines[end]) > _indent(lines[start]):
        return Block(range(start, end), TEXT)
    if not paragraph.sentences or not _reads_as_prose(paragraph, lines[start:end]):
        return Block(range(start, end), OTHER)
    if not paragraph.item and column is not None and _indent(lines[start]) > column:
        return Block(range(start, end), TEXT)
    return paragraph


def segment(lines: list[str]) -> list[Part]:
    """The document in order: blank line indices, blocks kept whole, paragraphs."""
    parts: list[Part] = []
    column: int | None = None  # indentation of a paragraph above ending in a colon
    i = _front_matter_end(lines)
    if i:
        parts.append(Block(range(i), TEXT))
    while i < len(lines):
        end, kind = _block_end(lines, i) if lines[i].strip() else (i, TEXT)
        if not lines[i].strip():
            parts.append(i)
            end = i + 1
        elif _MARKUP_ONLY.fullmatch(lines[i].strip()):
            parts.append(_markup_line(lines[i], i))
            end = i + 1
        elif end > i:
            parts.append(Block(range(i, end), kind))
            column = None if kind in (HEADING, TEXT) else column
        else:
            end = _paragraph_end(lines, i, _ITEM.match(lines[i]) is not None)
            part = _prose_or_block(lines, i, end, column)
            if isinstance(part, Paragraph):
                introduces = not part.item and part.sentences[-1].text.endswith(":")
                column = _indent(lines[i]) if introduces else None
            parts.append(part)
            if lines[end - 1].rstrip().endswith("::"):  # an rst literal block follows
                while end < len(lines) and not lines[end].strip():
                    parts.append(end)
                    end += 1
                block = _indented_end(lines, end, _indent(lines[i]))
                if block > end:
                    parts.append(Block(range(end, block), CODE))
                    end = block
        i = end
    return parts


def is_document(lines: list[str], parts: list[Part]) -> bool:
    """Prose with the usual markup: few lines in no known shape (misrouted code, logs or
    search results have many) and no unified diff."""
    other = sum(len(p.lines) for p in parts if isinstance(p, Block) and p.kind == OTHER)
    filled = sum(1 for line in lines if line.strip())
    diff = sum(1 for line in lines if _DIFF_LINE.match(line))
    has_prose = any(isinstance(p, Paragraph) for p in parts)
    return has_prose and other <= _OTHER_SHARE * filled and diff < 2
