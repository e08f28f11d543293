"""Rules that hold for every payload: fail open, never larger, deterministic, reversible."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headroom.compressors import Compressed, Context
from headroom.compressors import base as registry
from headroom.config import Settings
from headroom.pipeline import Request, compress_payload
from headroom.router import Hints
from headroom.store import open_store
from headroom.store.memory import MemoryStore

SETTINGS = Settings(min_tokens=20)
STORE = open_store("memory://")


def numbered_read(lines: list[str]) -> str:
    return "\n".join(f"{n:>6}→{line}" for n, line in enumerate(lines, 1))


class Exploding:
    kind = "exploding"

    def compress(self, text: str, ctx: Context) -> Compressed | None:
        raise RuntimeError("boom")


def test_a_failing_compressor_forwards_the_original_and_records_why() -> None:
    if registry.get("exploding") is None:
        registry.register(Exploding())
    text = "line of text that is long enough\n" * 50
    transform = compress_payload(Request(text, kind="exploding"), STORE, SETTINGS)
    assert transform.output == text
    assert transform.skipped == "compressor failed"
    assert transform.error == "RuntimeError: boom"


def test_a_numbered_read_of_a_large_file_keeps_number_prefixes() -> None:
    source = Path(json.__file__).parent / "decoder.py"
    lines = source.read_text().split("\n") * 3
    text = numbered_read(lines)
    transform = compress_payload(Request(text, Hints(path=str(source))), STORE, Settings())
    assert transform.skipped is None
    body = transform.output.split("\n")[1:]
    for line in body:
        if not line.lstrip().startswith("[..."):
            number, _, content = line.partition("→")
            assert lines[int(number) - 1] == content


def test_a_small_source_file_read_stays_whole() -> None:
    text = numbered_read(["def f():", "    return 1"] * 200)
    transform = compress_payload(Request(text, Hints(path="f.py")), STORE, Settings())
    assert transform.skipped == "source file under 3000 tokens"


def test_a_ranged_read_stays_whole() -> None:
    text = numbered_read([f"value_{i} = {i}" for i in range(2000)])
    transform = compress_payload(
        Request(text, Hints(path="v.py"), ranged_read=True), STORE, Settings()
    )
    assert transform.skipped == "read of an explicit line range"


payload_text = st.one_of(
    st.text(min_size=0, max_size=3000),
    st.lists(st.sampled_from([
        "INFO request handled in 12ms", "ERROR failed to open /tmp/x: 404", "WARN slow",
        "src/a.py:12:    return foo", "{\"id\": 1, \"ok\": true}", "<div><p>hello</p></div>",
        "+added line", "-removed line", "@@ -1,3 +1,3 @@", "def f(x):", "    return x",
        "\x1b[31mred\x1b[0m", "\x00", "\ud800", "",
    ]), min_size=0, max_size=400).map("\n".join),
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=payload_text,
    kind=st.sampled_from([None, "log", "json", "code", "search", "diff", "html", "prose"]),
)
def test_any_text_through_any_compressor_obeys_the_rules(text: str, kind: str | None) -> None:
    first = compress_payload(Request(text, kind=kind), STORE, SETTINGS)
    second = compress_payload(Request(text, kind=kind), STORE, SETTINGS)
    assert first.output == second.output
    assert len(first.output) <= len(text)
    assert first.error is None, first.error
    if first.skipped is None:
        assert first.keys and STORE.get(first.keys[0]) == text
        assert first.tokens_out < first.tokens_in
    else:
        assert first.output == text


def test_forwarding_a_compressed_output_refreshes_its_keys() -> None:
    now = [1_000_000.0]
    store = MemoryStore(ttl=100, clock=lambda: now[0])
    text = "\n".join(f"INFO worker {i} finished job {i * 7}" for i in range(400))
    first = compress_payload(Request(text), store, SETTINGS)
    assert first.skipped is None
    now[0] += 90
    again = compress_payload(Request(first.output), store, SETTINGS)
    assert again.skipped == "already compressed"
    now[0] += 90  # 180 s after the put, but only 90 s after the forward
    assert store.get(first.keys[0]) == text


def test_json_nested_ten_thousand_deep_passes_through() -> None:
    text = "[" * 10_000 + "]" * 10_000
    transform = compress_payload(Request(text), STORE, SETTINGS)
    assert transform.error is None
    assert transform.output == text or STORE.get(transform.keys[0]) == text


def test_a_fifty_megabyte_log_is_compressed_and_round_trips() -> None:
    block = "".join(f"INFO request {i} served in {i % 97} ms\n" for i in range(1000))
    text = block * 1600 + "ERROR disk /dev/sda1 full\n"
    assert len(text) > 50_000_000
    transform = compress_payload(Request(text), STORE, SETTINGS)
    assert transform.skipped is None
    assert "ERROR disk /dev/sda1 full" in transform.output
    assert STORE.get(transform.keys[0]) == text


def test_empty_and_nul_payloads_pass_through() -> None:
    for text in ("", "\x00" * 5000):
        transform = compress_payload(Request(text), STORE, SETTINGS)
        assert transform.error is None
        assert transform.output == text or STORE.get(transform.keys[0]) == text
