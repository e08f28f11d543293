"""The corpus benchmark: every payload of a corpus through `compress`, measured.

A corpus is a folder with a `manifest.json` (kind, file, question, needles per payload;
the format of the team's shared corpus). Each payload is wrapped as a tool result after its
question and compressed with a fresh SQLite store, as a user's first call would be. Per
kind and overall it reports tokens saved, needles kept verbatim (whitespace-insensitive,
ANSI colour codes removed), needles recoverable through the keys the output names, exact
round trips, time per payload (median of three runs) and throughput.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from headroom import markers, tokens
from headroom.api import compress, retrieve
from headroom.config import Settings
from headroom.errors import ConfigError

RUNS = 3
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_SPACE = re.compile(r"\s+")


@dataclass
class PayloadResult:
    kind: str
    name: str
    chars: int
    tokens_before: int
    tokens_after: int
    needles: int
    kept: int
    recoverable: int
    round_trip: bool
    ms: float
    compressor: str


@dataclass
class KindSummary:
    kind: str
    payloads: int
    tokens_before: int
    tokens_after: int
    saved_pct: float
    kept_pct: float
    recoverable_pct: float
    round_trips: int
    median_ms: float
    p95_ms: float
    mb_per_s: float


def load_manifest(corpus: Path) -> list[dict[str, Any]]:
    """The corpus's records, checked for the fields the benchmark reads."""
    path = corpus / "manifest.json"
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read {path}: {exc}; a corpus is a folder with a manifest.json"
        ) from None
    for record in records:
        if not {"kind", "file", "needles"} <= record.keys():
            raise ConfigError(f"{path}: a record lacks kind, file or needles: {str(record)[:80]}")
    return list(records)


def run(
    corpus: Path,
    progress: Callable[[Iterator[dict[str, Any]]], Iterator[dict[str, Any]]] | None = None,
) -> list[PayloadResult]:
    """Measure every payload of the corpus."""
    records = load_manifest(corpus)
    with tempfile.TemporaryDirectory(prefix="headroom-bench-") as home:
        settings = Settings(store=f"sqlite:///{Path(home) / 'bench.db'}")
        items = progress(iter(records)) if progress else iter(records)
        return [_measure(corpus, record, settings) for record in items]


def _messages(question: str, text: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": question},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_bench", "name": "tool", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_bench", "content": text}],
        },
    ]


def _measure(corpus: Path, record: dict[str, Any], settings: Settings) -> PayloadResult:
    with (corpus / record["file"]).open(encoding="utf-8", newline="") as handle:
        text = handle.read()
    messages = _messages(record.get("question", ""), text)
    timings = []
    for run in range(RUNS):
        # A session of its own per run, so each run compresses afresh instead of replaying.
        session = f"bench-{record['file']}-{run}"
        start = time.perf_counter()
        result = compress(messages, config=settings, session=session)
        timings.append((time.perf_counter() - start) * 1000)
    transform = result.transforms[0]
    output = transform.output
    keys = markers.keys_in(output)
    originals = [retrieve(key, config=settings) or "" for key in keys]
    recovered = "\n".join(originals)
    round_trip = transform.skipped is not None or (bool(keys) and originals[0] == text)
    flat_output, flat_recovered = _flat(output), _flat(recovered)
    needles = [_flat(needle) for needle in record["needles"]]
    kept = sum(1 for needle in needles if needle in flat_output)
    recoverable = sum(1 for needle in needles if needle in flat_output or needle in flat_recovered)
    return PayloadResult(
        kind=record["kind"],
        name=record.get("name", record["file"]),
        chars=len(text),
        tokens_before=tokens.count(text),
        tokens_after=tokens.count(output),
        needles=len(needles),
        kept=kept,
        recoverable=recoverable,
        round_trip=round_trip,
        ms=statistics.median(timings),
        compressor=transform.kind if transform.skipped is None else f"- ({transform.skipped})",
    )


def _flat(text: str) -> str:
    return _SPACE.sub("", _ANSI.sub("", text))


def summarize(results: list[PayloadResult]) -> list[KindSummary]:
    """One row per kind, then "all kinds" (token-weighted over every payload)."""
    kinds = sorted({r.kind for r in results})
    rows = [_summary(kind, [r for r in results if r.kind == kind]) for kind in kinds]
    return [*rows, _summary("all kinds", results)]


def _summary(kind: str, results: list[PayloadResult]) -> KindSummary:
    before = sum(r.tokens_before for r in results)
    after = sum(r.tokens_after for r in results)
    needles = sum(r.needles for r in results) or 1
    times = sorted(r.ms for r in results)
    seconds = sum(times) / 1000 or 1e-9
    return KindSummary(
        kind=kind,
        payloads=len(results),
        tokens_before=before,
        tokens_after=after,
        saved_pct=100 * (1 - after / before) if before else 0.0,
        kept_pct=100 * sum(r.kept for r in results) / needles,
        recoverable_pct=100 * sum(r.recoverable for r in results) / needles,
        round_trips=sum(r.round_trip for r in results),
        median_ms=statistics.median(times),
        p95_ms=_percentile(times, 95),
        mb_per_s=sum(r.chars for r in results) / 1e6 / seconds,
    )


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def import_ms() -> float:
    """`import headroom` in a fresh interpreter, median of three, in milliseconds."""
    code = "import time; t = time.perf_counter(); import headroom; print((time.perf_counter() - t) * 1000)"
    samples = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(3)
    ]
    return statistics.median(samples)


def extremes(results: list[PayloadResult]) -> str:
    """The two speed targets that are not per kind: p95 up to 256 KB, MB/s on the largest."""
    small = sorted(r.ms for r in results if r.chars <= 256_000)
    largest = max(results, key=lambda r: r.chars)
    p95 = f"{_percentile(small, 95):.1f} ms" if small else "n/a"
    speed = largest.chars / 1e6 / (largest.ms / 1000 or 1e-9)
    return (
        f"p95 for payloads <= 256 KB: {p95}; largest payload ({largest.name}, "
        f"{largest.chars / 1e6:.2f} MB): {largest.ms:.1f} ms, {speed:.1f} MB/s"
    )


def table(rows: list[KindSummary], import_time: float) -> str:
    """The benchmark as a Markdown table."""
    lines = [
        "| kind | payloads | tokens before | tokens after | saved % | needles kept % | recoverable % | round trips | median ms | p95 ms | MB/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.kind} | {r.payloads} | {r.tokens_before:,} | {r.tokens_after:,} | {r.saved_pct:.1f} | "
            f"{r.kept_pct:.1f} | {r.recoverable_pct:.1f} | {r.round_trips}/{r.payloads} | "
            f"{r.median_ms:.1f} | {r.p95_ms:.1f} | {r.mb_per_s:.1f} |"
        )
    lines.append(f"\n`import headroom`: {import_time:.0f} ms")
    return "\n".join(lines)


def as_json(results: list[PayloadResult], rows: list[KindSummary], import_time: float) -> str:
    return json.dumps(
        {
            "kinds": [asdict(r) for r in rows],
            "payloads": [asdict(r) for r in results],
            "import_ms": import_time,
        },
        indent=1,
    )
