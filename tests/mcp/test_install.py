"""`headroom mcp install/uninstall` against each agent's config in a temporary home: what is
written, that a round trip leaves an existing file byte for byte, idempotence, and refusals."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from headroom import mcp_install
from headroom.errors import ConfigError
from headroom.mcp_install import Change

COMMAND = ["/opt/tools/bin/headroom", "mcp"]
CLAUDE = Path(__file__).resolve().parents[1] / "agents" / "node_modules" / ".bin" / "claude"

# Claude Code writes ~/.claude.json as JSON.stringify(config, null, 2), with no final newline.
CLAUDE_JSON = json.dumps(
    {
        "numStartups": 12,
        "theme": "dark",
        "projects": {"/home/ana/café": {"allowedTools": [], "mcpServers": {}}},
        "mcpServers": {"github": {"type": "stdio", "command": "npx", "args": ["gh-mcp"]}},
        "oauthAccount": {"emailAddress": "ana@example.com"},
    },
    indent=2,
    ensure_ascii=False,
)
CURSOR_JSON = json.dumps({"mcpServers": {"db": {"url": "http://127.0.0.1:9000/mcp"}}}, indent=4)
CURSOR_JSON += "\n"
CODEX_TOML = """\
# Codex settings
model = "gpt-5-codex"
approval_policy = "on-request"

[mcp_servers.docs]
command = "npx"
args = ["-y", "docs-mcp"]

[profiles.fast]
model = "gpt-5-mini"
"""
EXISTING = {"claude": CLAUDE_JSON, "cursor": CURSOR_JSON, "codex": CODEX_TOML}
BROKEN = {"claude": '{"numStartups": 12,', "cursor": "{mcpServers: {}}", "codex": "model = \n"}


def config_file(agent: str, home: Path) -> Path:
    return mcp_install.config_file(agent, home, {})


def install(agent: str, home: Path, command: list[str]) -> Change:
    return mcp_install.install(agent, config_file(agent, home), command)


def uninstall(agent: str, home: Path) -> Change:
    return mcp_install.uninstall(agent, config_file(agent, home))


def entry(agent: str, path: Path) -> Any:
    """The headroom server as the agent will read it from its config."""
    if agent == "codex":
        return tomllib.loads(path.read_text())["mcp_servers"]["headroom"]
    return json.loads(path.read_text())["mcpServers"]["headroom"]


@pytest.mark.parametrize("agent", ["claude", "codex", "cursor"])
def test_install_into_a_fresh_home_creates_the_config_and_uninstall_removes_it(
    agent: str, tmp_path: Path
) -> None:
    change = install(agent, tmp_path, COMMAND)
    assert change.action == "installed"
    assert change.path == config_file(agent, tmp_path)
    expected: dict[str, Any] = {"command": COMMAND[0], "args": ["mcp"]}
    if agent != "codex":
        expected["env"] = {}
    if agent == "claude":
        expected["type"] = "stdio"
    assert entry(agent, change.path) == expected
    assert uninstall(agent, tmp_path).action == "removed"
    assert not change.path.exists()


@pytest.mark.parametrize("agent", ["claude", "codex", "cursor"])
def test_a_round_trip_leaves_an_existing_config_byte_for_byte(agent: str, tmp_path: Path) -> None:
    path = config_file(agent, tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(EXISTING[agent], encoding="utf-8")
    path.chmod(0o600)
    install(agent, tmp_path, COMMAND)
    assert entry(agent, path)["command"] == COMMAND[0]
    text = path.read_text(encoding="utf-8")
    assert ("docs-mcp" if agent == "codex" else "gh-mcp" if agent == "claude" else "9000") in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert uninstall(agent, tmp_path).action == "removed"
    assert path.read_bytes() == EXISTING[agent].encode("utf-8")


@pytest.mark.parametrize("agent", ["claude", "codex", "cursor"])
def test_installing_twice_changes_nothing_the_second_time(agent: str, tmp_path: Path) -> None:
    install(agent, tmp_path, COMMAND)
    path = config_file(agent, tmp_path)
    written = path.read_bytes()
    assert install(agent, tmp_path, COMMAND).action == "unchanged"
    assert path.read_bytes() == written


@pytest.mark.parametrize("agent", ["claude", "codex", "cursor"])
def test_another_launcher_updates_the_entry_in_place(agent: str, tmp_path: Path) -> None:
    path = config_file(agent, tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(EXISTING[agent], encoding="utf-8")
    install(agent, tmp_path, COMMAND)
    moved = ["/usr/bin/python3", "-m", "headroom.cli", "mcp"]
    assert install(agent, tmp_path, moved).action == "updated"
    assert entry(agent, path)["args"] == moved[1:]
    uninstall(agent, tmp_path)
    assert path.read_text(encoding="utf-8") == EXISTING[agent]


@pytest.mark.parametrize("agent", ["claude", "codex", "cursor"])
def test_a_config_that_does_not_parse_is_refused_and_left_alone(agent: str, tmp_path: Path) -> None:
    path = config_file(agent, tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BROKEN[agent])
    language = "TOML" if agent == "codex" else "JSON"
    with pytest.raises(ConfigError, match=f"is not valid {language}"):
        install(agent, tmp_path, COMMAND)
    with pytest.raises(ConfigError, match=f"is not valid {language}"):
        uninstall(agent, tmp_path)
    assert path.read_text() == BROKEN[agent]


@pytest.mark.parametrize(
    ("agent", "text"),
    [
        ("claude", '{"mcpServers": {"headroom": {"command": "npx", "args": ["hr"]}}}'),
        ("cursor", '{"mcpServers": {"headroom": {"url": "http://127.0.0.1:1/mcp"}}}'),
        ("codex", '[mcp_servers.headroom]\ncommand = "npx"\nargs = ["hr"]\n'),
        (
            "codex",
            '[mcp_servers.headroom]\ncommand = "/x/headroom"\nargs = ["mcp"]\nenv = {A = "1"}\n',
        ),
        ("codex", 'mcp_servers = { headroom = { command = "/x/headroom", args = ["mcp"] } }\n'),
    ],
)
def test_a_headroom_entry_it_did_not_write_is_left_alone(
    agent: str, text: str, tmp_path: Path
) -> None:
    path = config_file(agent, tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    with pytest.raises(ConfigError, match="headroom"):
        install(agent, tmp_path, COMMAND)
    with pytest.raises(ConfigError, match="headroom"):
        uninstall(agent, tmp_path)
    assert path.read_text() == text


def test_codex_inline_servers_table_cannot_take_a_new_table_and_is_left_alone(
    tmp_path: Path,
) -> None:
    path = config_file("codex", tmp_path)
    path.parent.mkdir(parents=True)
    text = 'mcp_servers = { docs = { command = "npx" } }\n'
    path.write_text(text)
    with pytest.raises(ConfigError, match="change more than headroom's own server"):
        install("codex", tmp_path, COMMAND)
    assert path.read_text() == text


@pytest.mark.parametrize("agent", ["claude", "codex", "cursor"])
def test_uninstall_without_install_touches_nothing(agent: str, tmp_path: Path) -> None:
    assert uninstall(agent, tmp_path).action == "absent"
    assert not config_file(agent, tmp_path).exists()


def test_a_symlinked_config_is_edited_through_its_link(tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles" / "mcp.json"
    dotfiles.parent.mkdir()
    dotfiles.write_text(CURSOR_JSON)
    link = config_file("cursor", tmp_path)
    link.parent.mkdir()
    link.symlink_to(dotfiles)
    install("cursor", tmp_path, COMMAND)
    assert link.is_symlink() and entry("cursor", dotfiles)["command"] == COMMAND[0]
    uninstall("cursor", tmp_path)
    assert link.is_symlink() and dotfiles.read_text() == CURSOR_JSON


@pytest.mark.parametrize("agent", ["claude", "codex", "cursor"])
def test_uninstall_through_a_symlink_keeps_the_link_and_removes_what_install_wrote(
    agent: str, tmp_path: Path
) -> None:
    dotfile = tmp_path / "dotfiles" / "config"
    dotfile.parent.mkdir()
    link = config_file(agent, tmp_path)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(dotfile)
    install(agent, tmp_path, COMMAND)
    assert entry(agent, dotfile)["command"] == COMMAND[0]
    assert uninstall(agent, tmp_path).action == "removed"
    assert link.is_symlink() and not dotfile.exists()


def test_the_agents_own_variables_move_their_config() -> None:
    environ = {"CLAUDE_CONFIG_DIR": "/cfg/claude", "CODEX_HOME": "/cfg/codex"}
    home = Path("/home/ana")
    located = {agent: mcp_install.config_file(agent, home, environ) for agent in mcp_install.AGENTS}
    assert located == {
        "claude": Path("/cfg/claude/.claude.json"),
        "codex": Path("/cfg/codex/config.toml"),
        "cursor": Path("/home/ana/.cursor/mcp.json"),
    }
    with pytest.raises(ConfigError, match="'vim' is not one of: claude, codex, cursor"):
        mcp_install.config_file("vim", home, environ)


def cli(*args: str, home: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), **environ}
    return subprocess.run(
        [sys.executable, "-m", "headroom.cli", "mcp", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.integration
def test_the_cli_installs_this_interpreter_and_reports_errors_in_one_line(
    tmp_path: Path,
) -> None:
    done = cli("install", "--agent", "cursor", home=tmp_path)
    assert done.returncode == 0, done.stderr
    path = tmp_path / ".cursor" / "mcp.json"
    assert (
        done.stdout
        == f"headroom: added the headroom MCP server to Cursor's {path}; restart Cursor\n"
    )
    assert entry("cursor", path)["command"] == sys.executable
    assert entry("cursor", path)["args"] == ["-m", "headroom.cli", "mcp"]
    (tmp_path / ".codex").mkdir()
    (tmp_path / ".codex" / "config.toml").write_text(BROKEN["codex"])
    failed = cli("install", "--agent", "codex", home=tmp_path)
    assert failed.returncode == 1
    assert failed.stderr.startswith("headroom: error: ") and failed.stderr.count("\n") == 1
    assert cli("install", "--agent", "vim", home=tmp_path).returncode == 2


@pytest.mark.integration
def test_claude_code_connects_to_the_server_install_wrote(tmp_path: Path) -> None:
    if not CLAUDE.exists():
        pytest.fail(
            f"Claude Code is not installed at {CLAUDE}: run "
            "`npm ci --prefix tests/agents --no-audit --no-fund` (scripts/test does)"
        )
    config_dir = str(tmp_path / "claude-config")
    done = cli("install", "--agent", "claude", home=tmp_path, CLAUDE_CONFIG_DIR=config_dir)
    assert done.returncode == 0, done.stderr
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "CLAUDE_CONFIG_DIR": config_dir,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    listed = subprocess.run(
        [str(CLAUDE), "mcp", "list"], env=env, capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if line.startswith("headroom:"))
    assert "Connected" in line, listed.stdout
    done = cli("uninstall", "--agent", "claude", home=tmp_path, CLAUDE_CONFIG_DIR=config_dir)
    assert done.returncode == 0, done.stderr
    assert "mcpServers" not in json.loads(Path(config_dir, ".claude.json").read_text())
