"""Retrieve in the loop for OpenAI's Responses API: `function_call` output items and
`function_call_output` input items, the Response object, and its stream of typed events
(`response.created`, `response.output_item.added`, ..., `response.completed`).

A Response is a list of output items, and a client sends them back as separate `input`
items. Splicing and identity need one assistant message per answer, so the loop groups each
run of model items (assistant messages, reasoning, tool calls) into one
`{"role": "assistant", "items": [...]}` before splicing and flattens it after; a hop's group
also carries its response's `id`.

The client sees the first hop's Response id throughout (a stream announces it in
`response.created` before it is known whether a retrieve follows, and the SDK refuses a
stream whose id changes). A request that continues a stored response
(`previous_response_id`) carries no history to splice into: the upstream holds it. There
splicing means naming the right stored response: the loop keeps a note
`responses-hidden:ID` -> `{"response": LAST, "pending": [...]}` for every answer that hid a
retrieve, and a later request naming ID is forwarded naming LAST (the hop that holds the
whole hidden exchange), with any retrieve results still owed added after the conversation
layer. Its continuations chain the same way: `previous_response_id` the latest hop, `input`
the retrieve results alone (unless `store` is false: then no hop is stored, and a
continuation resends the hops' items after the request's own).

A streamed answer is relayed event by event: a retrieve call's item and its events are kept
from the client, every other item's events are renumbered (`output_index`) to follow the
items the client has seen and every event's `sequence_number` to follow the events it has
seen; a continuation's `response.created` and `response.in_progress` are dropped, and one
closing `response.completed` (the first hop's id, every visible item, the usage summed over
hops) ends the client's answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from headroom.proxy import hidden_turns
from headroom.proxy.retrieve_dialect import Hop, HopRelay, Outcome, join_results, sse_event
from headroom.proxy.retrieve_loop import Plan, RetrieveLoop
from headroom.proxy.retrieve_openai import error_object
from headroom.proxy.retrieve_tool import NAME, RESPONSES_TOOL, Answer, Call, offer
from headroom.proxy.sse import Event
from headroom.store.base import Store

CLIENT_CALLS = frozenset(
    ("function_call", "custom_tool_call", "computer_call", "local_shell_call", "shell_call",
     "apply_patch_call", "mcp_approval_request")
)  # fmt: skip
"""Output items the client acts on: beside one of them a retrieve call cannot be continued."""
MODEL_ITEMS = CLIENT_CALLS | {
    "reasoning", "web_search_call", "file_search_call", "image_generation_call",
    "code_interpreter_call", "mcp_call", "mcp_list_tools",
}  # fmt: skip
"""Item types only a model writes (beside assistant messages)."""
OPENING = frozenset(("response.created", "response.queued", "response.in_progress"))
CLOSING = {
    "response.completed": "completed",
    "response.incomplete": "incomplete",
    "response.failed": "failed",
}
"""The events that end a Response's stream, and the status each ends it with."""
TOOL_STOP = "function_call"
"""A completed Response that calls client tools (the API has no stop reason of its own)."""
NOTE = "responses-hidden:"


class ResponsesDialect:
    """The Responses API's shapes, as `retrieve_loop.Dialect` describes them; its messages
    are groups of output items (`group`)."""

    tool: Mapping[str, Any] = RESPONSES_TOOL
    tool_stop = TOOL_STOP
    end_stop = "completed"

    def calls(self, message: Mapping[str, Any]) -> list[Call]:
        return [
            Call(str(item.get("call_id") or item.get("id")), str(item.get("name")), _input(item))
            for item in _items(message)
            if item.get("type") in CLIENT_CALLS
        ]

    def results(self, answered: list[tuple[Call, Answer]]) -> list[dict[str, Any]]:
        return [
            {"type": "function_call_output", "call_id": call.id, "output": answer.marked}
            for call, answer in answered
        ]

    def visible(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        items = [item for m in messages for item in _items(m) if not _is_retrieve(item)]
        return {"role": "assistant", "items": items}

    def identity(self, message: Mapping[str, Any]) -> Any:
        # Reasoning items and item ids are left out: clients drop or keep them as they like.
        items = _items(message)
        text = "".join(_text(item) for item in items if _is_message(item))
        calls = [[c.id, c.name, c.arguments] for c in self.calls(message)]
        return [text, calls]

    def join(
        self, pending: list[dict[str, Any]], following: Sequence[Any], order: Sequence[str]
    ) -> tuple[list[Any], int]:
        return join_results(pending, following, order, _is_output, "call_id")

    def continuation(self, forwarded: Mapping[str, Any], extra: list[Any]) -> dict[str, Any]:
        hops = [index for index, m in enumerate(extra) if _is_group(m) and m.get("id")]
        stored = forwarded.get("store") is not False  # else no hop is stored to chain on
        if forwarded.get("previous_response_id") and stored and hops:
            latest = hops[-1]
            after = flatten(extra[latest + 1 :])
            return {**forwarded, "previous_response_id": extra[latest]["id"], "input": after}
        return {**forwarded, "input": [*_input_items(forwarded.get("input")), *flatten(extra)]}

    def read(self, answer: Mapping[str, Any]) -> Hop | None:
        output = answer.get("output")
        if answer.get("object") != "response" or not isinstance(output, list):
            return None
        return _hop(answer, output)

    def write(
        self, first: Mapping[str, Any], last: Mapping[str, Any], end: Outcome
    ) -> dict[str, Any]:
        return {
            **first,
            "status": status_of(end.stop),
            "error": last.get("error"),
            "incomplete_details": last.get("incomplete_details"),
            "output": end.visible["items"],
            "usage": end.usage_or(first.get("usage")),
        }

    def stream(self) -> ResponsesStream:
        return ResponsesStream()


class ResponsesLoop(RetrieveLoop):
    """The loop for `/v1/responses`: `input` items grouped for splicing, and stored
    responses (`previous_response_id`) named by the hop that holds the hidden exchange."""

    def plan(self, body: dict[str, Any], store: Store, session: str | None) -> Plan:
        tools = offer(body.get("tools"), self.dialect.tool)
        previous = body.get("previous_response_id")
        hidden = _hidden(store, previous) if isinstance(previous, str) else None
        if hidden is not None:
            body = {**body, "previous_response_id": hidden["response"]}
        pending = list(hidden["pending"]) if hidden else []
        given = body.get("input")
        items = [{"role": "user", "content": given}] if isinstance(given, str) else given
        if tools is None or not isinstance(items, list):
            return Plan(body, "", [], bool(pending), pending)
        if previous is not None:  # the upstream holds the history: nothing to splice into
            return Plan({**body, "tools": tools}, "", [], True, pending)
        grouped = group(items)
        system = {"system": body.get("instructions"), "messages": grouped}
        name = hidden_turns.conversation(session, system)
        spliced = flatten(hidden_turns.splice(store, name, grouped, self.dialect))
        sent = spliced if isinstance(given, list) else given
        return Plan({**body, "input": sent, "tools": tools}, name, grouped, True)

    def remember(
        self, store: Store, plan: Plan, visible: dict[str, Any], exchange: hidden_turns.Exchange
    ) -> None:
        super().remember(store, plan, visible, exchange)
        if plan.body.get("store") is False:
            return  # no response of this answer is stored: none can be named later
        first, last = exchange.messages[0].get("id"), exchange.messages[-1].get("id")
        if isinstance(first, str) and isinstance(last, str):
            note = {"response": last, "pending": exchange.pending}
            store.remember(NOTE + first, json.dumps(note))


class ResponsesStream(HopRelay):
    """One streamed client Response over its hops (`retrieve_loop.StreamRelay`)."""

    def __init__(self) -> None:
        self.sequence = 0
        """The next `sequence_number` the client gets."""
        self.shown: dict[int, dict[str, Any]] = {}
        """The items the client has seen, by the client's `output_index`."""
        self._first: Mapping[str, Any] = {}
        self._last: Mapping[str, Any] = {}
        super().__init__()

    def _new_hop(self) -> None:
        super()._new_hop()
        self._index: dict[int, int | None] = {}
        """Upstream output index -> the client's (None: a retrieve call, kept back)."""
        self._items: dict[int, dict[str, Any]] = {}
        self._response: Mapping[str, Any] = {}

    def feed(self, event: Event) -> bytes:
        data = event.json()
        kind = data.get("type") if data is not None else None
        if data is None or not isinstance(kind, str):
            return event.raw
        if kind in OPENING:
            if self.hops:
                return b""
            self._first = self._first or (data.get("response") or {})
            return self._emit(event, data)
        if kind in CLOSING:
            self._response = data.get("response") or {}
            self.complete = True
            return self.hold(event.raw)
        self.failed = self.failed or kind == "error"
        index = data.get("output_index")
        if not isinstance(index, int):
            return self._emit(event, data)
        return self._item_event(event, data, kind, index)

    def _item_event(self, event: Event, data: dict[str, Any], kind: str, index: int) -> bytes:
        item = data.get("item")
        if kind == "response.output_item.added" and isinstance(item, dict):
            self._index[index] = None if _is_retrieve(item) else len(self.shown)
            self._items[index] = item
        elif kind == "response.output_item.done" and isinstance(item, dict):
            self._items[index] = item
        target = self._index.get(index)
        if target is None:
            return b""
        if isinstance(item, dict):
            self.shown[target] = item
        if target == index:
            return self._emit(event, data)
        return self._emit(event, {**data, "output_index": target}, changed=True)

    def _emit(self, event: Event, data: dict[str, Any], changed: bool = False) -> bytes:
        """An event as the client gets it: numbered to follow the events it has seen."""
        number, self.sequence = self.sequence, self.sequence + 1
        if not changed and data.get("sequence_number") == number:
            return event.raw
        return sse_event(str(data["type"]), {**data, "sequence_number": number})

    def _hop(self) -> Hop:
        self._last = response = self._response
        output = response.get("output")
        if not isinstance(output, list) or not output:
            output = [self._items[index] for index in sorted(self._items)]
        return _hop(response, output)

    def finish(self, stop: str | None, usage: dict[str, Any] | None) -> bytes:
        status = status_of(stop)
        response = {
            **self._last,
            "id": self._first.get("id", self._last.get("id")),
            "created_at": self._first.get("created_at", self._last.get("created_at")),
            "status": status,
            "output": [self.shown[index] for index in sorted(self.shown)],
            "usage": usage if usage is not None else self._last.get("usage"),
        }
        kind = next((k for k, v in CLOSING.items() if v == status), "response.completed")
        number, self.sequence = self.sequence, self.sequence + 1
        return sse_event(kind, {"type": kind, "sequence_number": number, "response": response})

    def error(self, message: str, body: bytes = b"") -> bytes:
        self.failed = True
        error = error_object(message, body)
        number, self.sequence = self.sequence, self.sequence + 1
        event = {
            "type": "error",
            "code": error.get("code") or error.get("type"),
            "message": error.get("message") or message,
            "param": error.get("param"),
            "sequence_number": number,
        }
        return sse_event("error", event)


def group(items: Sequence[Any]) -> list[Any]:
    """Input items with each run of model items as one assistant message."""
    grouped: list[Any] = []
    for item in items:
        if not _is_model_item(item):
            grouped.append(item)
        elif grouped and _is_group(grouped[-1]):
            grouped[-1]["items"].append(item)
        else:
            grouped.append({"role": "assistant", "items": [item]})
    return grouped


def flatten(messages: Sequence[Any]) -> list[Any]:
    """Grouped messages as input items again."""
    return [item for m in messages for item in (_items(m) if _is_group(m) else [m])]


def stop_of(status: Any, output: Sequence[Any]) -> str | None:
    """A Response's stop reason: `TOOL_STOP` for a completed one that calls client tools,
    else its status."""
    calls = any(isinstance(i, Mapping) and i.get("type") in CLIENT_CALLS for i in output)
    return TOOL_STOP if status == "completed" and calls else (str(status) if status else None)


def status_of(stop: str | None) -> str:
    """The status of a Response that stopped so."""
    return stop if stop is not None and stop != TOOL_STOP else "completed"


def _hidden(store: Store, response_id: str) -> dict[str, Any] | None:
    """The note of a Response that hid a retrieve, if the store still has it."""
    raw = store.recall(NOTE + response_id)
    try:
        note = json.loads(raw) if raw else None
    except ValueError:
        return None  # a damaged note: the request goes as the client sent it
    if not isinstance(note, dict) or not isinstance(note.get("response"), str):
        return None
    return note if isinstance(note.get("pending"), list) else None


def _hop(response: Mapping[str, Any], output: list[Any]) -> Hop:
    """A Response with this output as a hop: its items grouped as one message."""
    message = {"role": "assistant", "id": response.get("id"), "items": list(output)}
    return Hop.of(message, stop_of(response.get("status"), output), response.get("usage"))


def _is_group(message: Any) -> bool:
    return isinstance(message, Mapping) and isinstance(message.get("items"), list)


def _items(message: Any) -> list[dict[str, Any]]:
    items = message.get("items") if isinstance(message, Mapping) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _input_items(given: Any) -> list[Any]:
    """A request's `input` as a list of items (a string is one user message)."""
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    return list(given) if isinstance(given, list) else []


def _is_model_item(item: Any) -> bool:
    return isinstance(item, Mapping) and (
        item.get("role") == "assistant" or item.get("type") in MODEL_ITEMS
    )


def _is_message(item: Mapping[str, Any]) -> bool:
    return item.get("role") == "assistant"


def _is_output(item: Any) -> bool:
    return isinstance(item, Mapping) and str(item.get("type", "")).endswith("_output")


def _is_retrieve(item: Mapping[str, Any]) -> bool:
    return item.get("type") == "function_call" and item.get("name") == NAME


def _text(item: Mapping[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "".join(str(part.get("text") or "") for part in parts if isinstance(part, Mapping))


def _input(item: Mapping[str, Any]) -> Any:
    """A call's input: `arguments` as JSON values (so a client that re-serialises them still
    matches), as written when they are not JSON; a custom tool's raw `input`."""
    raw = item.get("arguments", item.get("input"))
    try:
        return json.loads(raw) if item.get("type") == "function_call" and raw else raw
    except (TypeError, ValueError):
        return raw
