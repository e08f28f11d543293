"""The router classifies real payloads made at test time, from content and from hints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from headroom.router import Hints, Route, route, sample

STDLIB = Path(json.__file__).parent.parent


def test_python_source_from_the_standard_library_is_python_code() -> None:
    text = (STDLIB / "argparse.py").read_text()
    assert route(text) == Route("code", "py")


def test_a_path_hint_decides_the_kind_and_language() -> None:
    assert route("whatever text", Hints(path="src/main.rs")) == Route("code", "rs")
    assert route("whatever", Hints(path="/a/b/index.HTML")) == Route("html")


def test_a_dot_h_header_with_cpp_signs_is_cpp() -> None:
    header = "namespace fmt {\ntemplate <typename T> class buffer;\nstd::string s;\n}\n"
    assert route(header, Hints(path="fmt/core.h")) == Route("code", "cpp")


def test_git_grep_output_over_the_stdlib_is_search() -> None:
    out = subprocess.run(
        ["grep", "-rn", "def __init__", str(STDLIB / "json"), str(STDLIB / "email")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert route(out) == Route("search")


def test_a_grep_command_hint_routes_to_search() -> None:
    assert route("anything at all", Hints(command="rg -n foo src/")).kind == "search"


def test_a_git_diff_is_a_diff(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    target = tmp_path / "a.txt"
    target.write_text("one\ntwo\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "."], check=True)
    target.write_text("one\nthree\n")
    out = subprocess.run(
        ["git", "-C", str(tmp_path), "diff"], capture_output=True, text=True, check=True
    ).stdout
    assert route(out) == Route("diff")


def test_pip_inspect_json_is_json() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "inspect"], capture_output=True, text=True, check=True
    ).stdout
    assert route(out) == Route("json")


def test_bracketed_log_lines_are_not_json() -> None:
    log = "\n".join(
        f"[2024-05-01 10:00:{i:02d}] local.INFO: request {i} handled" for i in range(40)
    )
    assert route(log) == Route("log")


def test_html_documents_are_html() -> None:
    page = "<!DOCTYPE html><html><head><title>t</title></head><body><p>x</p></body></html>"
    assert route(page) == Route("html")


def test_plain_prose_is_prose() -> None:
    paragraph = (
        "The quick brown fox jumps over the lazy dog while the farmer watches from afar. "
        "Nobody in the village could explain why the animals behaved this way every evening. "
    )
    assert route(paragraph * 6) == Route("prose")


@pytest.mark.parametrize("text", ["", "   \n\t", "\x00\x00"])
def test_empty_or_blank_input_is_unknown_or_safe(text: str) -> None:
    assert route(text).kind in {"unknown", "log"}


def test_the_sample_is_bounded() -> None:
    big = "x" * 10_000_000
    assert len(sample(big)) < 20_000


def test_json_lines_of_captured_program_output_are_a_log() -> None:
    events = [
        {"Time": f"2024-01-01T00:00:{i:02d}Z", "Action": "output", "Package": "example.com/pkg",
         "Output": f"=== RUN   TestCase{i}\n"}
        for i in range(30)
    ]  # fmt: skip
    assert route("\n".join(json.dumps(e) for e in events) + "\n") == Route("log")


def test_json_lines_of_records_stay_json() -> None:
    records = [{"id": i, "type": "PushEvent", "actor": {"login": f"user{i}"}} for i in range(30)]
    assert route("\n".join(json.dumps(r) for r in records) + "\n") == Route("json")
