"""The command line end to end, in subprocesses, as a user runs it."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CORPUS

pytestmark = pytest.mark.integration


def headroom(*args: str, stdin: str | None = None, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HEADROOM_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "headroom.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_compress_a_file_then_retrieve_its_original(headroom_home: Path) -> None:
    source = Path(argparse.__file__)
    done = headroom("compress", str(source), home=headroom_home)
    assert done.returncode == 0, done.stderr
    assert "class ArgumentParser" in done.stdout
    summary = done.stderr.strip().splitlines()[-1]
    assert summary.startswith("headroom: code compressed:") and "saved" in summary
    key = summary.rsplit("key ", 1)[1].rstrip(")")
    back = headroom("retrieve", key, home=headroom_home)
    assert back.stdout == source.read_text()
    part = headroom("retrieve", key, "--lines", "1-3", home=headroom_home)
    assert part.stdout.splitlines() == source.read_text().splitlines()[:3]


def test_compress_from_stdin_as_json(headroom_home: Path) -> None:
    log = (
        "\n".join(f"INFO worker {i} finished job {i * 7}" for i in range(400))
        + "\nERROR job 99 crashed\n"
    )
    done = headroom("compress", "-", "--kind", "log", "--json", stdin=log, home=headroom_home)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["kind"] == "log" and report["tokens_after"] < report["tokens_before"]
    assert "ERROR job 99 crashed" in report["output"]


def test_a_missing_file_is_one_line_and_a_non_zero_exit(headroom_home: Path) -> None:
    done = headroom("compress", "/nonexistent/file.log", home=headroom_home)
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_retrieve_of_an_unknown_key_says_so(headroom_home: Path) -> None:
    done = headroom("retrieve", "0123456789abcdef", home=headroom_home)
    assert done.returncode == 1
    assert "no original is stored under key" in done.stderr


def test_a_bad_line_range_is_a_clear_error(headroom_home: Path) -> None:
    done = headroom("compress", "-", "--kind", "log", stdin="INFO x 1\n" * 500, home=headroom_home)
    key = done.stderr.rsplit("key ", 1)[1].strip().rstrip(")")
    bad = headroom("retrieve", key, "--lines", "ten", home=headroom_home)
    assert bad.returncode == 1
    assert bad.stderr.startswith("headroom: error: lines='ten' is not a range")


def test_store_stats_and_purge(headroom_home: Path) -> None:
    headroom("compress", str(Path(argparse.__file__)), home=headroom_home)
    stats = headroom("store", "stats", home=headroom_home)
    assert stats.returncode == 0 and "keys: 1" in stats.stdout
    purged = headroom("store", "purge", "--all", home=headroom_home)
    assert purged.returncode == 0 and "removed" in purged.stdout


@pytest.mark.skipif(not CORPUS.exists(), reason="the shared corpus is not beside the repo")
def test_bench_prints_a_table_per_kind(headroom_home: Path, tmp_path: Path) -> None:
    records = json.loads((CORPUS / "manifest.json").read_text())
    small = [next(r for r in records if r["kind"] == kind) for kind in ("log", "search")]
    for record in small:
        (tmp_path / record["kind"]).mkdir()
        (tmp_path / record["file"]).write_bytes((CORPUS / record["file"]).read_bytes())
    (tmp_path / "manifest.json").write_text(json.dumps(small))
    done = headroom("bench", str(tmp_path), home=headroom_home)
    assert done.returncode == 0, done.stderr
    assert "| all kinds | 2 |" in done.stdout
    assert "`import headroom`" in done.stdout


def test_non_utf8_bytes_round_trip_through_compress_and_retrieve(
    headroom_home: Path, tmp_path: Path
) -> None:
    lines = [b"INFO worker %d done \xff\xfe job" % i for i in range(500)]
    data = b"\n".join([*lines, b"ERROR job 7 crashed \x00 here"]) + b"\n"
    source = tmp_path / "binary.log"
    source.write_bytes(data)
    env = {**os.environ, "HEADROOM_HOME": str(headroom_home)}
    done = subprocess.run(
        [sys.executable, "-m", "headroom.cli", "compress", str(source)],
        capture_output=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert b"ERROR job 7 crashed \x00 here" in done.stdout
    key = done.stderr.decode().rsplit("key ", 1)[1].strip().rstrip(")")
    back = subprocess.run(
        [sys.executable, "-m", "headroom.cli", "retrieve", key],
        capture_output=True, env=env, timeout=120,
    )  # fmt: skip
    assert back.stdout == data


def test_retrieve_writes_the_original_bytes_under_a_strict_utf8_stdout(
    headroom_home: Path, tmp_path: Path
) -> None:
    data = "".join(f"INFO caf\xe9 order {i} served\n" for i in range(400)).encode("latin-1")
    source = tmp_path / "latin1.log"
    source.write_bytes(data)
    env = {**os.environ, "HEADROOM_HOME": str(headroom_home), "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run(
        [sys.executable, "-m", "headroom.cli", "compress", str(source)],
        capture_output=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    key = done.stderr.decode().rsplit("key ", 1)[1].strip().rstrip(")")
    back = subprocess.run(
        [sys.executable, "-m", "headroom.cli", "retrieve", key],
        capture_output=True, env=env, timeout=120,
    )  # fmt: skip
    assert back.returncode == 0, back.stderr
    assert back.stdout == data
