"""One payload's way through the core: route -> compressor -> store -> markers.

`compress_payload` is the only caller of compressors. It applies the rules that hold for
every kind: small payloads and files likely to be edited stay whole, a compressor's
failure returns the original (fail open) and is recorded, output is never larger than its
input, and the whole original goes to the store with its key named in a header line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from headroom import markers, numbered, tokens
from headroom.compressors import Compressed, Context, get
from headroom.config import Settings
from headroom.router import Hints, Route, route
from headroom.store.base import Store

_PLACEHOLDER_KEY = "0" * 16


@dataclass(frozen=True)
class Transform:
    """What happened to one payload: which compressor, tokens in and out, or why not."""

    location: tuple[int, ...]
    kind: str
    language: str | None = None
    keys: tuple[str, ...] = ()
    """Store keys the output names; the first is the whole original's."""
    skipped: str | None = None
    """Why the payload was left alone; None when it was compressed."""
    error: str | None = None
    """A compressor failure that was caught (the original was kept)."""
    model: str | None = None
    original: str = field(default="", repr=False)
    output: str = field(default="", repr=False)
    replayed: bool = False
    """The decision was taken on an earlier turn and replayed, not taken now."""
    counted_in: int | None = field(default=None, repr=False, compare=False)
    """`tokens_in`, when the pipeline counted it already (its size check): not counted twice."""

    @cached_property
    def tokens_in(self) -> int:
        if self.counted_in is not None:
            return self.counted_in
        return tokens.count(self.original, self.model)

    @cached_property
    def tokens_out(self) -> int:
        return tokens.count(self.output, self.model)


@dataclass(frozen=True, slots=True)
class Request:
    """One payload and what is known about it."""

    text: str
    hints: Hints = field(default_factory=Hints)
    query: str = ""
    location: tuple[int, ...] = ()
    ranged_read: bool = False
    edited: bool = False
    kind: str | None = None
    """A kind the caller insists on (the router still finds a language for code)."""


def compress_payload(
    request: Request, store: Store, settings: Settings, model: str | None = None
) -> Transform:
    """Compress one payload; the result's `output` is what to send instead of its text."""
    text = request.text

    def leave(
        kind: str, reason: str, chosen: Route | None = None, error: str | None = None
    ) -> Transform:
        language = chosen.language if chosen else None
        return Transform(request.location, kind, language, (), reason, error, model, text, text)

    if not tokens.at_least(text, settings.min_tokens, model):
        return leave("unknown", f"under min_tokens ({settings.min_tokens})")
    if markers.header_key(text):
        # Forwarding an output that names keys is a use of them: keep them alive.
        store.touch(markers.keys_in(text))
        return leave("unknown", "already compressed")
    read = numbered.split(text)
    body = read.body if read else text
    chosen = route(body, request.hints)
    if request.kind and request.kind != chosen.kind:
        chosen = Route(request.kind, chosen.language)
    reason = _keep_whole(request, read is not None, chosen, body, settings, model)
    if reason:
        return leave(chosen.kind, reason, chosen)
    compressor = get(chosen.kind)
    if compressor is None:
        return leave(chosen.kind, "no compressor for this kind", chosen)
    context = Context(query=request.query, language=chosen.language, stash=store.put)
    try:
        result = compressor.compress(body, context)
        rendered = None if result is None else _render(result, read)
    except Exception as exc:  # fail open: the original goes through, the failure is recorded
        return leave(chosen.kind, "compressor failed", chosen, f"{type(exc).__name__}: {exc}")
    if rendered is None:
        return leave(chosen.kind, "compressor found nothing to drop", chosen)
    if len(rendered) >= len(text):
        return leave(chosen.kind, "output would not be smaller", chosen)
    header = markers.header(_PLACEHOLDER_KEY, chosen.kind, text.count("\n") + 1)
    # Characters are a cheap proxy; count tokens only when the gain is small enough to doubt.
    # The check runs before the original is stored, so a refused output leaves nothing behind.
    draft = header + "\n" + rendered
    if len(draft) >= len(text):
        return leave(chosen.kind, "output would not be smaller", chosen)
    counted_in = None
    if len(draft) * 10 > len(text) * 7:
        counted_in = tokens.count(text, model)
        if tokens.count(draft, model) >= counted_in:
            return leave(chosen.kind, "output would not be smaller", chosen)
    key = store.put(text)
    output = header.replace(_PLACEHOLDER_KEY, key, 1) + "\n" + rendered
    if len(output) >= len(text):  # a longer key, on a hash collision, can tip the balance
        return leave(chosen.kind, "output would not be smaller", chosen)
    keys = (key, *(k for k in markers.keys_in(rendered) if k != key))
    return Transform(
        request.location, chosen.kind, chosen.language, keys, None, None, model, text, output,
        counted_in=counted_in,
    )  # fmt: skip


def _keep_whole(
    request: Request,
    numbered_read: bool,
    chosen: Route,
    body: str,
    settings: Settings,
    model: str | None,
) -> str | None:
    """Why a file read stays whole, if it does: the agent is likely to edit what it reads."""
    if numbered_read and request.ranged_read:
        return "read of an explicit line range"
    if request.edited:
        return "read of a file the session edited"
    limit = settings.read_whole_below_tokens
    if numbered_read and chosen.kind == "code" and not tokens.at_least(body, limit, model):
        return f"source file under {limit} tokens"
    return None


def _render(result: Compressed, read: numbered.NumberedRead | None) -> str:
    if read is None:
        return result.text
    if result.origin is None:
        return result.text + read.rest
    return numbered.join(read, result.lines, result.origin)
