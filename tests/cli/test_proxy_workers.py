"""`headroom proxy --workers N`: several processes answer on one port and share one store,
each built from the settings the command hands down through the environment."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from headroom.bench.faults import headers, request_body
from headroom.bench.proxy import running
from headroom.config import Settings

pytestmark = pytest.mark.integration

ARGPARSE = Path(json.__file__).resolve().parents[1] / "argparse.py"


def worker(metrics: str) -> str:
    found = re.search(r'headroom_worker\{pid="(\d+)"\}', metrics)
    assert found, metrics
    return found.group(1)


def test_two_workers_answer_on_one_port_and_share_one_store(tmp_path: Path) -> None:
    with running(tmp_path, "--workers", "2") as servers:
        content = ARGPARSE.read_text(encoding="utf-8")
        made = httpx.post(f"{servers.proxy}/v1/compress", json={"content": content}).json()
        key = made["keys"][0]
        retrieved: dict[str, int] = {}
        for _ in range(100):  # each fresh connection goes to whichever worker accepts it
            with httpx.Client(base_url=servers.proxy) as client:
                pid = worker(client.get("/metrics").text)
                retrieved[pid] = client.get(f"/v1/retrieve/{key}").status_code
            if len(retrieved) == 2:
                break
        answer = httpx.post(f"{servers.proxy}/v1/messages", content=request_body(False, content),
                            headers=headers("workers"), timeout=30)  # fmt: skip
    assert len(retrieved) == 2, "only one worker ever answered"
    assert set(retrieved.values()) == {200}
    assert answer.status_code == 200 and answer.json()["type"] == "message"


def test_workers_refuse_a_memory_store(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "headroom.cli",
        "proxy",
        "--workers",
        "2",
        "--store",
        "memory://",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "cannot share a memory:// store" in done.stderr


def test_a_worker_reads_back_the_settings_the_command_hands_down() -> None:
    settings = Settings(
        mode="token", store="sqlite:////tmp/a b.db", ttl_days=0.5, move_volatile=True,
        workers=3, compress_timeout_ms=250, anthropic_url="http://127.0.0.1:9",
    )  # fmt: skip
    assert Settings.from_env(settings.environ()) == settings
