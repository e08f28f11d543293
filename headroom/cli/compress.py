"""`headroom compress` and `headroom retrieve`: the core from a shell."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from headroom import tokens
from headroom.api import retrieve, store_for
from headroom.compressors import BUILTINS
from headroom.config import Settings
from headroom.pipeline import Request, compress_payload
from headroom.router import Hints


@click.command("compress")
@click.argument("source", default="-", type=click.Path(allow_dash=True, dir_okay=False))
@click.option(
    "--kind", type=click.Choice(BUILTINS), help="Skip the router: treat the input as this kind."
)
@click.option("--query", default="", help="The question the output should serve.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of the text.")
def compress_command(source: str, kind: str | None, query: str, as_json: bool) -> None:
    """Compress FILE (or standard input): the result on stdout, a summary on stderr."""
    text = _read(source)
    settings = Settings.from_env()
    path = None if source == "-" else source
    transform = compress_payload(
        Request(text, Hints(path=path), query, kind=kind), store_for(settings), settings
    )
    before, after = tokens.count(text), tokens.count(transform.output)
    status = transform.skipped or f"{transform.kind} compressed"
    if as_json:
        click.echo(
            json.dumps(
                {
                    "output": transform.output,
                    "kind": transform.kind,
                    "language": transform.language,
                    "keys": list(transform.keys),
                    "skipped": transform.skipped,
                    "error": transform.error,
                    "tokens_before": before,
                    "tokens_after": after,
                },
                ensure_ascii=True,
            )
        )
    else:
        _write(transform.output if transform.output.endswith("\n") else transform.output + "\n")
    saved = 100 * (1 - after / before) if before else 0.0
    key = f", key {transform.keys[0]}" if transform.keys else ""
    click.echo(
        f"headroom: {status}: {before:,} -> {after:,} tokens ({saved:.0f}% saved{key})", err=True
    )


@click.command("retrieve")
@click.argument("key")
@click.option("--lines", help="Only lines A-B of the original (1-based, inclusive).")
@click.option("--grep", help="Only the lines matching this regular expression, numbered.")
def retrieve_command(key: str, lines: str | None, grep: str | None) -> None:
    """Print the original behind KEY (or the slice asked for)."""
    text = retrieve(key, lines=lines, grep=grep)
    if text is None:
        raise click.ClickException(
            f"no original is stored under key {key!r}; check the key in the marker "
            "(16 hex characters) and that HEADROOM_STORE points at the same store"
        )
    # A whole original is printed byte for byte; a slice is a list of lines, each ended.
    _write(text + "\n" if lines or grep else text)


def _write(text: str) -> None:
    """Text to stdout as the bytes it came from: input decoded with surrogateescape keeps
    its undecodable bytes, whatever the terminal's encoding."""
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape, not from a file's bytes
        data = text.encode("utf-8", "surrogatepass")
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _read(source: str) -> str:
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        raise click.ClickException(f"cannot read {source}: {exc.strerror}") from None
    return data.decode("utf-8", errors="surrogateescape")
