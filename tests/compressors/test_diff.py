"""Tests for the diff compressor on real `git show` / `git log -p` output of repositories made
in tmp_path (content: stdlib source files), small hand-written samples and the dev corpus."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom import markers
from headroom.compressors.base import Compressed, Context
from headroom.compressors.diff import DiffCompressor

COMPRESSOR = DiffCompressor()
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
SOURCE = Path(textwrap.__file__).read_text(encoding="utf-8").split("\n")
COLOUR = re.compile(r"\x1b\[[0-9;]*m")
STAT = re.compile(r"^ \S+ +\| +\d+ [+-]*$")
SECTION = re.compile(r"^(@@ -\S+ \+\S+ @@).*$")

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo: Path, *args: str) -> str:
    """Runs git in a throwaway repository with a clean, fixed identity and config."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(repo),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "A U Thor",
        "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "C O Mitter",
        "GIT_COMMITTER_EMAIL": "committer@example.com",
        "GIT_AUTHOR_DATE": "2024-01-02T03:04:05Z",
        "GIT_COMMITTER_DATE": "2024-01-02T03:04:05Z",
    }
    done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)
    return done.stdout.decode("utf-8")


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def compress(text: str, query: str = "") -> Compressed:
    result = COMPRESSOR.compress(text, Context(query=query))
    assert result is not None
    return result


def edited_source() -> list[str]:
    """The stdlib source with changes 0..6 lines apart, at the top and at the bottom."""
    lines = list(SOURCE)
    for at in (0, 50, 52, 60, 63, 80, 84, 100, 105, 120, 127, len(lines) - 2):
        lines[at] = f"{lines[at]}  # edited {at}"
    del lines[300:303]
    lines[200:200] = ["# inserted one", "# inserted two"]
    return lines


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose HEAD commit edits a Python file and a text file without final newline."""
    git(tmp_path, "init", "-q")
    (tmp_path / "wrap.py").write_text("\n".join(SOURCE), encoding="utf-8")
    notes = [f"note {n}" for n in range(40)]
    (tmp_path / "notes.txt").write_text("\n".join(notes), encoding="utf-8")
    (tmp_path / "gone.txt").write_text("old\nfile\n", encoding="utf-8")
    commit_all(tmp_path, "base")
    (tmp_path / "wrap.py").write_text("\n".join(edited_source()), encoding="utf-8")
    notes[36] = "note thirty-six"
    (tmp_path / "notes.txt").write_text("\n".join(notes), encoding="utf-8")
    (tmp_path / "gone.txt").unlink()
    (tmp_path / "fresh.txt").write_text("brand\nnew\n", encoding="utf-8")
    commit_all(tmp_path, "Edit wrap.py in many places\n\nThe body of the message.")
    return tmp_path


def patch_lines(result: Compressed) -> list[str]:
    return [line for line in result.lines if not markers.is_marker(line)]


@needs_git
def test_output_minus_markers_is_a_patch_git_applies(repo: Path, tmp_path: Path) -> None:
    shown = git(repo, "show", "--stat", "-p", "HEAD")
    result = compress(shown)
    assert len(result.text) < len(shown)
    wanted = {name: (repo / name).read_bytes() for name in ("wrap.py", "notes.txt", "fresh.txt")}
    patch = tmp_path / "out.patch"
    patch.write_text("\n".join(patch_lines(result)), encoding="utf-8")
    git(repo, "checkout", "-q", "HEAD~1")
    git(repo, "apply", "--check", str(patch))
    git(repo, "apply", str(patch))
    assert {name: (repo / name).read_bytes() for name in wanted} == wanted
    assert not (repo / "gone.txt").exists()


@needs_git
def test_hunks_are_those_of_git_diff_U1_apart_from_section_text(repo: Path) -> None:
    result = compress(git(repo, "show", "-p", "HEAD", "--", "wrap.py"))
    expected = git(repo, "diff", "-U1", "HEAD~1", "HEAD", "--", "wrap.py").split("\n")
    ours = result.lines[result.lines.index(expected[0]) :]
    assert [SECTION.sub(r"\1", line) for line in ours] == [
        SECTION.sub(r"\1", line) for line in expected
    ]
    assert sum(line.startswith("@@ ") for line in ours) > 8  # hunks were split


@needs_git
def test_recomputed_headers_keep_section_text_and_unchanged_ones_their_origin(
    repo: Path,
) -> None:
    shown = git(repo, "show", "-p", "HEAD", "--", "wrap.py")
    source = shown.split("\n")
    result = compress(shown)
    origin = result.origin or []
    sections = {m[1] for line in source if (m := re.match(r"@@ [^@]+ @@(.*)", line))}
    for line, at in zip(result.lines, origin, strict=True):
        if line.startswith("@@ "):
            assert re.match(r"@@ [^@]+ @@(.*)", line)[1] in sections  # type: ignore[index]
            assert at is None or source[at] == line


@needs_git
def test_no_newline_line_is_kept_with_the_line_it_belongs_to(repo: Path) -> None:
    result = compress(git(repo, "show", "-p", "HEAD", "--", "notes.txt"))
    at = result.lines.index("\\ No newline at end of file")
    assert result.lines[at - 1] == " note 39"
    assert "-note 36" in result.lines
    assert "+note thirty-six" in result.lines


@needs_git
def test_commit_header_message_stat_and_every_changed_line_are_kept(repo: Path) -> None:
    shown = git(repo, "show", "--stat", "-p", "HEAD")
    result = compress(shown)
    source = shown.split("\n")
    diff_start = next(i for i, line in enumerate(source) if line.startswith("diff --git"))
    assert result.lines[:diff_start] == source[:diff_start]
    changed = [
        line for line in source[diff_start:] if line.startswith(("+", "-", "diff --git", "\\"))
    ]
    assert [line for line in result.lines if line in changed] == changed


@needs_git
def test_every_commit_of_git_log_p_is_kept(repo: Path) -> None:
    (repo / "fresh.txt").write_text("brand\nnewer\n", encoding="utf-8")
    commit_all(repo, "Third commit")
    log = git(repo, "log", "-p", "--stat", "--format=fuller")
    result = compress(log)
    for line in log.split("\n"):
        if line.startswith(("commit ", "Author:", "CommitDate:")) or STAT.match(line):
            assert line in result.lines
    for message in ("    Third commit", "    The body of the message.", "    base"):
        assert message in result.lines
    assert result.lines.count("diff --git a/fresh.txt b/fresh.txt") == 2


@needs_git
def test_lockfile_vendored_and_generated_hunks_go_behind_one_marker_each(
    repo: Path, tmp_path: Path
) -> None:
    lock = {"packages": {f"node_modules/p{n}": {"version": f"1.{n}.0"} for n in range(60)}}
    (repo / "package-lock.json").write_text(json.dumps(lock, indent=2), encoding="utf-8")
    (repo / "vendor" / "lib").mkdir(parents=True)
    (repo / "vendor" / "lib" / "wrap.py").write_text("\n".join(SOURCE[:80]), encoding="utf-8")
    generated = ["# Code generated by a tool. DO NOT EDIT.", *SOURCE[:80]]
    (repo / "models_gen.py").write_text("\n".join(generated), encoding="utf-8")
    (repo / "real.py").write_text("\n".join(SOURCE[:30]), encoding="utf-8")
    commit_all(repo, "Add dependencies")
    shown = git(repo, "show", "--stat", "-p", "HEAD")
    result = compress(shown)
    notes = sorted(m.text.split("(")[1].split(")")[0] for m in markers.parse(result.text))
    assert notes == ["generated", "lockfile", "vendored"]
    for name in ("package-lock.json", "vendor/lib/wrap.py", "models_gen.py", "real.py"):
        assert f"diff --git a/{name} b/{name}" in result.lines
    source = shown.split("\n")
    for elision in markers.parse(result.text):
        assert elision.first_line is not None and elision.last_line is not None
        assert source[elision.first_line - 1].startswith("@@ -0,0 +1,")
        after = source[elision.last_line]  # the first line past the elided hunks
        assert after.startswith("diff --git") or after == ""
    assert all(f"+{line}" in result.lines for line in SOURCE[:30])


@needs_git
def test_a_file_the_question_names_is_not_elided(repo: Path) -> None:
    (repo / "Cargo.lock").write_text("\n".join(f'name = "crate{n}"' for n in range(50)))
    commit_all(repo, "Lock")
    shown = git(repo, "show", "-p", "HEAD")
    named = COMPRESSOR.compress(shown, Context(query="what changed in Cargo.lock?"))
    assert named is None or markers.parse(named.text) == []
    assert markers.parse(compress(shown, "what changed?").text) != []


@needs_git
def test_git_binary_patch_data_is_elided_and_the_notice_kept(repo: Path) -> None:
    (repo / "blob.bin").write_bytes(bytes(range(256)) * 40)
    commit_all(repo, "Add a blob")
    result = compress(git(repo, "show", "--binary", "HEAD"))
    assert "GIT binary patch" in result.lines
    assert "(binary)" in markers.parse(result.text)[0].text
    plain = git(repo, "show", "HEAD")
    assert "Binary files /dev/null and b/blob.bin differ" in plain
    assert COMPRESSOR.compress(plain, Context()) is None  # nothing worth cutting


@needs_git
def test_coloured_output_compresses_to_the_plain_output(repo: Path) -> None:
    coloured = git(repo, "show", "--stat", "-p", "--color=always", "HEAD")
    assert "\x1b[" in coloured
    assert compress(coloured).lines == compress(git(repo, "show", "--stat", "-p", "HEAD")).lines


def test_crlf_lines_keep_their_carriage_return() -> None:
    body = [" a", " b", " c", "-d", "+D", " e", " f", " g"]
    text = "\r\n".join(["--- a/x.txt", "+++ b/x.txt", "@@ -1,7 +1,7 @@ top", *body]) + "\r\n"
    result = compress(text)
    assert result.lines[2:7] == ["@@ -3,3 +3,3 @@ top\r", " c\r", "-d\r", "+D\r", " e\r"]


def test_header_counts_are_spelled_as_git_spells_them() -> None:
    body = ["+new", *(f" line {n}" for n in range(1, 5)), "-line 5", " line 6", " line 7"]
    result = compress("\n".join(["--- a/f", "+++ b/f", "@@ -1,7 +1,7 @@", *body]))
    assert result.lines[2:] == [
        *("@@ -1 +1,2 @@", "+new", " line 1"),
        *("@@ -4,3 +5,2 @@", " line 4", "-line 5", " line 6"),
    ]
    assert result.origin == [0, 1, None, 3, 4, None, 7, 8, 9]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain prose with no diff in it\n" * 20,
        json.dumps({"diff": "--- a/x", "lines": list(range(50))}, indent=2),
        "@@ -1,2 +1,2 @@\nnot a hunk body\n" * 10,
        "\n".join(f"src/a.py:{n}:    x = {n}" for n in range(50)),
    ],
)
def test_what_is_not_a_diff_is_left_alone(text: str) -> None:
    assert COMPRESSOR.compress(text, Context()) is None


@needs_git
def test_a_large_diff_compresses_in_linear_time(repo: Path) -> None:
    shown = git(repo, "show", "-p", "HEAD", "--", "wrap.py")
    big = shown * (1_500_000 // len(shown))
    started = time.perf_counter()
    result = compress(big)
    # A hang guard, not a speed test: quadratic work on 1.5 MB takes hours.
    assert time.perf_counter() - started < 30.0
    assert len(result.text) < 0.9 * len(big)


DIFF_LINES = st.sampled_from(
    [
        "diff --git a/x.py b/x.py",
        "--- a/x.py",
        "+++ b/x.py",
        "@@ -1,3 +1,3 @@ def f():",
        "@@ -10,4 +10,5 @@",
        "@@ -0,0 +1 @@",
        " context",
        "",
        "-old",
        "+new",
        "\\ No newline at end of file",
        "GIT binary patch",
        "literal 12",
        "zcmZ?wbhEHbRA6F@W",
        "commit 0123456789abcdef",
        "\x1b[32m+green\x1b[m",
        " ctx\r",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(DIFF_LINES, st.text(max_size=12)), max_size=80))
def test_property_never_raises_is_deterministic_and_origins_point_at_equal_lines(
    parts: list[str],
) -> None:
    text = "\n".join(parts)
    first = COMPRESSOR.compress(text, Context())
    assert first == COMPRESSOR.compress(text, Context())
    if first is None:
        return
    source = text.split("\n")
    assert first.origin is not None and len(first.origin) == len(first.lines)
    for line, at in zip(first.lines, first.origin, strict=True):
        if at is None:
            assert markers.is_marker(line) or line.startswith("@@ -")
        else:
            assert line in (source[at], COLOUR.sub("", source[at]))


def corpus_diffs() -> list[Path]:
    folder = CORPUS / "diff"
    return sorted(folder.iterdir()) if folder.is_dir() else []


@pytest.mark.skipif(not corpus_diffs(), reason="the shared corpus is absent")
@pytest.mark.parametrize("path", corpus_diffs(), ids=lambda p: p.name)
def test_corpus_diff_keeps_every_changed_line_and_gets_shorter(path: Path) -> None:
    with path.open(encoding="utf-8", newline="") as handle:
        text = handle.read()
    result = compress(text)
    kept = set(result.lines)
    for line in text.split("\n"):
        if line.startswith(("diff --git", "+", "-", "commit ")):
            assert line in kept
    assert len(result.text) < len(text)


def test_prose_saying_generated_by_does_not_hide_a_hand_written_file() -> None:
    body = [
        '+"""Tokens generated by the lexer, one per line."""',
        *(f"+x{n} = {n}" for n in range(30)),
    ]
    text = "\n".join(["--- /dev/null", "+++ b/tokens.py", "@@ -0,0 +1,31 @@", *body])
    assert COMPRESSOR.compress(text, Context()) is None  # kept whole: nothing to cut
    comment = ["+# This file is generated by tokgen; do not edit.", *body[1:]]
    marked = "\n".join(["--- /dev/null", "+++ b/tokens.py", "@@ -0,0 +1,31 @@", *comment])
    assert "(generated)" in compress(marked).text
