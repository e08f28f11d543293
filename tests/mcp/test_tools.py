"""The MCP tools called in process, for what needs a store set up to fail: compression fails
open to the original; and the small rules of arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from headroom import mcp_fetch
from headroom.config import Settings
from headroom.mcp_server import Reply, call
from headroom.store import MemoryStore

LOG = "\n".join(f"INFO worker {n} finished job {n * 7} in {n % 13} ms" for n in range(2000))


def test_a_store_that_fails_leaves_the_content_whole_not_an_error() -> None:
    store = MemoryStore()
    store.close()  # every put now raises StoreError
    reply = call("headroom_compress", {"content": LOG, "kind": "log"}, store, Settings())
    assert reply == Reply(LOG)


def test_the_same_content_compresses_to_the_same_bytes() -> None:
    first = call("headroom_compress", {"content": LOG}, MemoryStore(), Settings())
    again = call("headroom_compress", {"content": LOG}, MemoryStore(), Settings())
    assert first == again and len(first.text) < len(LOG) // 10


def test_a_null_optional_argument_counts_as_absent(tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("one\ntwo\nthree\n")
    arguments = {"path": str(source), "lines": None}
    reply = call("headroom_read", arguments, MemoryStore(), Settings())
    assert reply == Reply("     1→one\n     2→two\n     3→three")


def test_an_empty_file_reads_as_empty(tmp_path: Path) -> None:
    (tmp_path / "empty.py").write_text("")
    reply = call("headroom_read", {"path": str(tmp_path / "empty.py")}, MemoryStore(), Settings())
    assert reply == Reply(f"{tmp_path / 'empty.py'} is empty")


def test_output_past_the_cap_is_cut_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mcp_fetch, "MAX_BYTES", 1000)
    reply = call("headroom_run", {"command": "seq 1 100000"}, MemoryStore(), Settings())
    assert not reply.error
    assert "588,895 bytes" in reply.text and "first 1,000" in reply.text
    assert reply.text.endswith("[exit code 0]")
