"""HTML compressor: a web page becomes Markdown-like text of its readable content.

A saved page is mostly markup, scripts, styles and site chrome; what an agent needs is the
title, the section structure and the article text. The page is parsed with lexbor (through
selectolax, imported on first use; `html_page.py` finds where the content is) and walked once:

- scripts, styles, SVG, MathML, iframes, templates, media and form controls go whole;
- site chrome goes: navigation, banners, footers, sidebars, dialogs and hidden elements, found
  by tag, ARIA role, `hidden`/`aria-hidden`/`display:none`, or (a weaker signal, for blocks
  only) class/id words such as `sidebar`, `share`, `related`, `advert`. An element that
  encloses the main content (<main>, role=main, the largest <article>, the element holding
  the most paragraph text) is never chrome, so a wrapper whose class says `nav` keeps the
  article; outside the content, a block that is mostly link text (a menu) goes too;
- what stays is written as Markdown: `# title`, `#`-headings, paragraphs, `- `/`1. ` lists,
  `> ` quotes, pipe tables (a long one cut, its other rows stashed behind a marker), fenced
  code blocks kept verbatim, link text without URLs.

Every h1-h3 heading is kept, even inside dropped chrome: they are cheap and show the agent
how the page is laid out. The title and h1-h3 headings keep their source spelling (tags
stripped, character references as written: `Q&amp;A`), so a heading read here greps in the
stored original; all other text is decoded. Nothing is marked per dropped part: the pipeline
stores the whole original under the header's key.
"""

from __future__ import annotations

import re
from typing import Any

from headroom.compressors.base import Compressed, Context, register
from headroom.compressors.html_page import (
    ancestor_ids,
    collapse,
    content_roots,
    looks_like_html,
    names_chrome,
    outer_table_ids,
    parser_class,
    source_spellings,
)
from headroom.markers import elided_part

_WS = re.compile(r"\s+")
_BACKTICKS = re.compile(r"`{3,}")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_SKIP_TAGS = _words(
    "script style noscript template svg math iframe object embed canvas video audio picture "
    "img button input select textarea option label head meta link"
)
_STRIPPED_TAGS = sorted(_words("script style noscript template svg math iframe object embed"))
_STRONG_CHROME_TAGS = _words("nav aside dialog")
_SCOPED_CHROME_TAGS = _words("header footer")  # site-wide unless inside a sectioning element
_SECTIONING_TAGS = _words("article aside main nav section")
_CHROME_ROLES = _words(
    "navigation banner contentinfo complementary search dialog alertdialog menu menubar toolbar"
)
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCK_TAGS = _words(
    "address article aside blockquote body caption center dd details div dl dt fieldset "
    "figcaption figure footer header hgroup hr html li main nav ol p section summary table "
    "tbody td tfoot th thead tr ul"
)
_MAX_CELL_CHARS = 400
_MAX_TABLE_ROWS = 40
_KEPT_TABLE_ROWS = 30
_CHROME_SHARE_OF_CONTENT = 0.5
_MAX_INDENT = 6
_MAX_WEAK_DEPTH = 100
_LINK_SHARE = 0.5
_SECTION, _LINK, _CONTENT = 1, 2, 4
_TEXT, _HEADING, _FENCE_END = 0, 1, 2  # kinds of rendered line


class _Renderer:
    """One walk over the parsed page, writing Markdown-like lines.

    Each block element opens a frame that counts its text and link text; a frame outside the
    content roots whose text is mostly link text is a menu or link farm, and its lines are
    taken back (its headings stay) when it closes.
    """

    def __init__(self, tree: Any, chrome_limit: int, raw: dict[str, str], ctx: Context):
        roots = content_roots(tree)
        self.content_ids = {root.mem_id for root in roots}
        self.outer_tables = outer_table_ids(tree)
        self.protected = ancestor_ids(roots)
        self.chrome_limit = chrome_limit
        self.raw = raw
        self.ctx = ctx
        self.lines: list[tuple[int, str]] = []
        self.seen_headings: set[str] = set()
        self.parts: list[str] = []
        self.lists: list[list[int]] = []
        self.bullet: str | None = None
        self.after_link = False
        self.quote = ""
        self.frames: list[list[int]] = [[0, 0, 0, 0]]

    def render(self, root: Any) -> list[str]:
        stack: list[tuple[Any, int] | str] = [(root, 0)]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                self._close(item)
            else:
                self._open(item[0], item[1], stack)
        self._flush()
        out: list[str] = []
        for kind, line in self.lines:
            if kind == _HEADING and out:
                out.append("")
            out.append(line)
        return out

    def _open(self, node: Any, flags: int, stack: list[tuple[Any, int] | str]) -> None:
        if node.is_text_node:
            self._text(node.text(deep=False), flags)
            return
        tag = node.tag
        if not node.is_element_node:
            return
        if tag in _SKIP_TAGS or self._is_chrome(node, tag, flags):
            self._keep_headings(node)
        elif tag in _HEADINGS:
            outside = bool(self.content_ids) and not flags & _CONTENT
            self._heading(node, _HEADINGS[tag], dedupe=outside)
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "pre":
            self._code_block(node, flags)
        elif tag == "table" and node.mem_id not in self.outer_tables and _is_data_table(node):
            self._table(node, flags)
        else:
            if node.mem_id in self.content_ids:
                flags |= _CONTENT
            if tag in _SECTIONING_TAGS:
                flags |= _SECTION
            if tag == "a":
                flags |= _LINK
            stack.append(self._enter(tag, flags, node.mem_id in self.protected))
            children = [(child, flags) for child in node.iter(include_text=True)]
            stack.extend(reversed(children))

    def _text(self, text: str, flags: int) -> None:
        text = _WS.sub(" ", text)
        size = len(text.strip())
        frame = self.frames[-1]
        frame[1] += size
        if flags & _LINK:
            frame[2] += size
        if size:
            self.after_link = False
        self.parts.append(text)

    def _enter(self, tag: str, flags: int, protected: bool) -> str:
        """Starts a container element; returns what closes it."""
        if tag == "code":
            self.parts.append("`")
            return "`"
        if tag == "a":
            if self.after_link:
                self.parts.append(" ")  # links set side by side (tag lists) stay apart
            return "/a"
        if tag not in _BLOCK_TAGS:
            return ""
        self._begin_frame(flags, protected)
        if tag in ("ul", "ol"):
            self.lists.append([tag == "ol", 0])
            return "/list"
        if tag == "blockquote":
            self.quote += "> "
            return "/quote"
        if tag == "li" and self.lists:
            self.lists[-1][1] += 1
            ordered, count = self.lists[-1]
            mark = f"{count}. " if ordered else "- "
            self.bullet = "  " * min(len(self.lists) - 1, _MAX_INDENT) + mark
        elif tag == "dd":
            self.bullet = ": "  # a definition list's description, as Pandoc writes it
        return "/block"

    def _close(self, closer: str) -> None:
        if closer == "`":
            self.parts.append("`")
        elif closer == "/a":
            self.after_link = True
        elif closer:
            self._end_frame()
            if closer == "/list":
                self.lists.pop()
                self.bullet = None
            elif closer == "/quote":
                self.quote = self.quote[:-2]

    def _begin_frame(self, flags: int, protected: bool = False) -> None:
        self._flush()
        prunable = self.content_ids and not flags & _CONTENT and not protected
        self.frames.append([len(self.lines), 0, 0, int(bool(prunable))])

    def _end_frame(self) -> None:
        """Closes a block; a link-dense one outside the content keeps only its headings."""
        self._flush()
        start, chars, links, prunable = self.frames.pop()
        parent = self.frames[-1]
        parent[1] += chars
        parent[2] += links
        if prunable and links > _LINK_SHARE * chars:
            self.lines[start:] = [line for line in self.lines[start:] if line[0] == _HEADING]

    def _is_chrome(self, node: Any, tag: str, flags: int) -> bool:
        """Site chrome by tag, role, hidden state or class/id words; never the content's path."""
        if node.mem_id in self.protected:
            return False
        if tag in _STRONG_CHROME_TAGS or (tag in _SCOPED_CHROME_TAGS and not flags & _SECTION):
            return True
        attrs = node.attributes
        if (attrs.get("role") or "").lower() in _CHROME_ROLES:
            return True
        if attrs.get("aria-hidden") == "true" or "hidden" in attrs:
            return True
        if _HIDDEN_STYLE.search(attrs.get("style") or ""):
            return True
        if len(self.frames) > _MAX_WEAK_DEPTH:
            return False  # measuring text at every level of a deep nest would be quadratic
        if tag == "form" or (
            tag in _BLOCK_TAGS and names_chrome(attrs, with_id=not flags & _CONTENT)
        ):
            # Weak signals, so only on blocks (an inline `<a class="popup">` is a word of the
            # text), and a wrapper that holds most of the page's text is not chrome.
            return len(node.text()) < self.chrome_limit
        return False

    def _flush(self) -> None:
        if not self.parts:
            return
        text = "".join(self.parts)
        self.parts.clear()
        for piece in text.split("\n"):
            line = collapse(piece)
            if line and line != "``":
                self._emit(line)

    def _emit(self, line: str) -> None:
        if self.bullet is not None:
            prefix, self.bullet = self.bullet, None
        else:
            prefix = "  " * min(len(self.lists), _MAX_INDENT)
        self.lines.append((_TEXT, self.quote + prefix + line))

    def _heading(self, node: Any, level: int, dedupe: bool) -> None:
        """Writes a heading; `dedupe` skips one already written (chrome repeats its own)."""
        text = collapse(node.text())
        if level <= 3:
            text = self.raw.get(text, text)
        line = "#" * level + " " + text
        if not text or (dedupe and line in self.seen_headings):
            return
        self._flush()
        self.seen_headings.add(line)
        self.lines.append((_HEADING, line))

    def _keep_headings(self, node: Any) -> None:
        """The h1-h3 headings of a dropped element: cheap, and they map the page."""
        if node.child is None:
            return
        for heading in node.css("h1, h2, h3"):
            self._heading(heading, _HEADINGS[heading.tag], dedupe=True)

    def _code_block(self, node: Any, flags: int) -> None:
        code = node.text().strip("\n")
        if not code.strip():
            return
        self._begin_frame(flags)
        self.frames[-1][1] += len(code)
        # The fence outruns any backtick run inside, so the block stays one block.
        fence = "`" * max([3, *(len(run) + 1 for run in _BACKTICKS.findall(code))])
        if self.lines and self.lines[-1] == (_FENCE_END, fence):
            self.lines.pop()  # adjacent blocks (a page split over several <pre>) join up
        else:
            self.lines.append((_TEXT, fence))
        self.lines.extend((_TEXT, line) for line in code.split("\n"))
        self.lines.append((_FENCE_END, fence))
        self._end_frame()

    def _table(self, table: Any, flags: int) -> None:
        rows = [cells for cells in map(_row_cells, table.css("tr")) if any(cells)]
        if not rows:
            return
        self._begin_frame(flags)
        frame = self.frames[-1]
        frame[1] += sum(len(cell) for cells in rows for cell in cells)
        frame[2] += sum(len(collapse(link.text())) for link in table.css("a"))
        if len(rows) < 2 or max(map(len, rows)) < 2:
            self.lines.extend((_TEXT, cell) for cells in rows for cell in cells if cell)
        else:
            self.lines.extend((_TEXT, line) for line in self._table_lines(rows))
        self._end_frame()

    def _table_lines(self, rows: list[list[str]]) -> list[str]:
        lines = ["| " + " | ".join(cells) + " |" for cells in rows]
        lines.insert(1, "|" + " --- |" * max(map(len, rows)))
        if len(lines) > _MAX_TABLE_ROWS:
            rest = lines[_KEPT_TABLE_ROWS:]
            key = self.ctx.stash("\n".join(rest))
            if key:
                lines = [*lines[:_KEPT_TABLE_ROWS], elided_part(len(rest), "table rows", key)]
        return lines


def _row_cells(row: Any) -> list[str]:
    return [
        collapse(cell.text()).replace("|", "\\|") for cell in row.iter() if cell.tag in ("td", "th")
    ]


def _is_data_table(table: Any) -> bool:
    """A table (with no table inside) of short cells and no headings: not a layout table."""
    if table.css_first("h1, h2, h3, h4, h5, h6, pre") is not None:
        return False
    cells = table.css("td, th")
    return bool(cells) and all(len(cell.text()) <= _MAX_CELL_CHARS for cell in cells)


class HtmlCompressor:
    """Web pages to Markdown-like text of their title, headings and main content."""

    kind = "html"

    def compress(self, text: str, ctx: Context) -> Compressed | None:
        if not looks_like_html(text):
            return None
        tree = parser_class()(text)
        title_node = tree.css_first("head > title")
        title = collapse(title_node.text()) if title_node is not None else ""
        tree.strip_tags(_STRIPPED_TAGS, recursive=True)
        root = tree.body or tree.root
        if root is None:
            return None
        raw = source_spellings(text)
        limit = int(len(root.text()) * _CHROME_SHARE_OF_CONTENT)
        lines = _Renderer(tree, limit, raw, ctx).render(root)
        if title:
            lines = ["# " + raw.get(title, title), "", *lines]
        return Compressed(lines=lines) if lines else None


register(HtmlCompressor())
