"""`headroom bench`: the corpus benchmark, as a table or JSON."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from headroom.bench import corpus
from headroom.bench import proxy as proxy_bench
from headroom.bench import sessions as session_bench


@click.command()
@click.argument(
    "corpus_dir",
    default="../shared/corpus",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--sessions", is_flag=True, help="Replay multi-turn sessions and report the cache bill."
)
@click.option(
    "--proxy", is_flag=True,
    help="Time the payloads through `headroom proxy` against a fake upstream, and faults.",
)  # fmt: skip
def bench(corpus_dir: Path, as_json: bool, sessions: bool, proxy: bool) -> None:
    """Compress every payload of CORPUS_DIR and report savings, needles and speed."""
    if sessions:
        _sessions(corpus_dir, as_json)
        return
    if proxy:
        _proxy(corpus_dir, as_json)
        return

    def progress(records: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        items = list(records)
        with click.progressbar(items, label="compressing", file=sys.stderr) as bar:
            yield from bar

    results = corpus.run(corpus_dir, progress)
    rows = corpus.summarize(results)
    import_time = corpus.import_ms()
    if as_json:
        click.echo(corpus.as_json(results, rows, import_time))
        return
    click.echo(corpus.table(rows, import_time))
    click.echo(corpus.extremes(results))


def _sessions(corpus_dir: Path, as_json: bool) -> None:
    def progress(items: list[session_bench.Session]) -> Iterator[session_bench.Session]:
        with click.progressbar(items, label="replaying", file=sys.stderr) as bar:
            yield from bar

    with tempfile.TemporaryDirectory(prefix="headroom-sessions-") as home:
        results = session_bench.run(corpus_dir, Path(home), progress)
    if as_json:
        click.echo(json.dumps([asdict(r) for r in results], indent=1))
    else:
        click.echo(session_bench.table(results))


def _proxy(corpus_dir: Path, as_json: bool) -> None:
    def progress(steps: list[Any]) -> Iterator[Any]:
        with click.progressbar(steps, label="timing requests", file=sys.stderr) as bar:
            yield from bar

    result = proxy_bench.run(corpus_dir, progress=progress)
    click.echo(proxy_bench.as_json(result) if as_json else proxy_bench.table(result))
