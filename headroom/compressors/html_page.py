"""Reading a web page for the HTML compressor: is it HTML, where is its main content, which
class names say "site chrome", and how the source spells its headings.

These answers come from the page as a whole (a regex pass over the source, a few CSS queries
over the parsed tree); `html.py` uses them while it walks the tree and writes Markdown.
"""

from __future__ import annotations

import html
import re
from functools import cache
from typing import Any

# An HTML payload is a document (a doctype or <html> opening a line near the top, after at
# most a short preamble such as a fetch tool's status line) or a fragment that starts with a
# known tag and has a few more. Code, JSON or Markdown that merely quotes HTML is neither.
_PREAMBLE_CHARS = 4096
_SNIFF_CHARS = 65536
_DOCUMENT_START = re.compile(
    r"^[ \t\ufeff]*(?:<[!?][^<>]{0,500}>\s*)*<(?:!doctype\s+html|html)\b", re.I | re.M
)
_KNOWN_TAG = re.compile(
    r"<(?:div|p|span|a|ul|ol|li|table|tr|td|h[1-6]|head|body|meta|link|script|style|title|"
    r"section|article|nav|header|footer|img|br|form|main)\b[^<>]{0,2000}>",
    re.I,
)
_MIN_KNOWN_TAGS = 4

# Bounded repeats keep these linear on text full of "<" without ">".
_HEADING_TAG = re.compile(r"<(/?)(title|h[1-6])\b[^<>]{0,2000}>", re.I)
_ANY_TAG = re.compile(r"<[^<>]{0,2000}>")
_RAW_HEADING_CHARS = 2000
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

# Class/id words that name chrome: exact short words, and stems that start a word
# (`nav` covers navbar, navbox, navigation; `comment` covers comments).
_CHROME_EXACT_WORDS = frozenset({"ad", "ads", "footer", "hidden", "hide", "masthead", "menu"})
_CHROME_STEMS = (
    "advert", "breadcrumb", "comment", "consent", "cookie", "dropdown", "modal", "nav",
    "newsletter", "outbrain", "popup", "promo", "related", "share", "sharing", "sidebar",
    "social", "sponsor", "subscribe", "taboola", "toolbar",
)  # fmt: skip
_MIN_CORE_CHARS = 400


@cache
def parser_class() -> Any:
    """selectolax's lexbor parser, imported on first use (the import is not free)."""
    from selectolax.lexbor import LexborHTMLParser

    return LexborHTMLParser


def looks_like_html(text: str) -> bool:
    """True for an HTML document or a fragment that starts with a tag and has a few more."""
    if _DOCUMENT_START.search(text, 0, _PREAMBLE_CHARS):
        return True
    start = len(text) - len(text.lstrip())
    head = text[start : start + _SNIFF_CHARS]
    return _KNOWN_TAG.match(head) is not None and len(_KNOWN_TAG.findall(head)) >= _MIN_KNOWN_TAGS


def collapse(text: str) -> str:
    """Runs of whitespace as one space, ends trimmed."""
    # str.split's whitespace is the regex `\s+`'s, code point for code point, and it is faster.
    return " ".join(text.split())


def source_spellings(source: str) -> dict[str, str]:
    """Maps the decoded text of each title and heading to its text as the source spells it
    (tags stripped, character references kept), where the two differ."""
    found: dict[str, str] = {}
    open_tag: str | None = None
    start = 0
    for match in _HEADING_TAG.finditer(source):
        closing, tag = match.group(1), match.group(2).lower()
        if not closing:
            open_tag, start = tag, match.end()
        elif tag == open_tag:
            open_tag = None
            inner = source[start : match.start()]
            if len(inner) <= _RAW_HEADING_CHARS:
                raw = collapse(_ANY_TAG.sub("", inner))
                decoded = collapse(html.unescape(raw))
                if decoded != raw:
                    found.setdefault(decoded, raw)
    return found


def names_chrome(attrs: dict[str, str | None], with_id: bool) -> bool:
    """True when an element's class (or id) has a word naming chrome (`SideBar` -> side, bar).

    Inside the content an id is mostly a heading's anchor slug (`file-menu`), so callers
    count it only outside.
    """
    names = f"{attrs.get('class') or ''} {attrs.get('id') or '' if with_id else ''}"
    for word in _WORD.findall(names):
        word = word.lower()
        if word in _CHROME_EXACT_WORDS or word.startswith(_CHROME_STEMS):
            return True
    return False


def content_roots(tree: Any) -> list[Any]:
    """Where the main content is: <main>, role=main, articleBody, the largest <article>
    (inside those when they exist), and the element whose paragraphs hold the most text."""
    roots = list(tree.css("main, [role=main], [itemprop=articleBody]"))
    articles = [node for node in tree.css("article") if not roots or _inside(node, roots)]
    if articles:
        roots.append(max(articles, key=lambda node: len(node.text())))
    core = _paragraph_core(tree)
    if core is not None:
        roots.append(core)
    return roots


def ancestor_ids(roots: list[Any]) -> set[int]:
    """The `mem_id`s of the roots and all their ancestors."""
    ids: set[int] = set()
    for node in roots:
        while node is not None and node.mem_id not in ids:
            ids.add(node.mem_id)
            node = node.parent
    return ids


def outer_table_ids(tree: Any) -> set[int]:
    """The `mem_id`s of tables that hold another table (layout, not data)."""
    ids: set[int] = set()
    for table in tree.css("table"):
        node = table.parent
        while node is not None and node.tag != "table":
            node = node.parent
        if node is not None:
            ids.add(node.mem_id)
    return ids


def _inside(node: Any, roots: list[Any]) -> bool:
    ids = {root.mem_id for root in roots}
    while node is not None:
        if node.mem_id in ids:
            return True
        node = node.parent
    return False


def _paragraph_core(tree: Any) -> Any:
    """The element whose <p> children hold the most text, if that is a real article body.

    Each paragraph credits its parent with its length outside links (a paragraph of links is
    a list of names, not prose) and its grandparent with half, so a body whose paragraphs
    each sit in a wrapper div still wins.
    """
    scores: dict[int, float] = {}
    nodes: dict[int, Any] = {}
    for paragraph in tree.css("p"):
        links = sum(len(collapse(link.text())) for link in paragraph.css("a"))
        length = len(collapse(paragraph.text())) - links
        parent = paragraph.parent
        for share in (1.0, 0.5):
            if parent is None:
                break
            scores[parent.mem_id] = scores.get(parent.mem_id, 0.0) + share * length
            nodes[parent.mem_id] = parent
            parent = parent.parent
    if not scores:
        return None
    best = max(scores, key=lambda mem_id: scores[mem_id])
    return nodes[best] if scores[best] >= _MIN_CORE_CHARS else None
