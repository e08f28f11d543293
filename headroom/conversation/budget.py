"""The context budget: when a request would not fit, stub the least valuable old tool results.

Under budget nothing changes. Over budget, old tool results are replaced by one-line stubs
in a single batch that frees at least `clear_at_least` tokens (a fifth of the budget unless
given), so the cache rewrite that any change to old messages causes is paid once, not every
turn. A tool result's value is its recency, its BM25 relevance to the latest user message
(over the candidate results as the corpus) and whether it carries errors; the lowest value
goes first, ties broken by position (older first).

Never touched: system and developer messages, the first user message, and the last
`keep_last_turns` turns with everything after the first of them. A turn is what the client
adds on its side per request: a user message, or a run of consecutive user and tool messages.
A stub replaces only a tool result's content, so every `tool_use` keeps its `tool_result`
(no orphan); `tool_use` blocks, images and every other field stay as they were. The
original text goes to the store and the stub names its key in the marker format, so it can
be retrieved exactly: a string content as it was, a list of text blocks joined by newlines.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from headroom import markers, tokens
from headroom.errors import ConfigError

Shape = Literal["anthropic", "openai"]

CLEAR_FRACTION = 0.2
"""The default batch: a fifth of the budget, like the API's `clear_at_least`."""
K1 = 1.2
B = 0.75
RECENCY_WEIGHT = 1.0
"""Recency is the candidate's rank from oldest (0) to newest (nearly 1)."""
RELEVANCE_WEIGHT = 2.0
"""Relevance is BM25 divided by the best candidate's, so the best match outranks recency."""
ERROR_WEIGHT = 1.0
"""A result with error lines is worth more than any error-free one of equal relevance."""

CONTEXT_WINDOWS = (
    ("claude", 200_000),
    ("gpt-4.1", 1_047_576),
    ("gpt-5", 400_000),
    ("gpt-4o", 128_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4", 200_000),
    ("gpt-4-turbo", 128_000),
    ("gpt-4", 8_192),
    ("gpt-3.5", 16_385),
)
"""Context windows in tokens by model-name prefix, most specific first."""
DEFAULT_WINDOW = 128_000


def context_window(model: str | None) -> int:
    """The model's context window in tokens (DEFAULT_WINDOW for a model not listed)."""
    name = (model or "").lower()
    return next(
        (size for prefix, size in CONTEXT_WINDOWS if name.startswith(prefix)), DEFAULT_WINDOW
    )


_PROTECTED_ROLES = ("system", "developer")
_CLIENT_ROLES = ("user", "tool", "function")
_WORD = re.compile(r"[a-z0-9]{2,}")
_ERROR = re.compile(r"(?:error|exception)s?\b|\btraceback\b|\bfailed\b|\bfatal\b", re.I)
_PLACEHOLDER_KEY = "0" * 16


class Stub(NamedTuple):
    """One stubbed tool result."""

    message: int
    block: int
    """The tool_result block's index, or -1 for an OpenAI tool message's own content."""
    key: str
    tokens: int
    """Tokens of the original text."""


@dataclass(frozen=True, slots=True)
class Trim:
    """The messages to forward and what was stubbed in them."""

    messages: list[dict[str, Any]]
    """The caller's list itself when nothing was stubbed; else a new list sharing every
    unchanged message."""
    stubbed: list[Stub]
    freed: int
    """Tokens of the originals minus tokens of their stubs."""


@dataclass(frozen=True, slots=True)
class _Candidate:
    message: int
    block: int
    text: str
    errors: int


def trim_to_budget(
    messages: list[dict[str, Any]],
    *,
    shape: Shape,
    budget: int,
    estimate: int,
    store_put: Callable[[str], str],
    query: str,
    keep_last_turns: int = 4,
    clear_at_least: int | None = None,
) -> Trim:
    """Stub the lowest-value old tool results when `estimate` (the request's input tokens:
    the provider's count for the previous turn plus an estimate of the new part) is over
    `budget`, freeing at least max(estimate - budget, clear_at_least) tokens when the
    unprotected tool results hold that many."""
    batch = _check(shape, budget, estimate, keep_last_turns, clear_at_least)
    if estimate <= budget:
        return Trim(messages=messages, stubbed=[], freed=0)
    need = max(estimate - budget, batch)
    candidates = _candidates(messages, shape, _protected_from(messages, keep_last_turns))
    values = _values(candidates, query)
    ranked = sorted(range(len(candidates)), key=lambda i: (values[i], i))
    result = list(messages)
    stubbed: list[Stub] = []
    freed = 0
    for index in ranked:
        if freed >= need:
            break
        candidate = candidates[index]
        original = tokens.count(candidate.text)
        if original <= tokens.count(_stub_text(original, candidate.errors, _PLACEHOLDER_KEY)):
            continue
        key = store_put(candidate.text)
        stub = _stub_text(original, candidate.errors, key)
        result[candidate.message] = _replaced(result[candidate.message], candidate.block, stub)
        stubbed.append(Stub(candidate.message, candidate.block, key, original))
        freed += original - tokens.count(stub)
    if not stubbed:
        return Trim(messages=messages, stubbed=[], freed=0)
    return Trim(messages=result, stubbed=sorted(stubbed), freed=freed)


def _check(
    shape: str, budget: int, estimate: int, keep_last_turns: int, clear_at_least: int | None
) -> int:
    """Reject unusable arguments; return the batch size."""
    if shape not in ("anthropic", "openai"):
        raise ConfigError(f"shape is {shape!r}; pass 'anthropic' or 'openai'")
    if budget <= 0:
        raise ConfigError(
            f"budget is {budget} tokens; set a positive number, such as the model's "
            "context window minus a reserve for the reply"
        )
    if estimate < 0:
        raise ConfigError(f"estimate is {estimate} tokens; pass the request's input tokens (>= 0)")
    if keep_last_turns < 0:
        raise ConfigError(f"keep_last_turns is {keep_last_turns}; pass 0 or more turns")
    if clear_at_least is not None and clear_at_least < 0:
        raise ConfigError(f"clear_at_least is {clear_at_least} tokens; pass 0 or more")
    return int(budget * CLEAR_FRACTION) if clear_at_least is None else clear_at_least


def _protected_from(messages: Sequence[dict[str, Any]], keep_last_turns: int) -> int:
    """The index from which every message belongs to the last `keep_last_turns` turns."""
    starts = [
        index
        for index, message in enumerate(messages)
        if message.get("role") in _CLIENT_ROLES
        and (index == 0 or messages[index - 1].get("role") not in _CLIENT_ROLES)
    ]
    kept = starts[max(len(starts) - keep_last_turns, 0) :] if keep_last_turns else []
    return kept[0] if kept else len(messages)


def _candidates(messages: Sequence[dict[str, Any]], shape: str, end: int) -> list[_Candidate]:
    """Tool results before `end` outside the first user message, oldest first."""
    first_user = next((i for i, m in enumerate(messages) if m.get("role") == "user"), -1)
    found: list[_Candidate] = []
    for index, message in enumerate(messages[:end]):
        role = message.get("role")
        if index == first_user or role in _PROTECTED_ROLES:
            continue
        if shape == "openai" and role in ("tool", "function"):
            found += _candidate(index, -1, message.get("content"), flagged=False)
        content = message.get("content")
        if shape == "anthropic" and role == "user" and isinstance(content, list):
            for block_index, block in enumerate(content):
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    flagged = block.get("is_error") is True
                    found += _candidate(index, block_index, block.get("content"), flagged)
    return found


def _candidate(message: int, block: int, content: Any, flagged: bool) -> list[_Candidate]:
    """The tool result as a candidate, unless it has no text or is a stub already."""
    text = _text(content)
    if not text or markers.is_marker(text):
        return []
    errors = len([line for line in text.split("\n") if _ERROR.search(line)])
    return [_Candidate(message, block, text, max(errors, 1) if flagged else errors)]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    texts = [block.get("text") for block in content or [] if _is_text(block)]
    return "\n".join(text for text in texts if isinstance(text, str))


def _is_text(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "text"


def _values(candidates: Sequence[_Candidate], query: str) -> list[float]:
    """Each candidate's value: weighted recency, relevance to the query and errors."""
    scores = _bm25([_words(candidate.text) for candidate in candidates], _words(query))
    best = max(scores, default=0.0)
    count = len(candidates)
    return [
        RECENCY_WEIGHT * rank / count
        + RELEVANCE_WEIGHT * (score / best if best > 0 else 0.0)
        + ERROR_WEIGHT * (candidate.errors > 0)
        for rank, (candidate, score) in enumerate(zip(candidates, scores, strict=True))
    ]


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _bm25(documents: Sequence[list[str]], query: list[str]) -> list[float]:
    """Okapi BM25 of each document for the query, with the documents as the corpus."""
    if not documents:
        return []
    average = sum(len(words) for words in documents) / len(documents) or 1.0
    frequencies = [Counter(words) for words in documents]
    containing = Counter(word for frequency in frequencies for word in frequency)
    terms = list(dict.fromkeys(word for word in query if word in containing))
    idf = {
        term: math.log(1 + (len(documents) - containing[term] + 0.5) / (containing[term] + 0.5))
        for term in terms
    }
    scores = []
    for words, frequency in zip(documents, frequencies, strict=True):
        norm = K1 * (1 - B + B * len(words) / average)
        scores.append(
            sum(
                idf[term] * frequency[term] * (K1 + 1) / (frequency[term] + norm)
                for term in terms
                if frequency[term]
            )
        )
    return scores


def _stub_text(original_tokens: int, errors: int, key: str) -> str:
    detail = "to fit the context budget"
    if errors:
        detail += f", {errors} error line{'s' if errors != 1 else ''}"
    return markers.elided_part(original_tokens, "tokens of tool output", key, detail)


def _replaced(message: dict[str, Any], block: int, stub: str) -> dict[str, Any]:
    """A copy of the message with one tool result's content stubbed (copying only that path)."""
    changed = dict(message)
    if block == -1:
        changed["content"] = _stubbed(message["content"], stub)
        return changed
    content = list(message["content"])
    content[block] = {**content[block], "content": _stubbed(content[block]["content"], stub)}
    changed["content"] = content
    return changed


def _stubbed(content: Any, stub: str) -> Any:
    """The stub as a string, or in place of the text blocks with every other block kept."""
    if isinstance(content, str):
        return stub
    first = next(index for index, block in enumerate(content) if _is_text(block))
    return [
        {**block, "text": stub} if index == first else block
        for index, block in enumerate(content)
        if index == first or not _is_text(block)
    ]
