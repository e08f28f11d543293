"""One request body through the conversation layer, as an edge (the proxy) hands it over.

The body is an Anthropic Messages, OpenAI Chat Completions, OpenAI Responses (`input`) or
Gemini `generateContent` (`contents`) request as a dict. Tool definitions are normalised so
equal tools serialise to equal bytes (and a client's varying tool order is pinned to the
order first forwarded), the messages go through the live zone, volatile parts of the system
prompt are reported (moved to its end only when the setting asks), and an Anthropic request
without `cache_control` gets breakpoints at stable boundaries. The caller's body is never
changed; what is forwarded is a new body.

The context budget trims the chat shapes only; Responses and Gemini bodies get the live
zone, the frozen prefix and the ledger. Gemini's tools (`functionDeclarations` groups) are
forwarded as they came. A Responses request that continues a stored response
(`previous_response_id`) carries only its new items: they are compressed, and the prefix
tracker does not compare them with the last turn's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from headroom import messages_gemini, messages_responses, tokens
from headroom.config import Settings
from headroom.conversation import breakpoints, budget, prefix, stable, trims
from headroom.conversation.accounts import TokenMemo, count_messages, update_ledger
from headroom.conversation.ledger import EventKind, Ledger
from headroom.conversation.live_zone import Turn, compress_turn
from headroom.errors import InvalidMessagesError
from headroom.pipeline import Transform
from headroom.store.base import Store

PROVIDERS = ("anthropic", "openai", "openai-responses", "gemini")
_CONVERSATIONS = {
    "anthropic": "messages",
    "openai": "messages",
    "openai-responses": "input",
    "gemini": "contents",
}
"""The field of each provider's request body that holds the conversation."""
_BUDGETED = ("anthropic", "openai")


@dataclass(frozen=True)
class Prepared:
    """What to forward for one request, and what the layer saw on the way."""

    body: dict[str, Any]
    turn: Turn
    volatile: list[stable.Volatile]
    """Volatile spans of the system prompt (dates, ids, listings), reported every turn."""
    trim: budget.Trim | None
    """The budget trim made on this turn, if the request would not have fit."""
    provider: str
    """One of PROVIDERS: where the body keeps its conversation."""


def prepare(
    body: Mapping[str, Any],
    provider: str,
    store: Store,
    settings: Settings,
    session: str | None = None,
    *,
    previous_input_tokens: int | None = None,
    client_compacts: bool = False,
    deadline: float | None = None,
) -> Prepared:
    """The body to forward for one request of a session (named by the caller, or derived
    from the system prompt and the first user message).

    `previous_input_tokens` is the provider's input count for the session's previous turn,
    when known; `client_compacts` says the client manages its own context (Claude Code,
    Codex), which turns budget trimming off; past `deadline` (`time.monotonic()`), no payload
    is compressed for the first time (see `compress_turn`).
    """
    if provider not in PROVIDERS:
        raise InvalidMessagesError(f"provider {provider!r} is not one of {', '.join(PROVIDERS)}")
    messages = conversation(body, provider)
    system = _system(body, provider, messages)
    model = body.get("model")
    turn = compress_turn(
        messages, store, settings, model=model, session=session, system=system, deadline=deadline
    )  # validates the messages first
    name = turn.session
    forwarded = dict(body)
    if body.get("tools") and provider != "gemini":
        forwarded["tools"] = _tools(body["tools"], store, name)
    volatile = stable.find_volatile(system) if system else []
    if provider == "anthropic" and volatile and settings.move_volatile:
        forwarded["system"] = stable.move_volatile_to_end(body["system"], volatile)
    messages_out, trim = turn.messages, None
    if provider in _BUDGETED:
        messages_out = trims.replay(store, name, turn.client, turn.messages)
        if not client_compacts:
            messages_out, trim = _fit(
                messages_out, provider, turn, store, settings, body, previous_input_tokens
            )
    key = _CONVERSATIONS[provider]
    if isinstance(body.get(key), list):  # a Responses string input has nothing to compress
        forwarded[key] = messages_out
    if provider == "openai-responses" and body.get("previous_response_id"):
        turn = replace(turn, busts=[])  # new items only: there is no history to compare
    if provider == "anthropic":
        forwarded = breakpoints.place_breakpoints(forwarded, turn.frozen)
    return Prepared(forwarded, turn, volatile, trim, provider)


def conversation(body: Mapping[str, Any], provider: str) -> list[Any]:
    """The conversation of a provider's request body (a Responses string input is one user
    message; a Responses request without input, naming a stored prompt, has none)."""
    key = _CONVERSATIONS[provider]
    value = body.get(key)
    if provider == "openai-responses" and not isinstance(value, list):
        if value is None:
            return []
        if isinstance(value, str):
            return [{"role": "user", "content": value}]
        raise InvalidMessagesError(
            f"the request body's 'input' must be a string or a list of items, "
            f"got {type(value).__name__}"
        )
    if not isinstance(value, list):
        raise InvalidMessagesError(f"the request body has no {key!r} list")
    return value


def _system(body: Mapping[str, Any], provider: str, messages: list[Any]) -> Any:
    if provider == "anthropic":
        return body.get("system")
    if provider == "gemini":
        return messages_gemini.system_text(body)
    if provider == "openai-responses":
        return messages_responses.system_text(body)
    return _openai_system(messages)


def _fit(
    messages: list[Any],
    provider: str,
    turn: Turn,
    store: Store,
    settings: Settings,
    body: Mapping[str, Any],
    previous_input_tokens: int | None,
) -> tuple[list[Any], budget.Trim | None]:
    """Messages trimmed to the budget (and the trim kept for later turns), if they exceed it."""
    model = body.get("model")
    window = budget.context_window(model if isinstance(model, str) else None)
    # A reserve larger than a small model's window must still leave it a budget.
    limit = settings.budget_tokens or max(window - settings.budget_reserve_tokens, window // 2)
    estimate = _estimate(messages, turn.frozen, previous_input_tokens, limit)
    if estimate <= limit:
        return messages, None
    query = turn.query
    shape: budget.Shape = "anthropic" if provider == "anthropic" else "openai"
    trim = budget.trim_to_budget(
        messages, shape=shape, budget=limit, estimate=estimate, store_put=store.put, query=query
    )
    if trim.stubbed:
        trims.remember(store, turn.session, turn.client, trim.messages, trim.stubbed)
    return trim.messages, trim


def _estimate(messages: list[Any], frozen: int, previous: int | None, limit: int) -> int:
    """Input tokens of the request: the provider's count for the previous turn plus the new
    messages, or all of them; ASCII JSON is never shorter in characters than in tokens, so
    a request whose JSON fits the limit is not counted at all."""
    counted = messages[frozen:] if previous is not None else messages
    items = [json.dumps(message) for message in counted]
    length = sum(map(len, items)) + 2 * max(len(items), 1)  # of json.dumps(counted)
    if (previous or 0) + length <= limit:
        return (previous or 0) + length
    return (previous or 0) + _json_tokens(counted, items)


def _json_tokens(values: list[Any], ascii_items: list[str]) -> int:
    """`tokens.count(json.dumps(values, ensure_ascii=False))`, each value counted once per
    process: the JSON splits into pieces `[a,`, ` b,` ... ` z]` after each separating comma,
    where no pretoken of either encoding spans (a run of punctuation stops at a space, and a
    word takes at most one leading punctuation mark, right before its letters), so the
    pieces' counts add up. A history is counted for its new messages only."""
    if not values:
        return tokens.count("[]")
    last = len(values) - 1
    total = 0
    for index, (value, item) in enumerate(zip(values, ascii_items, strict=True)):
        ends = ("[" if index == 0 else " ") + ("]" if index == last else ",")
        digest = hashlib.sha256(item.encode()).hexdigest()
        piece = partial(_piece_tokens, ends, value)
        total += ESTIMATES.count(f"{ends}{digest}", piece)
    return total


def _piece_tokens(ends: str, value: Any) -> int:
    return tokens.count(ends[0] + json.dumps(value, ensure_ascii=False) + ends[1])


ESTIMATES = TokenMemo()
"""Token counts of `_json_tokens` pieces (one message each), by the message's JSON."""


def _tools(tools: Any, store: Store, session: str) -> list[dict[str, Any]]:
    note = f"tools:{session}"
    raw = store.recall(note)
    remembered = json.loads(raw or "null")
    # Anything but a list of tools (a damaged note) starts afresh rather than failing a request.
    previous = remembered if isinstance(remembered, list) and all(
        isinstance(tool, dict) for tool in remembered
    ) else None  # fmt: skip
    normalized = stable.normalize_tools(tools, previous)
    kept = json.dumps([{k: v for k, v in t.items() if k != "cache_control"} for t in normalized])
    if kept != raw:  # an agent's tools are tens of KB, the same turn after turn
        store.remember(note, kept)
    return normalized


def _openai_system(messages: list[Any]) -> str | None:
    texts = [
        m.get("content")
        for m in messages
        if isinstance(m, Mapping) and m.get("role") in ("system", "developer")
    ]
    joined = "\n".join(t for t in texts if isinstance(t, str))
    return joined or None


_EVENT_BY: dict[str, EventKind] = {"headroom": "headroom_bust", prefix.TOKEN_MODE: "recompression"}
"""The ledger event of a cache bust, by who made it (anyone else: the client)."""

MEMO = TokenMemo()
"""Token counts of messages and of compressed originals seen by this process, by hash."""


def account(
    store: Store,
    body: Mapping[str, Any],
    prepared: Prepared,
    usage: Mapping[str, Any] | None = None,
) -> None:
    """Records a forwarded turn in the session's ledger: tokens sent and forwarded, the bill
    (from the provider's `usage`, or simulated), fresh compressions per kind, busts and trims.
    It counts tokens, so an edge calls it off the request's hot path (after the answer)."""
    model = str(body.get("model") or "unknown")
    turn = prepared.turn
    sent_each, forwarded_each = _counts(
        conversation(body, prepared.provider),
        conversation(prepared.body, prepared.provider),
        turn,
        model,
    )
    frozen = min(turn.frozen, len(sent_each), len(forwarded_each))
    saved_earlier = sum(sent_each[:frozen]) - sum(forwarded_each[:frozen])

    def change(ledger: Ledger) -> None:
        ledger.record_turn(
            turn.session, model, sent=sum(sent_each), forwarded=sum(forwarded_each),
            usage=usage, saved_earlier=saved_earlier,
        )  # fmt: skip
        for t in turn.transforms:
            if t.skipped is None and not t.replayed:
                ledger.record_compression(turn.session, t.kind, _tokens_in(t), t.tokens_out)
        for bust in turn.busts:
            kind: EventKind = _EVENT_BY.get(bust.by, "cache_bust")
            ledger.record_event(turn.session, kind, bust.describe())
        if prepared.trim and prepared.trim.stubbed:
            detail = f"{len(prepared.trim.stubbed)} tool results, {prepared.trim.freed} tokens"
            ledger.record_event(turn.session, "trim", detail)

    update_ledger(store, turn.session, change)


def _counts(
    client: list[Any], forwarded: list[Any], turn: Turn, model: str
) -> tuple[list[int], list[int]]:
    """Per message, the tokens the client sent and those forwarded.

    A message that differs from the client's only by its compressed payloads counts as
    forwarded plus what each compression saved (`tokens_in - tokens_out`, counted on the
    payloads' text): an original is tokenized once, for its transform's own count, not a
    second time inside its message. Any other changed message (a trim) is counted as sent.
    """
    hashes = [prefix.hash_message(m).whole for m in forwarded]
    out = [count_messages([m], [h], model, MEMO) for m, h in zip(forwarded, hashes, strict=True)]
    mine = [m.whole for m in turn.client]
    if len(forwarded) != len(client):
        each = zip(client, mine, strict=True)
        return [count_messages([m], [h], model, MEMO) for m, h in each], out
    compressed: dict[int, list[Transform]] = {}
    for t in turn.transforms:
        if t.skipped is None:
            compressed.setdefault(t.location[0], []).append(t)
    encoding = tokens.encoding_name(model)
    sent = []
    for i, message in enumerate(client):
        if mine[i] == hashes[i]:
            sent.append(out[i])
        elif i in compressed and hashes[i] == turn.forwarded[i]:
            key = f"{encoding}:{mine[i]}>{hashes[i]}"
            sent.append(MEMO.count(key, partial(_with_savings, out[i], compressed[i])))
        else:
            sent.append(count_messages([message], [mine[i]], model, MEMO))
    return sent, out


def _with_savings(forwarded: int, transforms: list[Transform]) -> int:
    return forwarded + sum(_tokens_in(t) - t.tokens_out for t in transforms)


def _tokens_in(transform: Transform) -> int:
    """A compressed payload's `tokens_in`, remembered by its original's hash: an original
    compressed again (in another session, or with another question) is not tokenized again."""
    digest = hashlib.sha256(transform.original.encode("utf-8", "surrogatepass")).hexdigest()
    key = f"{tokens.encoding_name(transform.model)}:original:{digest}"
    return MEMO.count(key, lambda: transform.tokens_in)
