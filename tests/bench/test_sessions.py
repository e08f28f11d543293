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
        {"kind": "trajectory", "name": "run.traj", "file": "trajectory/run.traj", "needles": []},
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
    assert trajectory.turns == 3
    assert trajectory.cache.stable_turns == trajectory.cache.compared_turns == 2
    assert trajectory.cache.headroom_busts == 0
    assert trajectory.cache.bill < trajectory.direct.bill
    assert trajectory.cache.tokens_forwarded < trajectory.cache.tokens_sent
    assert "| all sessions | 5 |" in sessions.table(results)


def test_histories_resend_the_whole_conversation_each_turn() -> None:
    session = sessions.Session("s", "why?", [("ls", "a"), ("cat a", "b")])
    first, second = sessions.histories(session)
    assert len(first) == 3 and len(second) == 5
    assert second[:3] == first
