"""Tests for the HTML compressor, on pages real programs write (Sphinx docs shipped with the
stdlib, pydoc, difflib) and on small pages in the shapes news and blog sites use."""

from __future__ import annotations

import difflib
import inspect
import json
import re
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom import markers, tokens
from headroom.compressors.base import Compressed, Context
from headroom.compressors.html import HtmlCompressor
from headroom.compressors.html_page import looks_like_html
from tests.compressors.support import Stash

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
IDLE_HELP = Path(sysconfig.get_paths()["stdlib"]) / "idlelib" / "help.html"
COMPRESSOR = HtmlCompressor()
HEADING = re.compile(r"<(title|h[1-3])\b[^>]*>(.*?)</\1\s*>", re.I | re.S)
TAG = re.compile(r"<[^>]*>")
SPACE = re.compile(r"\s+")

NEWS_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Fish &amp; Chips | The Daily</title>
<script>window.dataLayer = [{"page": "<h2>not a heading</h2>"}];</script>
<style>.nav { color: red }</style></head>
<body>
<div class="cookie-consent"><p>We use cookies to improve your experience.</p></div>
<header class="site-header"><a class="logo" href="/">The Daily</a>
  <nav aria-label="Sections"><h2>Sections</h2><ul>
    <li><a href="/world">World</a></li><li><a href="/food">Food &amp; Drink</a></li>
  </ul></nav></header>
<div class="layout-with-sidebar">
 <main>
  <article>
   <header><h1>Fish &amp; Chips, a history</h1><p class="byline">By A. Writer</p></header>
   <p>The dish reached <a href="https://example.com/london">London</a> in the 1860s &mdash;
   or so the story goes.</p>
   <div class="share-tools"><a href="#">Share on Facebook</a><a href="#">Tweet this</a></div>
   <h2>Where it began</h2>
   <p>Two shops claim to be the first; both sold <em>fried</em> fish.</p>
   <svg><title>icon</title><path d="M0 0"/></svg>
  </article>
 </main>
 <aside class="sidebar"><h3>Most read</h3><ul>
  <li><a href="/1">A story about trains</a></li><li><a href="/2">Another about boats</a></li>
 </ul></aside>
</div>
<footer><p>Copyright 2024 The Daily. All rights reserved.</p><h2>Contact us</h2></footer>
</body></html>"""


def compress(text: str, stash: Stash | None = None) -> str:
    out = COMPRESSOR.compress(text, Context(stash=stash or Stash()))
    assert out is not None
    assert out.origin is None
    return out.text


def flat(text: str) -> str:
    return SPACE.sub("", text)


def heading_pieces(page: str) -> list[str]:
    """The title and h1-h3 texts as the source spells them, one per text run."""
    pieces = []
    for match in HEADING.finditer(page):
        pieces += [piece.strip() for piece in TAG.split(match.group(2)) if piece.strip()]
    return pieces


def test_news_page_keeps_title_headings_and_article_text() -> None:
    out = compress(NEWS_PAGE)
    assert out.startswith("# Fish &amp; Chips | The Daily\n")
    assert "# Fish &amp; Chips, a history" in out
    assert "## Where it began" in out
    assert "By A. Writer" in out  # an article's own <header> is content
    assert "The dish reached London in the 1860s — or so the story goes." in out
    assert "both sold fried fish." in out


def test_news_page_drops_chrome_but_keeps_its_headings() -> None:
    out = compress(NEWS_PAGE)
    for chrome in ("cookies", "Food & Drink", "Share on Facebook", "A story about trains"):
        assert chrome not in out
    assert "Copyright" not in out
    for heading in ("## Sections", "### Most read", "## Contact us"):
        assert heading in out


def test_scripts_styles_svg_and_link_targets_are_dropped() -> None:
    out = compress(NEWS_PAGE)
    for gone in ("dataLayer", "not a heading", "color: red", "icon", "https://example.com"):
        assert gone not in out


def test_wrapper_whose_class_names_chrome_keeps_the_content_it_encloses() -> None:
    page = NEWS_PAGE.replace("layout-with-sidebar", "nav-wrapper related")
    assert "both sold fried fish." in compress(page)


def test_page_without_main_or_article_finds_its_paragraphs() -> None:
    body = "".join(f"<p>Paragraph {i} says something worth keeping here.</p>" for i in range(20))
    page = (
        '<html><body><div class="menu"><a href="/">Home</a><a href="/x">Docs</a></div>'
        f'<div class="sidebar-wrapper content">{body}</div></body></html>'
    )
    out = compress(page)
    assert "Paragraph 19 says something worth keeping here." in out
    assert "Docs" not in out


def test_content_inside_a_link_heavy_page_is_kept() -> None:
    links = "".join(f'<li><a href="/u/{i}">reader{i}</a></li>' for i in range(300))
    page = (
        '<html><body><div id="outer"><div role="main"><p>The chapter text, short but real.</p>'
        f'</div><p class="kudos">Kudos from:</p><ul class="people">{links}</ul></div></body></html>'
    )
    out = compress(page)
    assert "The chapter text, short but real." in out
    assert "reader7" not in out


def test_inline_element_whose_class_names_chrome_is_still_text() -> None:
    page = (
        "<html><body><p>The nature of my "
        '<a class="popup" href="javascript:void(0)">avocations</a> for thirty years.</p>'
        "</body></html>"
    )
    assert compress(page) == "The nature of my avocations for thirty years."


def test_body_text_is_decoded_while_headings_keep_their_source_spelling() -> None:
    page = "<html><body><h2>Q&amp;A&#8217;s</h2><p>Q&amp;A&#8217;s &lt;b&gt;</p></body></html>"
    assert compress(page).split("\n") == ["## Q&amp;A&#8217;s", "Q&A\u2019s <b>"]


def test_lists_quotes_and_definitions_read_as_markdown() -> None:
    page = (
        "<html><body><ul><li>one</li><li>two<ol><li>first</li><li>second</li></ol></li></ul>"
        "<blockquote><p>Said once.</p></blockquote><dl><dt>Term</dt><dd>Meaning.</dd></dl>"
        "</body></html>"
    )
    assert compress(page).split("\n") == [
        "- one",
        "- two",
        "  1. first",
        "  2. second",
        "> Said once.",
        "Term",
        ": Meaning.",
    ]


def test_code_blocks_are_fenced_and_verbatim_and_inline_code_is_quoted() -> None:
    source = inspect.getsource(textwrap.dedent)
    escaped = source.replace("&", "&amp;").replace("<", "&lt;")
    page = f"<html><body><p>Use <code>dedent()</code>:</p><pre>{escaped}</pre></body></html>"
    out = compress(page)
    assert out.startswith("Use `dedent()`:\n```\n")
    assert source.strip("\n") in out


def test_code_with_a_fence_inside_gets_a_longer_fence_and_adjacent_blocks_join() -> None:
    page = "<html><body><pre>a ``` b</pre><pre>one</pre><pre>two</pre></body></html>"
    assert compress(page).split("\n") == ["````", "a ``` b", "````", "```", "one", "two", "```"]


@pytest.mark.skipif(not IDLE_HELP.is_file(), reason="this Python ships without idlelib")
def test_sphinx_page_keeps_every_heading_and_code_and_drops_the_sidebar() -> None:
    page = IDLE_HELP.read_text(encoding="utf-8")
    out = compress(page)
    assert out.startswith("# IDLE")
    missing = [p for p in heading_pieces(page) if flat(p) not in flat(out)]
    assert missing == []
    assert "```\nidle.py [-c command]" in out
    assert "Report a Bug" in page and "Report a Bug" not in out
    assert tokens.count(out) < 0.6 * tokens.count(page)


def test_pydoc_page_keeps_the_module_docs() -> None:
    page = pydoc_page("json")
    out = compress(page)
    assert out.startswith("# Python: package json")
    for name in ("JSONDecodeError", "dumps", "loads", "Compact encoding"):
        assert name in out
    assert len(out) < len(page) / 2


def pydoc_page(module: str) -> str:
    code = f"import pydoc, {module} as m; print(pydoc.HTMLDoc().page(pydoc.describe(m), "
    code += "pydoc.HTMLDoc().document(m)))"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout


def test_data_table_becomes_pipe_rows_and_a_long_one_is_cut_behind_a_marker() -> None:
    old = inspect.getsource(textwrap).splitlines()
    new = [line.replace("width", "columns") for line in old]
    table = difflib.HtmlDiff().make_table(old, new, context=True)
    stash = Stash()
    out = compress(f"<html><body>{table}</body></html>", stash)
    rows = [line for line in out.split("\n") if line.startswith("| ")]
    assert "| --- |" in out.split("\n")[1]
    assert any("columns (default: 70)" in row for row in rows)
    [elision] = markers.parse(out)
    assert elision.key is not None
    assert "columns" in stash.parts[elision.key]


def test_consecutive_links_stay_apart() -> None:
    page = '<html><body><p>Tags: <a href="/a">one</a><a href="/b">two</a></p></body></html>'
    assert compress(page) == "Tags: one two"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "just some words, no markup at all",
        inspect.getsource(textwrap),
        json.dumps({"body": "<div><p>a</p><p>b</p><ul><li>c</li></ul></div>"}),
        "# Notes\n\nSee <b>this</b> and <a href='x'>that</a>, <br> <p>then</p> <div>more</div>.",
    ],
)
def test_text_that_is_not_an_html_payload_is_left_alone(text: str) -> None:
    assert not looks_like_html(text)
    assert COMPRESSOR.compress(text, Context()) is None


def test_an_html_fragment_is_recognised() -> None:
    fragment = "  <div><h2>Result</h2><p>one</p><p>two</p><ul><li>three</li></ul></div>"
    assert compress(fragment) == "## Result\none\ntwo\n- three"


@pytest.mark.parametrize(
    "text",
    [
        "<html><body><p>a\x00b</p><h1>x\ud800y</h1></body></html>",
        "<html>" + "<" * 50_000,
        "<html>" + "<h1>" * 20_000,
        "<html><body>" + "<div><ul><li>" * 1_500 + "deep" + "</li></ul></div>" * 1_500,
        "<!DOCTYPE html><table><tr><td><table><tr><td>x</td></tr></table></td></tr></table>",
    ],
)
def test_odd_input_does_not_raise(text: str) -> None:
    out = COMPRESSOR.compress(text, Context())
    assert out is None or isinstance(out, Compressed)


PIECES = (
    "<html>", "<body>", "<p>", "</p>", "<div class='nav'>", "<main>", "</div>", "<ul>",
    "<li>", "</li>", "<ol>", "<pre>", "</pre>", "<table>", "<tr>", "<td>", "<th>",
    "<a href='x'>", "</a>", "<code>", "<h1>", "<h2>", "</h2>", "<br>", "<script>", "<!--",
    "-->", "&amp;", "&#x27;", "&bogus;", "<", ">", "\n", "\t", "\x00", "\ud800",
)  # fmt: skip
MARKUP = st.sampled_from(PIECES)


@settings(max_examples=200, deadline=None)
@given(st.lists(MARKUP | st.text(max_size=8), max_size=60))
def test_property_never_raises_and_is_deterministic(pieces: list[str]) -> None:
    text = "<!DOCTYPE html>" + "".join(pieces)
    first = COMPRESSOR.compress(text, Context())
    second = COMPRESSOR.compress(text, Context())
    assert first == second
    if first is not None:
        assert first.origin is None
        assert all("\n" not in line for line in first.lines)


def test_import_does_not_load_the_parser() -> None:
    code = "import sys, headroom.compressors.html; print('selectolax' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_corpus_pages_keep_their_headings_and_shrink() -> None:
    records = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))
    kept = total = before = after = 0
    for record in (r for r in records if r["kind"] == "html"):
        with (CORPUS / record["file"]).open(encoding="utf-8", newline="") as handle:
            page = handle.read()
        out = compress(page)
        kept += sum(flat(needle) in flat(out) for needle in record["needles"])
        total += len(record["needles"])
        before += tokens.count(page)
        after += tokens.count(out)
    assert total and kept >= 0.99 * total
    assert after <= 0.25 * before
