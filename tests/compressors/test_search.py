"""Tests for the search compressor, on real `git grep` / `grep` output over the Python stdlib."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom import markers
from headroom.compressors.base import Compressed, Context
from headroom.compressors.search import SearchCompressor
from tests.compressors.support import Stash

STDLIB = Path(sysconfig.get_paths()["stdlib"])
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
COMPRESSOR = SearchCompressor()
PATH_LINE = re.compile(r"^([^:]+):\d+:")


def run(*command: str) -> str:
    tool = shutil.which(command[0])
    if tool is None:
        pytest.skip(f"{command[0]} is not installed")
    result = subprocess.run(
        [tool, *command[1:]], cwd=STDLIB, capture_output=True, text=True, check=False
    )
    assert result.stdout, result.stderr
    return result.stdout


def git_grep(*options: str) -> str:
    return run("git", "grep", "--no-index", *options, "--", "json/*.py", "email/*.py")


def compress(text: str, query: str = "") -> tuple[Compressed, Stash]:
    stash = Stash()
    out = COMPRESSOR.compress(text, Context(query=query, stash=stash))
    assert out is not None
    return out, stash


def paths_of(text: str) -> set[str]:
    return {m.group(1) for line in text.split("\n") if (m := PATH_LINE.match(line))}


def assert_faithful(text: str, out: Compressed) -> None:
    lines = text.split("\n")
    assert out.origin is not None and len(out.origin) == len(out.lines)
    kept = [i for i in out.origin if i is not None]
    assert kept == sorted(set(kept))
    for line, origin in zip(out.lines, out.origin, strict=True):
        if origin is None:
            assert markers.is_marker(line)
        else:
            assert line == lines[origin]


def test_numbered_output_keeps_every_file_and_one_marker() -> None:
    text = git_grep("-n", "-e", "def ")
    out, _ = compress(text)
    assert_faithful(text, out)
    assert paths_of(out.text) == paths_of(text)
    assert sum(markers.is_marker(line) for line in out.lines) == 1
    assert len(out.text) < 0.5 * len(text)


def test_stash_holds_exactly_the_dropped_lines_in_order() -> None:
    text = git_grep("-n", "-e", "def ")
    out, stash = compress(text)
    lines = text.split("\n")
    kept = {i for i in (out.origin or []) if i is not None}
    (key,) = markers.keys_in(out.text)
    assert stash.parts[key] == "\n".join(lines[i] for i in range(len(lines)) if i not in kept)


def test_marker_counts_elided_matches_and_names_the_biggest_files() -> None:
    text = git_grep("-n", "-e", "def ")
    out, _ = compress(text)
    marker = next(line for line in out.lines if markers.is_marker(line))
    kept_matches = sum(1 for line in out.lines if PATH_LINE.match(line))
    elided = int(marker.split()[1])
    assert elided == len(text.rstrip("\n").split("\n")) - kept_matches
    per_file: dict[str, int] = {}
    for line in text.split("\n"):
        if m := PATH_LINE.match(line):
            per_file[m.group(1)] = per_file.get(m.group(1), 0) + 1
    biggest = max(per_file, key=lambda path: per_file[path])
    assert f"{biggest} {per_file[biggest]}" in marker
    assert re.search(r"\+\d+ files\]$", marker)


def test_matches_naming_a_rare_question_term_are_kept() -> None:
    text = git_grep("-n", "-e", "def ")
    rare = "def _fold_mime_parameters"
    assert rare in text
    without, _ = compress(text)
    with_term, _ = compress(text, query="Where is _fold_mime_parameters defined?")
    assert rare not in without.text
    assert rare in with_term.text


def test_a_question_term_in_every_match_selects_nothing() -> None:
    text = git_grep("-n", "-e", "def ")
    plain, _ = compress(text)
    restated, _ = compress(text, query="Which def statements are there?")
    assert restated.lines == plain.lines


def test_context_groups_stay_whole_with_separators_only_between_kept_groups() -> None:
    text = git_grep("-n", "-C", "2", "-e", "raise ")
    out, _ = compress(text)
    assert_faithful(text, out)
    assert paths_of(out.text) == paths_of(text)
    body = [line for line in out.lines if not markers.is_marker(line) and line]
    assert body[0] != "--" and body[-1] != "--"
    assert all(not (a == b == "--") for a, b in itertools.pairwise(body))
    assert len(out.text) < 0.6 * len(text)


def test_heading_output_keeps_every_heading_line() -> None:
    text = git_grep("-n", "--heading", "--break", "-e", "def ")
    out, _ = compress(text)
    assert_faithful(text, out)
    headings = [line for line in text.split("\n") if line and not line[0].isdigit()]
    assert headings and all(heading in out.lines for heading in headings)
    assert len(out.text) < 0.6 * len(text)


def test_plain_grep_without_line_numbers_is_compressed() -> None:
    text = run("grep", "-r", "--include=*.py", "def ", "json", "email")
    out, _ = compress(text)
    assert_faithful(text, out)
    files = {line.split(":", 1)[0] for line in text.split("\n") if line}
    assert all(any(line.startswith(f"{f}:") for line in out.lines) for f in files)


def test_colour_codes_are_removed_and_paths_kept() -> None:
    coloured = run("grep", "-rn", "--color=always", "--include=*.py", "def ", "json", "email")
    plain = run("grep", "-rn", "--include=*.py", "def ", "json", "email")
    out, _ = compress(coloured)
    assert "\x1b" not in out.text
    assert paths_of(out.text) == paths_of(plain)


def test_crlf_line_ends_are_kept() -> None:
    text = git_grep("-n", "-e", "def ").replace("\n", "\r\n")
    out, _ = compress(text)
    assert_faithful(text, out)
    assert all(line.endswith("\r") for line in out.lines if not markers.is_marker(line) and line)


def test_one_match_per_file_is_left_alone() -> None:
    text = git_grep("-n", "-m", "1", "-e", "import")
    assert COMPRESSOR.compress(text, Context()) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "just one line",
        (STDLIB / "json" / "decoder.py").read_text(encoding="utf-8"),
        "\n".join(f"2024-01-02 12:{i % 60:02d}:00 INFO worker {i} done" for i in range(300)),
        "\n".join(f"2024-01-02T12:{i % 60:02d}:00Z worker {i} done" for i in range(300)),
        json.dumps({"key": list(range(500))}, indent=1),
    ],
)
def test_non_search_text_is_not_compressed(text: str) -> None:
    assert COMPRESSOR.compress(text, Context()) is None


def test_a_path_with_a_closing_bracket_is_counted_not_named() -> None:
    lines = [f"app/pages/[id].tsx:{n}:  const value{n} = useRouter().query.id;" for n in range(40)]
    lines += [f"app/lib/util.ts:{n}:  const value{n} = useRouter().query.id;" for n in range(30)]
    out, _ = compress("\n".join(lines))
    (parsed,) = markers.parse(out.text)
    assert "app/lib/util.ts 30" in parsed.text and "+1 files" in parsed.text


search_lines = st.one_of(
    st.builds(
        "{}:{}:{}".format,
        st.sampled_from(["a.py", "src/b.rs", "x y/c.go", "d-1-e.c"]),
        st.integers(0, 999),
        st.text(max_size=30),
    ),
    st.builds(
        "{}-{}-{}".format,
        st.sampled_from(["a.py", "src/b.rs", "d-1-e.c"]),
        st.integers(0, 999),
        st.text(max_size=30),
    ),
    st.sampled_from(["--", "", "src/b.rs", "12:x", "3-y", "\x1b[31mred\x1b[0m", "--\r"]),
    st.text(max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(search_lines, max_size=120), st.text(max_size=30))
def test_never_raises_is_deterministic_and_origins_point_at_equal_lines(
    lines: list[str], query: str
) -> None:
    text = "\n".join(lines)
    first = COMPRESSOR.compress(text, Context(query=query, stash=Stash()))
    second = COMPRESSOR.compress(text, Context(query=query, stash=Stash()))
    assert first == second
    if first is not None and "\x1b" not in text:
        assert_faithful(text, first)


def test_corpus_keeps_every_path_and_saves_half() -> None:
    manifest = CORPUS / "manifest.json"
    if not manifest.exists():
        pytest.skip("corpus not present")
    before = after = 0
    for record in json.loads(manifest.read_text(encoding="utf-8")):
        if record["kind"] != "search":
            continue
        with (CORPUS / record["file"]).open(encoding="utf-8", newline="") as handle:
            text = handle.read()
        out = COMPRESSOR.compress(text, Context(query=record["question"], stash=Stash()))
        result = text if out is None else out.text
        assert all(needle in result for needle in record["needles"]), record["name"]
        before += len(text)
        after += len(result)
    assert after < 0.5 * before
