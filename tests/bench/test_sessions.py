"""The sessions benchmark on a small corpus made at test time from real program output."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from headroom.bench import sessions

STDLIB = Path(json.__file__).parent.parent


def make_corpus(folder: Path) -> Path:
    grep = subprocess.run(
        ["grep", "-rn", "def ", str(STDLIB / "json"), str(STDLIB / "email")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    steps = [
        {"action": "grep -rn 'def ' json email", "observation": grep},
        {"action": "cat argparse.py", "observation": (STDLIB / "argparse.py").read_text()},
        {"action": "ls", "observation": "a.py b.py"},
    ]
    (folder / "trajectory").mkdir(parents=True)
    (folder / "search").mkdir()
    (folder / "trajectory" / "run.traj").write_text(json.dumps({
        "history": [{"role": "system", "content": "You are an agent."},
                    {"role": "user", "content": "Where is the JSON decoder?"}],
        "trajectory": steps,
    }))  # fmt: skip
    (folder / "search" / "defs.txt").write_text(grep)
    (folder / "search" / "imports.txt").write_text(grep.replace("def ", "import "))
    manifest = [
        {
            "kind": "trajectory",
            "name": "run.traj",
            "file": "trajectory/run.traj",
            "needles": [],
            "question": "Which decoder did the agent find?",
        },
        {
            "kind": "search",
            "name": "defs",
            "file": "search/defs.txt",
            "needles": [],
            "question": "q",
        },
        {"kind": "search", "name": "imports", "file": "search/imports.txt", "needles": []},
    ]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_sessions_replay_with_stable_prefixes_and_a_lower_bill(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    results = sessions.run(corpus, tmp_path / "home")
    assert [r.name for r in results] == ["run.traj", "search sequence"]
    trajectory = results[0]
    assert trajectory.turns == 4  # three steps, and the corpus's question asked half-way
    assert trajectory.cache.stable_turns == trajectory.cache.compared_turns == 3
    assert trajectory.cache.headroom_busts == 0
    assert trajectory.cache.bill < trajectory.direct.bill
    assert trajectory.cache.tokens_forwarded < trajectory.cache.tokens_sent
    assert "| all sessions | 6 |" in sessions.table(results)


def test_histories_resend_the_whole_conversation_each_turn() -> None:
    session = sessions.Session("s", "why?", [sessions.Step("ls", "a"), sessions.Step("cat a", "b")])
    first, second = sessions.histories(session)
    assert len(first) == 3 and len(second) == 5
    assert second[:3] == first


def test_a_follow_up_question_is_a_turn_of_its_own_after_the_answer() -> None:
    steps = [sessions.Step("ls", "a"), sessions.Step("cat a", "b", question="And b?")]
    first, asked, second = sessions.histories(sessions.Session("s", "why?", steps))
    assert asked[:3] == first
    assert [m["role"] for m in asked[3:]] == ["assistant", "user"]
    assert asked[-1]["content"] == "And b?"
    assert second[:5] == asked and len(second) == 7


def test_token_mode_pays_for_recompressing_the_history_on_a_follow_up(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "search").mkdir(parents=True)
    grep = subprocess.run(
        ["grep", "-rn", "def ", str(STDLIB / "json"), str(STDLIB / "email")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    (corpus / "search" / "defs.txt").write_text(grep)
    (corpus / "search" / "again.txt").write_text(grep.replace("def ", "def  "))
    manifest = [
        {"kind": "search", "name": "defs", "file": "search/defs.txt", "needles": [],
         "question": "Where is JSONDecodeError raised?"},
        {"kind": "search", "name": "again", "file": "search/again.txt", "needles": [],
         "question": "Which module defines formataddr?"},
    ]  # fmt: skip
    (corpus / "manifest.json").write_text(json.dumps(manifest))
    [result] = sessions.run(corpus, tmp_path / "home")
    assert result.turns == 3  # the first payload, the follow-up question, the second payload
    assert result.cache.stable_turns == result.cache.compared_turns == 2
    assert result.cache.headroom_busts == 0
    assert result.token.stable_turns < result.token.compared_turns
    assert result.token.headroom_busts >= 1
    assert result.token.cache_writes > result.cache.cache_writes
    assert result.token.bill > result.cache.bill
    assert f"| 0 / {result.token.headroom_busts} |" in sessions.table([result])


def test_a_chat_trajectory_takes_the_users_later_messages_as_follow_ups(tmp_path: Path) -> None:
    run = [
        {"role": "system", "content": "You are an agent."},
        {"role": "user", "content": "Check the pods"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "function": {"name": "kubectl", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "pod-a Running"},
        {"role": "assistant", "content": "All running."},
        {"role": "user", "content": "Now the other namespaces"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c2", "function": {"name": "kubectl", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c2", "content": "pod-b CrashLoopBackOff"},
    ]  # fmt: skip
    (tmp_path / "trajectory").mkdir()
    (tmp_path / "trajectory" / "run.json").write_text(json.dumps(run))
    manifest = [{"kind": "trajectory", "name": "run", "file": "trajectory/run.json", "needles": []}]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    [session] = sessions.load_sessions(tmp_path)
    assert session.question == "Check the pods"
    assert [step.question for step in session.steps] == ["", "Now the other namespaces"]
