"""Tests for the log compressor: on a real pytest run's output, on small logs written in the
shapes real programs print (access logs, system logs, Java and Maven output), and on the
development corpus when it is present."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom import markers
from headroom.compressors.base import Compressed, Context
from headroom.compressors.log import LogCompressor

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
COMPRESSOR = LogCompressor()
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def compress(text: str, query: str = "") -> Compressed:
    out = COMPRESSOR.compress(text, Context(query=query))
    assert out is not None
    return out


def kept_lines(out: Compressed) -> list[str]:
    return [line for line in out.lines if not markers.is_marker(line)]


def access_log() -> str:
    """An nginx access log: a long run of 200s with one 304 and two 404s among them."""
    lines = []
    for i in range(300):
        status = {100: 404, 200: 304, 250: 404}.get(i, 200)
        lines.append(
            f"10.0.{i % 7}.{i % 251} - - [22/Jan/2019:03:{i // 60:02d}:{i % 60:02d} +0330] "
            f'"GET /product/{10000 + i * 37} HTTP/1.1" {status} {3000 + i * 11} "-" '
            f'"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)" "-"'
        )
    return "\n".join(lines) + "\n"


def system_log() -> str:
    """An HDFS-style log: repetitive INFO records and WARN records whose block ids differ."""
    lines = []
    for i in range(400):
        block = 1000000007 * (i + 3) % 9999999967
        if i % 40 == 7:
            lines.append(
                f"081109 2{i:05d} 19 WARN dfs.DataNode$DataXceiver: 10.251.30.{i % 250}:50010:"
                f"Got exception while serving blk_{block} to /10.251.90.{i % 200}:"
            )
        else:
            lines.append(
                f"081109 2{i:05d} 35 INFO dfs.DataNode$PacketResponder: Received block "
                f"blk_{block} of size 67108864 from /10.250.{i % 19}.{i % 250}"
            )
    return "\n".join(lines)


def java_failure(times: int) -> str:
    """Maven surefire output: passing test classes, then one failing test printed `times`
    times with the same stack trace."""
    head = [
        f"Running com.example.Suite{i}Test\nTests run: 4, Failures: 0, Errors: 0" for i in range(60)
    ]
    failure = textwrap.dedent(
        """\
        testParse(com.example.ParserTest)  Time elapsed: 0.02 sec  <<< FAILURE!
        java.lang.AssertionError:
        Expecting message:
         <"bad input">
        but was:
         <"null">
        \tat com.example.ParserTest.testParse(ParserTest.java:42)
        \tat org.junit.runners.ParentRunner.run(ParentRunner.java:363)
        \tat org.apache.maven.surefire.booter.ForkedBooter.main(ForkedBooter.java:75)
        """
    )
    tail = "Tests run: 241, Failures: 1, Errors: 0, Skipped: 0\n[INFO] BUILD FAILURE"
    return "\n".join([*head, *[failure] * times, tail])


def test_real_pytest_run_keeps_failures_and_summary(tmp_path: Path) -> None:
    tests = tmp_path / "test_sample.py"
    tests.write_text(
        textwrap.dedent(
            """\
            import pytest

            @pytest.mark.parametrize("n", range(300))
            def test_many(n):
                assert n >= 0

            def test_broken():
                values = {"expected": 3}
                assert values["expected"] == 4, "value drifted for order 8812"

            def test_crash():
                raise RuntimeError("device 0x7f3a lost")
            """
        )
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", str(tests)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    text = run.stdout
    out = compress(text, "Which tests failed and why?")
    kept = "\n".join(kept_lines(out))
    assert "value drifted for order 8812" in kept
    assert "RuntimeError: device 0x7f3a lost" in kept
    assert re.search(r"FAILED .*test_broken", kept)
    summary = [line for line in text.splitlines() if "2 failed, 300 passed" in line]
    assert summary and summary[-1] in kept
    assert len(out.text) < len(text) * 0.5


def test_a_status_with_few_values_stays_part_of_the_template() -> None:
    text = access_log()
    out = compress(text)
    lines = text.split("\n")
    kept = kept_lines(out)
    assert [line for line in lines if '" 404 ' in line] == [
        line for line in kept if '" 404 ' in line
    ]
    assert any('" 304 ' in line for line in kept)
    assert sum('" 200 ' in line for line in kept) <= 3
    assert len(out.text) < len(text) * 0.1


def test_distinct_warning_lines_are_all_kept_whole() -> None:
    text = system_log()
    out = compress(text, "Which blocks had exceptions?")
    warnings = [line for line in text.split("\n") if " WARN " in line]
    assert len(warnings) == 10
    assert all(line in out.lines for line in warnings)
    assert len(out.text) < len(text) * 0.3


def test_stack_trace_and_message_lines_stay_but_a_repeated_trace_is_elided() -> None:
    text = java_failure(times=5)
    out = compress(text)
    kept = kept_lines(out)
    for line in (
        ' <"bad input">',
        "but was:",
        "\tat com.example.ParserTest.testParse(ParserTest.java:42)",
        "Tests run: 241, Failures: 1, Errors: 0, Skipped: 0",
        "[INFO] BUILD FAILURE",
    ):
        assert line in kept
    assert kept.count("\tat com.example.ParserTest.testParse(ParserTest.java:42)") == 1
    assert kept.count("java.lang.AssertionError:") == 5


def test_zero_counts_are_not_failures() -> None:
    out = compress(java_failure(times=1))
    zero = [line for line in kept_lines(out) if line.startswith("Tests run: 4, Failures: 0")]
    assert 1 <= len(zero) <= 2  # an example of the run, and perhaps the last as a summary


def test_ansi_codes_and_carriage_return_redraws_are_dropped() -> None:
    progress = "".join(f"\rDownloading {p}%" for p in range(0, 101, 10))
    lines = [f"\x1b[32mINFO\x1b[0m step {i} done" for i in range(30)]
    lines[12] = progress.lstrip("\r")
    lines[20] = "\x1b[1;31mERROR\x1b[0m disk /dev/sda1 is full"
    out = compress("\n".join(lines))
    assert "ERROR disk /dev/sda1 is full" in out.lines
    assert not any("\x1b" in line for line in out.lines)
    assert "Downloading 100%" in out.lines or any(
        m.first_line is not None and m.first_line <= 13 <= (m.last_line or 0)
        for m in markers.parse(out.text)
    )


def test_question_words_keep_their_lines() -> None:
    lines = [f"2024-01-01T10:00:{i % 60:02d}Z job worker-{i % 5} heartbeat ok" for i in range(200)]
    lines[150] = "2024-01-01T10:02:30Z job worker-3 evicted from node pool-b"
    out = compress("\n".join(lines), "Which worker was evicted?")
    assert lines[150] in out.lines


def test_markers_cover_every_elided_line_exactly_once() -> None:
    text = system_log()
    out = compress(text)
    assert out.origin is not None
    covered: list[int] = []
    for line, origin in zip(out.lines, out.origin, strict=True):
        if origin is not None:
            covered.append(origin + 1)
        else:
            (marker,) = markers.parse(line)
            assert marker.first_line is not None and marker.last_line is not None
            covered.extend(range(marker.first_line, marker.last_line + 1))
    assert covered == list(range(1, len(text.split("\n")) + 1))


def test_crlf_line_ends_stay_byte_exact() -> None:
    text = (system_log() + "\n").replace("\n", "\r\n")
    out = compress(text)
    assert out.origin is not None
    lines = text.split("\n")
    for line, origin in zip(out.lines, out.origin, strict=True):
        if origin is not None:
            assert line == lines[origin]
            assert line.endswith("\r") or origin == len(lines) - 1


def test_short_input_and_source_code_are_left_alone() -> None:
    assert COMPRESSOR.compress("ERROR one\nINFO two", Context()) is None
    source = Path(json.__file__).read_text(encoding="utf-8")
    assert COMPRESSOR.compress(source, Context()) is None


def test_output_is_deterministic() -> None:
    text = access_log() + system_log()
    assert compress(text).lines == compress(text).lines


LOG_LINE = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "\r",
            "ERROR failed to open /tmp/x: No such file",
            "\x1b[31mWARN\x1b[0m retrying 3",
            "\tat a.b.C.d(C.java:12)",
            "progress 10%\rprogress 100%",
            "Tests run: 3, Failures: 0, Errors: 0",
            "=== FAILURES ===",
            '1.2.3.4 - - "GET / HTTP/1.1" 500 12',
            "INFO request 42 served",
        ]
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(LOG_LINE, max_size=60), st.text(max_size=30))
def test_never_raises_and_every_kept_line_reproduces_its_origin(
    lines: list[str], query: str
) -> None:
    text = "\n".join(lines)
    first = COMPRESSOR.compress(text, Context(query=query))
    second = COMPRESSOR.compress(text, Context(query=query))
    assert first == second
    if first is None:
        return
    assert first.origin is not None
    source = text.split("\n")
    for line, origin in zip(first.lines, first.origin, strict=True):
        if origin is None:
            assert markers.is_marker(line)
            continue
        cleaned = ANSI.sub("", source[origin])
        assert line == cleaned or (
            line and cleaned.endswith(line) and "\r" in cleaned[: -len(line)]
        )


@pytest.mark.skipif(not CORPUS.is_dir(), reason="development corpus not present")
def test_corpus_logs_keep_every_needle() -> None:
    records = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))
    spaces = re.compile(r"\s+")
    for record in (r for r in records if r["kind"] == "log"):
        with (CORPUS / record["file"]).open(encoding="utf-8", newline="") as handle:
            text = handle.read()
        out = COMPRESSOR.compress(text, Context(query=record["question"]))
        flat = spaces.sub("", ANSI.sub("", text if out is None else out.text))
        missing = [n for n in record["needles"] if spaces.sub("", ANSI.sub("", n)) not in flat]
        assert not missing, (record["name"], missing[:3])
