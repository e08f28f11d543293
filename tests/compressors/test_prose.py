"""Tests for the prose compressor, on documentation shipped with installed packages (their
README as package metadata), the stdlib's plain-text reference docs, and small samples."""

from __future__ import annotations

import difflib
import importlib.metadata
import json
import re
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom import markers, tokens
from headroom.compressors.base import Compressed, Context
from headroom.compressors.prose import ProseCompressor

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
STDLIB = Path(sysconfig.get_paths()["stdlib"])
COMPRESSOR = ProseCompressor()
INLINE_CODE = re.compile(r"``([^`\n]+)``|`([^`\n]+)`")
TABLE_RULE = re.compile(r"\|?[ :|-]*-{3}[ :|-]*")

PLAIN_DOC = """\
Configuring the client
======================

The client talks to one server at a time. It keeps a small pool of open connections
and hands them out to requests as they arrive. Most programs never need to change
how the pool behaves, because the defaults suit a single user on a fast network.

Connections that stay idle for a long while are closed by the pool. The pool then
opens a fresh connection the next time one is needed. This costs a little latency
but keeps the number of open sockets low on busy machines.

Slow servers are a different matter. Requests wait for an answer until their
timeouts expire, and a request that waited too long fails with an error. Pick a
limit that fits the slowest answer you are willing to accept.

Everything else about the client follows the usual conventions of the platform.
Logging goes to the standard error stream, and messages are written in plain
English so that people reading them do not need to consult any manual first.

Credentials are read once, when the client starts. Changing them later has no
effect on connections that are already open, so restart the client after a change.
The client never writes credentials anywhere, not even to its own log.

Large uploads are split into parts that are sent one after another. If a part
fails, only that part is sent again, which saves a lot of time on unreliable
networks. Downloads work the same way in the other direction.
"""


def compress(text: str, query: str = "") -> Compressed:
    out = COMPRESSOR.compress(text, Context(query=query))
    assert out is not None
    return out


def readme(package: str) -> str:
    """A package's long description: its README, as the installed metadata holds it."""
    try:
        metadata = importlib.metadata.metadata(package)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{package} is not installed")
    text = metadata.get_payload() or metadata.get("Description") or ""  # type: ignore[attr-defined]
    assert len(text) > 3000
    return str(text)


def stdlib_topic(name: str) -> str:
    """A page of the stdlib's plain-text language reference (what `help()` shows)."""
    from pydoc_data.topics import topics

    return str(topics[name])


def words(text: str) -> list[str]:
    return text.split()


def written_words(out: Compressed) -> list[str]:
    """The output's words, markers and shortened table rules left out."""
    lines = [line for line in out.lines if not markers.is_marker(line)]
    return [w for line in lines if not TABLE_RULE.fullmatch(line.strip()) for w in line.split()]


def is_subsequence(part: list[str], whole: list[str]) -> bool:
    rest = iter(whole)
    return all(word in rest for word in part)


def elided(out: Compressed) -> set[int]:
    """0-based input lines that the output's markers name."""
    spans = [(e.first_line, e.last_line) for e in markers.parse(out.text)]
    return {i - 1 for first, last in spans if first and last for i in range(first, last + 1)}


def saved(text: str, out: Compressed) -> float:
    return 1 - tokens.count(out.text) / tokens.count(text)


@pytest.mark.parametrize(
    ("load", "minimum"),
    [
        pytest.param(lambda: readme("wordfreq"), 0.10, id="markdown-readme"),
        pytest.param(lambda: readme("pytest"), 0.05, id="rst-readme"),
        pytest.param(lambda: stdlib_topic("compound"), 0.20, id="plain-text-reference"),
        pytest.param(lambda: stdlib_topic("specialnames"), 0.20, id="plain-text-methods"),
    ],
)
def test_real_docs_shrink_and_keep_text_unaltered(load: Callable[[], str], minimum: float) -> None:
    text = load()
    out = compress(text, "how are the statements and methods used")
    assert saved(text, out) >= minimum
    # Kept text reads in input order, word for word: only whitespace was collapsed.
    assert is_subsequence(written_words(out), words(text))
    # What is not written is named by a marker.
    lines = text.split("\n")
    written = set(written_words(out))
    hidden = elided(out)
    lost = [w for i, line in enumerate(lines) if i not in hidden for w in line.split()]
    assert all(word in written for word in lost if not set(word) <= set("-|:="))


def test_markdown_headings_fenced_code_and_inline_code_survive() -> None:
    text = readme("wordfreq")
    out = compress(text, "which languages are supported")
    lines = text.split("\n")
    kept = {index for index in out.origin or [] if index is not None}
    fenced = False
    for index, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        if line.startswith("#") or fenced or line.startswith("```"):
            assert index in kept, line
    for match in INLINE_CODE.finditer(text):
        assert (match.group(1) or match.group(2)) in out.text


def test_rst_titles_keep_their_adornment_lines() -> None:
    text = readme("pytest")
    out = compress(text)
    lines = text.split("\n")
    titles = [
        i
        for i in range(1, len(lines) - 1)
        if lines[i].strip() and re.fullmatch(r"([=\-~^*])\1{2,}", lines[i + 1].strip())
    ]
    assert titles
    for i in titles:
        assert lines[i] in out.lines and lines[i + 1] in out.lines


def test_plain_paragraphs_need_no_markup() -> None:
    out = compress(PLAIN_DOC)
    assert any(markers.is_marker(line) for line in out.lines)
    assert "Configuring the client" in out.lines
    assert "======================" in out.lines
    assert is_subsequence(written_words(out), words(PLAIN_DOC))


def test_query_terms_keep_a_plain_sentence() -> None:
    sentence = "Requests wait for an answer until their timeouts expire"
    assert sentence not in compress(PLAIN_DOC, "how is logging done").text
    assert sentence in compress(PLAIN_DOC, "what do timeouts do").text


def test_sentences_with_new_facts_stay_and_repeats_go() -> None:
    filler = (
        "The reader walks the tree in the order the entries were written to disk, and "
        "it stops at the first entry that cannot be read for any reason at all. "
    )
    text = (
        f"Reading\n=======\n\n{filler * 3}\n\n"
        "Pass `--follow` to cross symbolic links. Version 2.4 added it.\n\n"
        f"{filler * 2}Remember that `--follow` crosses links. {filler}\n"
    )
    out = compress(text)
    assert "Pass `--follow` to cross symbolic links. Version 2.4 added it." in out.lines
    assert "Remember that `--follow` crosses links." not in out.text


def test_list_items_keep_their_bullets_and_short_items() -> None:
    items = "\n".join(f"* Short item number {word}." for word in ("one", "two", "three"))
    text = f"{PLAIN_DOC}\nThe client reads three settings:\n\n{items}\n"
    out = compress(text)
    for word in ("one", "two", "three"):
        assert f"* Short item number {word}." in out.lines


def test_a_long_code_block_keeps_its_head_and_tail() -> None:
    code = [f"    value_{k} = compute({k})" for k in range(100)]
    text = PLAIN_DOC + "\nExample:\n\n```python\n" + "\n".join(code) + "\n```\n"
    out = compress(text)
    lines = text.split("\n")
    fence = lines.index("```python")
    shown = [line for line in out.lines if line in code]
    assert shown == code[:19] + code[-19:]  # 20 lines each end, the fences included
    assert markers.elided_lines(fence + 21, fence + 82) in out.lines


def test_crlf_text_is_written_with_crlf() -> None:
    text = PLAIN_DOC.replace("\n", "\r\n")
    out = compress(text)
    assert all(line.endswith("\r") for line in out.lines[:-1])
    assert out.lines[-1] == ""


def test_origin_points_at_the_same_input_line() -> None:
    text = readme("wordfreq")
    out = compress(text)
    lines = text.split("\n")
    assert out.origin is not None and len(out.origin) == len(out.lines)
    for line, index in zip(out.lines, out.origin, strict=True):
        assert index is None or lines[index] == line


def git_style_diff() -> str:
    old = (STDLIB / "json" / "decoder.py").read_text().splitlines(keepends=True)
    new = [line.replace("JSON", "Json") for line in old]
    return "".join(difflib.unified_diff(old, new, "a/json/decoder.py", "b/json/decoder.py"))


def import_time_log() -> str:
    command = [sys.executable, "-X", "importtime", "-c", "import json, email.parser"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stderr


@pytest.mark.parametrize(
    "load",
    [
        lambda: json.dumps({"items": [{"id": k, "name": f"item {k}"} for k in range(200)]}),
        lambda: (STDLIB / "json" / "decoder.py").read_text(),
        lambda: (STDLIB / "argparse.py").read_text(),
        git_style_diff,
        import_time_log,
        lambda: "",
        lambda: "Just one short sentence.",
        lambda: "\n\n  \n",
    ],
    ids=["json", "python", "python-long", "diff", "log", "empty", "tiny", "blank"],
)
def test_what_is_not_prose_is_left_alone(load: Callable[[], str]) -> None:
    assert COMPRESSOR.compress(load(), Context()) is None


def test_time_stays_linear_on_large_and_hostile_input() -> None:
    from pydoc_data.topics import topics

    large = "\n\n".join(topics[name] for name in sorted(topics))[:1_000_000]
    hostile = [
        "<pre>\n" * 20_000,
        "Word `tick " * 50_000,
        'A "quote and *star and **bold ' * 20_000,
        "A sentence without an end " * 40_000,
        "- item. Another.\n" * 20_000,
    ]
    # A hang guard, not a speed test (speed is `headroom bench`'s): quadratic work on a
    # megabyte takes hours, so a limit far above a loaded machine's worst still catches it.
    for text in [large, *hostile]:
        start = time.perf_counter()
        COMPRESSOR.compress(text, Context(query="how"))
        assert time.perf_counter() - start < 30.0, text[:40]


LINE = st.one_of(
    st.sampled_from(
        [
            "",
            "# Title",
            "Title",
            "=====",
            "```",
            "::",
            "    code = 1",
            "* item one.",
            "1. step",
            "| a | b |",
            ":field: value.",
            ".. note::",
            ".. _label:",
            "<!-- c -->",
            "\r",
            "\x00",
            "\ud800",
        ]
    ),
    st.text(alphabet=st.sampled_from(list("ab .,:`*-_\"'()[]#=|\t0123")), max_size=60),
    st.builds(
        lambda n, w: " ".join([w] * n) + ".",
        st.integers(1, 30),
        st.sampled_from(["word", "`code`", "--flag", "3.14", "Plain"]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, max_size=60), st.text(max_size=20))
def test_never_raises_is_deterministic_and_origins_hold(lines: list[str], query: str) -> None:
    text = "\n".join(lines)
    first = COMPRESSOR.compress(text, Context(query=query))
    second = COMPRESSOR.compress(text, Context(query=query))
    assert first == second
    if first is None:
        return
    assert len(first.text) < len(text)
    assert first.origin is not None and len(first.origin) == len(first.lines)
    for line, index in zip(first.lines, first.origin, strict=True):
        assert index is None or lines[index] == line
    for elision in markers.parse(first.text):
        assert elision.first_line is not None and elision.last_line is not None
        assert 1 <= elision.first_line <= elision.last_line <= len(lines)


def test_corpus_saves_a_fifth_and_keeps_needles() -> None:
    manifest = CORPUS / "manifest.json"
    if not manifest.exists():
        pytest.skip("corpus not present")
    before = after = kept = total = 0
    for record in json.loads(manifest.read_text(encoding="utf-8")):
        if record["kind"] != "prose":
            continue
        with (CORPUS / record["file"]).open(encoding="utf-8", newline="") as handle:
            text = handle.read()
        out = COMPRESSOR.compress(text, Context(query=record["question"]))
        result = text if out is None else out.text
        flat = "".join(result.split())
        kept += sum("".join(needle.split()) in flat for needle in record["needles"])
        total += len(record["needles"])
        before += tokens.count(text)
        after += tokens.count(result)
    assert after <= 0.8 * before
    assert kept >= 0.99 * total
