"""Exact, offline token counts.

Counts use tiktoken over the BPE files that the `bpe-openai` wheel ships, so nothing is
downloaded. OpenAI models map to their own encoding; Claude models and unknown models are
counted with o200k_base, which only estimates Claude's own tokenizer (Anthropic does not
publish it). Encodings load lazily (about half a second) and are cached.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.util
import threading
from pathlib import Path
from typing import Any

from headroom.errors import ConfigError

_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada")
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")
_lock = threading.Lock()
_encodings: dict[str, Any] = {}


def encoding_name(model: str | None) -> str:
    """The encoding used to count tokens for a model (o200k_base when unknown)."""
    name = (model or "").lower()
    if name.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if name.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return "o200k_base"


# The two encodings as tiktoken publishes them: split pattern, special tokens, and the
# SHA-256 of the BPE rank file, which is read from the bpe-openai wheel's data folder.
_SPECS: dict[str, tuple[str, dict[str, int], str]] = {
    "o200k_base": (
        "|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "cl100k_base": (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}


def _encoding(name: str) -> Any:
    found = _encodings.get(name)
    if found is None:
        # Loaded once under the lock: threads that missed together wait for the first load.
        with _lock:
            found = _encodings.get(name)
            if found is None:
                found = _encodings[name] = _load(name)
    return found


def _load(name: str) -> Any:
    import tiktoken

    pattern, special_tokens, expected = _SPECS[name]
    return tiktoken.Encoding(
        name=name, pat_str=pattern, mergeable_ranks=_ranks(name, expected),
        special_tokens=special_tokens,
    )  # fmt: skip


def _ranks(name: str, expected_sha256: str) -> dict[bytes, int]:
    """The BPE ranks from the bpe-openai wheel, found without importing it (its import
    loads every encoding it has)."""
    spec = importlib.util.find_spec("bpe_openai")
    folder = next(iter(spec.submodule_search_locations or []), None) if spec else None
    if folder is None:
        raise ConfigError(
            "the bpe-openai package is missing; reinstall headroom: pip install headroom"
        )
    data = gzip.decompress((Path(folder) / "data" / f"{name}.tiktoken.gz").read_bytes())
    if hashlib.sha256(data).hexdigest() != expected_sha256:
        raise ConfigError(f"the {name} BPE file in bpe-openai does not match its published hash")
    return {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in data.splitlines() if line)
    }


def count(text: str, model: str | None = None) -> int:
    """The number of tokens in text for a model; special-token text counts as plain text."""
    if not text:
        return 0
    encoding = _encoding(encoding_name(model))
    try:
        return len(encoding.encode_ordinary(text))
    except UnicodeEncodeError:
        # Lone surrogates (from JSON escapes) cannot be encoded; count their replacement.
        return len(encoding.encode_ordinary(text.encode("utf-8", "replace").decode("utf-8")))


def at_least(text: str, tokens: int, model: str | None = None) -> bool:
    """Whether text has at least `tokens` tokens, counting no more of it than needed: a
    head of 6 characters a token first (most text runs 3 to 5), then of 16, then all."""
    if len(text) < tokens:
        return False  # a token is never shorter than one character
    for chars in (6, 16):
        head = text[: tokens * chars]
        if count(head, model) >= tokens:
            return True
        if len(head) == len(text):
            return False
    return count(text, model) >= tokens
