"""`headroom mcp install/uninstall`: the headroom MCP server in a coding agent's own config.

    claude   ~/.claude.json (in $CLAUDE_CONFIG_DIR when set)   mcpServers.headroom, user scope
    codex    ~/.codex/config.toml (or $CODEX_HOME/config.toml)  [mcp_servers.headroom]
    cursor   ~/.cursor/mcp.json                                 mcpServers.headroom

Everything else in those files is kept. JSON is loaded and written back in its own key order,
indent, escaping and final newline, so a file in the usual formatting comes back byte for byte.
TOML is edited as text: only the table headroom writes is appended or cut out, and the edit is
checked by parsing the result, which must be the old document plus, or minus, exactly
headroom's server, or nothing is written. A file that does not parse is refused, never
overwritten. `uninstall` removes only an entry of the shape `install` writes (and the file,
when nothing else is left in it); installing twice changes nothing. Files are replaced
atomically, through a symlink, keeping their mode.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headroom.errors import ConfigError

NAME = "headroom"
AGENTS = {"claude": "Claude Code", "codex": "Codex", "cursor": "Cursor"}
_FILES = {
    "claude": Path(".claude.json"),
    "codex": Path(".codex/config.toml"),
    "cursor": Path(".cursor/mcp.json"),
}
_CODEX_BLOCK = re.compile(
    r'^\[mcp_servers\.headroom\]\ncommand = "(?:[^"\\\n]|\\.)*"\nargs = \[(?:[^\]\n]*, )?"mcp"\]\n',
    re.M,
)


@dataclass(frozen=True, slots=True)
class Change:
    """What install or uninstall did to an agent's config file."""

    agent: str
    path: Path
    action: str
    """`installed`, `updated`, `unchanged` (install); `removed`, `absent` (uninstall)."""

    def describe(self) -> str:
        who = AGENTS[self.agent]
        return {
            "installed": f"added the headroom MCP server to {who}'s {self.path}; restart {who}",
            "updated": f"updated the headroom MCP server in {who}'s {self.path}; restart {who}",
            "unchanged": f"the headroom MCP server is already in {who}'s {self.path}",
            "removed": f"removed the headroom MCP server from {who}'s {self.path}; restart {who}",
            "absent": f"the headroom MCP server is not in {who}'s {self.path}; nothing to remove",
        }[self.action]


def launcher() -> list[str]:
    """The command that starts this headroom's MCP server: the running `headroom` script by
    its absolute path, else this interpreter running the CLI module."""
    script = Path(os.path.abspath(sys.argv[0]))
    if script.name == "headroom" and script.is_file():
        return [str(script), "mcp"]
    return [sys.executable, "-m", "headroom.cli", "mcp"]


def config_file(agent: str, home: Path, environ: Mapping[str, str]) -> Path:
    """The file `agent` reads its user-level MCP servers from, as its own variables place
    it (CLAUDE_CONFIG_DIR for Claude Code, CODEX_HOME for Codex)."""
    _check_agent(agent)
    if agent == "claude" and environ.get("CLAUDE_CONFIG_DIR"):
        return Path(environ["CLAUDE_CONFIG_DIR"]) / ".claude.json"
    if agent == "codex" and environ.get("CODEX_HOME"):
        return Path(environ["CODEX_HOME"]) / "config.toml"
    return home / _FILES[agent]


def install(agent: str, path: Path, command: Sequence[str]) -> Change:
    """Adds (or updates) the headroom server, started by `command`, in `agent`'s config file."""
    _check_agent(agent)
    if not command:
        raise ConfigError("the command that starts the MCP server is empty; give its argv")
    if agent == "codex":
        return Change(agent, path, _install_toml(path, list(command)))
    entry: dict[str, Any] = {"command": command[0], "args": list(command[1:]), "env": {}}
    if agent == "claude":
        entry = {"type": "stdio", **entry}
    return Change(agent, path, _install_json(path, entry))


def uninstall(agent: str, path: Path) -> Change:
    """Removes the headroom server that `install` wrote from `agent`'s config file."""
    _check_agent(agent)
    if agent == "codex":
        return Change(agent, path, _uninstall_toml(path))
    return Change(agent, path, _uninstall_json(path))


def _check_agent(agent: str) -> None:
    if agent not in AGENTS:
        raise ConfigError(f"agent {agent!r} is not one of: {', '.join(AGENTS)}")


def _install_json(path: Path, entry: dict[str, Any]) -> str:
    original = _read(path)
    data = _json_document(path, original)
    servers = _json_servers(path, data)
    if NAME in servers:
        if not _is_ours(servers[NAME]):
            raise _foreign(path, "mcpServers.headroom")
        if servers[NAME] == entry:
            return "unchanged"
    action = "updated" if NAME in servers else "installed"
    data.setdefault("mcpServers", servers)[NAME] = entry
    _write(path, _json_text(data, original))
    return action


def _uninstall_json(path: Path) -> str:
    original = _read(path)
    data = _json_document(path, original)
    servers = _json_servers(path, data)
    if NAME not in servers:
        return "absent"
    if not _is_ours(servers[NAME]):
        raise _foreign(path, "mcpServers.headroom")
    del servers[NAME]
    if not servers:
        del data["mcpServers"]
    if data:
        _write(path, _json_text(data, original))
    else:
        _remove(path)
    return "removed"


def _json_document(path: Path, text: str | None) -> dict[str, Any]:
    if text is None or not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid JSON ({exc}); fix it by hand, then run this again "
            "(headroom does not overwrite a file it cannot read)"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds a JSON {type(data).__name__}, not an object; fix it")
    return data


def _json_servers(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    servers = data.get("mcpServers", {})
    if not isinstance(servers, dict):
        raise ConfigError(f"mcpServers in {path} is not an object; fix it by hand")
    return servers


def _is_ours(entry: Any) -> bool:
    """True for an entry of the shape install writes (by any headroom, from any path)."""
    return (
        isinstance(entry, dict)
        and set(entry) <= {"type", "command", "args", "env"}
        and isinstance(entry.get("args"), list)
        and entry["args"][-1:] == ["mcp"]
        and entry.get("env", {}) == {}
    )


def _json_text(data: dict[str, Any], original: str | None) -> str:
    """`data` as JSON in the original's indent, spacing, escaping and final newline."""
    indent: str | None = "  "
    if original and original.strip():
        found = re.search(r"\n([ \t]+)\S", original)
        indent = found.group(1) if found else None
    if indent is not None:
        separators = (",", ": ")
    else:  # one line: spaced as Python writes it, or compact as JSON.stringify does
        separators = (", ", ": ") if original and '": ' in original else (",", ":")
    ascii_only = original is not None and original.isascii()
    text = json.dumps(data, indent=indent, separators=separators, ensure_ascii=ascii_only)
    return text + ("\n" if original is None or original.endswith("\n") else "")


def _install_toml(path: Path, command: list[str]) -> str:
    original = _read(path) or ""
    data = _toml_document(path, original)
    entry = {"command": command[0], "args": command[1:]}
    block = (
        f"[mcp_servers.{NAME}]\ncommand = {json.dumps(command[0], ensure_ascii=False)}\n"
        f"args = {json.dumps(command[1:], ensure_ascii=False)}\n"
    )
    found = _codex_block(path, original, data)
    if found is not None:
        if found.group() == block:
            return "unchanged"
        text = original[: found.start()] + block + original[found.end() :]
    else:
        gap = "" if not original else "\n" if original.endswith("\n") else "\n\n"
        text = original + gap + block
    _check_toml(path, text, _with_entry(data, entry))
    _write(path, text)
    return "installed" if found is None else "updated"


def _uninstall_toml(path: Path) -> str:
    original = _read(path) or ""
    data = _toml_document(path, original)
    found = _codex_block(path, original, data)
    if found is None:
        return "absent"
    before, after = original[: found.start()], original[found.end() :]
    if before.endswith("\n\n"):
        before = before[:-1]  # the blank line install put before the table
    text = before + after
    _check_toml(path, text, _with_entry(data, None))
    if text.strip():
        _write(path, text)
    else:
        _remove(path)
    return "removed"


def _toml_document(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML ({exc}); fix it by hand, then run this again "
            "(headroom does not overwrite a file it cannot read)"
        ) from None


def _codex_block(path: Path, text: str, data: dict[str, Any]) -> re.Match[str] | None:
    """The headroom table install wrote; None when there is no headroom server at all."""
    servers = data.get("mcp_servers", {})
    if not isinstance(servers, dict) or NAME not in servers:
        return None
    found = _CODEX_BLOCK.search(text)
    if found is None:
        raise _foreign(path, "[mcp_servers.headroom]")
    return found


def _with_entry(data: dict[str, Any], entry: dict[str, Any] | None) -> dict[str, Any]:
    """The document with headroom's server set to `entry` (or removed, for None)."""
    current = data.get("mcp_servers")
    servers = {k: v for k, v in current.items() if k != NAME} if isinstance(current, dict) else {}
    if entry is not None:
        servers[NAME] = entry
    result = {key: value for key, value in data.items() if key != "mcp_servers"}
    if servers:
        result["mcp_servers"] = servers
    return result


def _check_toml(path: Path, text: str, expected: dict[str, Any]) -> None:
    try:
        edited = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        edited = None
    if edited is not None and edited.get("mcp_servers") == {}:
        del edited["mcp_servers"]  # a bare [mcp_servers] table the user wrote stays in place
    if edited != expected:
        raise ConfigError(
            f"editing {path} as text would change more than headroom's own server, so it "
            "was left alone; add or remove [mcp_servers.headroom] by hand"
        )


def _foreign(path: Path, where: str) -> ConfigError:
    return ConfigError(
        f"{where} in {path} was not written by `headroom mcp install` (or was edited since); "
        "headroom leaves it alone: change or remove it by hand"
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def _remove(path: Path) -> None:
    """Deletes the file left empty (the target of a symlink: the link stays, as it was)."""
    try:
        path.resolve().unlink()
    except OSError as exc:
        raise ConfigError(f"cannot remove {path}: {exc}") from None


def _write(path: Path, text: str) -> None:
    """Replaces the file (the target of a symlink) atomically, keeping its mode."""
    target = path.resolve()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = target.stat().st_mode & 0o7777 if target.exists() else 0o600
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.chmod(temporary, mode)
            os.replace(temporary, target)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc}") from None
