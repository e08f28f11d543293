"""Multi-turn replays: the forwarded prefix stays byte-identical turn after turn."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from headroom import compress
from headroom.config import Settings
from headroom.conversation import prefix
from headroom.conversation.live_zone import compress_turn
from headroom.store import MemoryStore, open_store

STDLIB = Path(json.__file__).parent.parent


def grep(pattern: str, *folders: str) -> str:
    paths = [str(STDLIB / folder) for folder in folders]
    return subprocess.run(
        ["grep", "-rn", pattern, *paths], capture_output=True, text=True, check=False
    ).stdout


PAYLOADS = [
    ("grep -rn def json email", grep("def ", "json", "email")),
    ("cat argparse.py", (STDLIB / "argparse.py").read_text()),
    ("grep -rn import http", grep("import", "http", "urllib")),
    ("grep -rn return logging", grep("return", "logging")),
]


def canonical(message: Any) -> str:
    return json.dumps(prefix.without_cache_control(message), sort_keys=True)


def turns(question: str = "Where is the decoder defined?") -> list[list[dict[str, Any]]]:
    """The histories a client sends: each turn the whole history plus one new tool result."""
    history: list[dict[str, Any]] = [{"role": "user", "content": question}]
    sent = []
    for number, (command, output) in enumerate(PAYLOADS):
        call_id = f"toolu_{number:02d}"
        history.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": f"Running {command}"},
                    {
                        "type": "tool_use",
                        "id": call_id,
                        "name": "Bash",
                        "input": {"command": command},
                    },
                ],
            }
        )
        history.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call_id, "content": output,
             "cache_control": {"type": "ephemeral"}}]})  # fmt: skip
        for message in history[:-1]:  # the client moves its breakpoint to the newest result
            for block in message["content"] if isinstance(message["content"], list) else []:
                block.pop("cache_control", None)
        sent.append(json.loads(json.dumps(history)))
    return sent


def assert_stable(forwarded: list[list[Any]]) -> None:
    for before, after in itertools.pairwise(forwarded):
        assert [canonical(m) for m in after[: len(before)]] == [canonical(m) for m in before]


def test_every_turn_forwards_the_previous_turn_byte_for_byte() -> None:
    forwarded = [compress(history, session="s1").messages for history in turns()]
    assert_stable(forwarded)
    last = forwarded[-1]
    assert len(last[2]["content"][0]["content"]) < len(PAYLOADS[0][1])


def test_a_new_question_does_not_remake_an_earlier_decision() -> None:
    histories = turns("Where is JSONDecodeError raised?")
    first = compress(histories[0], session="q").messages
    later = histories[-1] + [{"role": "user", "content": "Now, what does scanner.py do?"}]
    again = compress(later, session="q").messages
    assert canonical(again[2]) == canonical(first[2])


def test_token_mode_recompresses_with_the_current_question() -> None:
    settings = Settings(mode="token", store="memory://")
    histories = turns("Where is JSONDecodeError raised?")
    first = compress(histories[0], session="t", config=settings).messages
    later = histories[0] + [{"role": "user", "content": "Which module defines formataddr?"}]
    again = compress(later, session="t", config=settings).messages
    assert canonical(again[2]) != canonical(first[2])


def test_token_modes_rewrites_of_history_are_its_own_not_headroom_busts() -> None:
    store, settings = open_store("memory://"), Settings(mode="token")
    histories = turns("Where is JSONDecodeError raised?")
    compress_turn(histories[0], store, settings, session="t")
    later = histories[0] + [{"role": "user", "content": "Which module defines formataddr?"}]
    turn = compress_turn(later, store, settings, session="t")
    assert {bust.by for bust in turn.busts} == {prefix.TOKEN_MODE}


def test_the_same_conversation_in_openai_shape_compresses_the_same() -> None:
    anthropic = turns()[0]
    command, output = PAYLOADS[0]
    openai = [
        {"role": "user", "content": anthropic[0]["content"]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_0", "type": "function",
            "function": {"name": "Bash", "arguments": json.dumps({"command": command})}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": output},
    ]  # fmt: skip
    a = compress(anthropic, session="a").messages[2]["content"][0]["content"]
    o = compress(openai, session="o").messages[2]["content"]
    assert a == o and len(a) < len(output)


def test_a_payload_first_seen_in_the_frozen_prefix_is_not_compressed() -> None:
    store = open_store("memory://")
    history = turns()[1]
    client = tuple(prefix.hash_message(m) for m in history)
    forwarded = tuple(m.whole for m in client)
    prefix.save(store, "f", prefix.Record(client, forwarded))
    turn = compress_turn(history, store, Settings(), session="f")
    assert turn.frozen == len(history)
    assert turn.messages == history
    assert {t.skipped for t in turn.transforms} == {"sent in an earlier turn"}
    assert turn.busts == []


def test_appending_turns_records_no_bust_but_editing_an_old_message_does() -> None:
    store = open_store("memory://")
    histories = turns()
    for history in histories[:3]:
        assert compress_turn(history, store, Settings(), session="d").busts == []
    edited = json.loads(json.dumps(histories[3]))
    edited[1]["content"][0]["text"] = "Running something else"
    [event] = compress_turn(edited, store, Settings(), session="d").busts
    assert (event.message, event.block, event.by) == (1, 0, "client")


def test_a_read_of_a_file_the_session_edited_stays_whole() -> None:
    source = (STDLIB / "argparse.py").read_text()
    numbered = "\n".join(f"{n:>6}→{line}" for n, line in enumerate(source.split("\n"), 1))
    history = [
        {"role": "user", "content": "Fix the parser"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "e1", "name": "Edit",
            "input": {"file_path": "/src/argparse.py", "old_string": "a", "new_string": "b"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "e1", "content": "ok"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "r1", "name": "Read",
            "input": {"file_path": "/src/argparse.py"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "r1", "content": numbered}]},
    ]  # fmt: skip
    result = compress(history, session="e")
    assert result.messages[4]["content"][0]["content"] == numbered
    assert result.transforms[-1].skipped == "read of a file the session edited"


RESTART = """
import json, sys
from headroom import compress
history = json.load(open(sys.argv[1]))
print(json.dumps(compress(history, session="restart").messages))
"""


@pytest.mark.integration
def test_the_prefix_stays_stable_across_a_process_restart(
    tmp_path: Path, headroom_home: Path
) -> None:
    env = {**os.environ, "HEADROOM_HOME": str(headroom_home)}
    forwarded = []
    for index, history in enumerate(turns()):
        path = tmp_path / f"turn{index}.json"
        path.write_text(json.dumps(history))
        done = subprocess.run(
            [sys.executable, "-c", RESTART, str(path)],
            capture_output=True, text=True, env=env, check=True, timeout=120,
        )  # fmt: skip
        forwarded.append(json.loads(done.stdout))
    assert_stable(forwarded)
    assert len(forwarded[-1][2]["content"][0]["content"]) < len(PAYLOADS[0][1])


def test_a_decision_evicted_from_a_full_store_shows_as_a_bust_never_as_silent_new_bytes() -> None:
    """The prefix note is the last a turn writes, so a full store evicts a session's decisions
    before it: a payload whose decision is gone is forwarded whole, and the tracker reports it."""
    store = MemoryStore(max_bytes=20_000)
    histories = turns()
    histories.append(histories[-1] + [{"role": "user", "content": "And the encoder?"}])
    previous: list[Any] = []
    lost = 0
    for history in histories:
        turn = compress_turn(history, store, Settings(), session="full")
        changed = [canonical(m) for m in turn.messages[: len(previous)]] != [
            canonical(m) for m in previous
        ]
        headroom_busts = [e for e in turn.busts if e.by == "headroom"]
        assert changed == bool(headroom_busts)
        lost += len(headroom_busts)
        previous = turn.messages
    assert lost >= 1
    assert turn.transforms[0].skipped == "sent in an earlier turn"
