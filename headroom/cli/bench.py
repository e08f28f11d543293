"""`headroom bench`: the corpus benchmark, as a table or JSON."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from headroom.bench import corpus


@click.command()
@click.argument(
    "corpus_dir",
    default="../shared/corpus",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def bench(corpus_dir: Path, as_json: bool) -> None:
    """Compress every payload of CORPUS_DIR and report savings, needles and speed."""

    def progress(records: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        items = list(records)
        with click.progressbar(
            items, label="compressing", file=click.get_text_stream("stderr")
        ) as bar:
            yield from bar

    results = corpus.run(corpus_dir, progress)
    rows = corpus.summarize(results)
    import_time = corpus.import_ms()
    if as_json:
        click.echo(corpus.as_json(results, rows, import_time))
        return
    click.echo(corpus.table(rows, import_time))
    click.echo(corpus.extremes(results))
