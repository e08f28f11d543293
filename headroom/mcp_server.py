"""`headroom mcp`: an MCP server over stdio whose tools fetch content and return it compressed.

A tool that takes content the model already holds makes it pay for that content twice, the
second time as output tokens. So the main tools fetch the content themselves: `headroom_read`
reads a file as the agent's own Read tool shows it (line-numbered), `headroom_run` runs a shell
command as its Bash tool does, and both return the result through the pipeline, the path or the
command as the router's hint. `headroom_retrieve` gives back what a marker elided,
`headroom_compress` compresses content from elsewhere and `headroom_stats` shows the ledger.

The store is the settings' store, so a running proxy and this server share originals. Argument
problems and unreadable files come back as tool errors (`isError`) the model can act on;
compression never fails a call: on any failure the original goes back whole. Compressions are
counted in the ledger under the session `mcp`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp import types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from headroom import __version__, markers, mcp_fetch, tokens
from headroom.api import retrieve_from, slice_lines, store_for
from headroom.compressors import BUILTINS
from headroom.config import Settings
from headroom.conversation.accounts import load_ledger, update_ledger
from headroom.conversation.live_zone import remember_origin
from headroom.conversation.report import render
from headroom.errors import ConfigError, HeadroomError, StoreError
from headroom.mcp_fetch import execute, read_text
from headroom.pipeline import Request, compress_payload
from headroom.router import Hints
from headroom.store import Store

SESSION = "mcp"
"""The ledger session this server's compressions are counted in."""
DEFAULT_TIMEOUT = 120.0
MAX_TIMEOUT = 600.0

INSTRUCTIONS = (
    "headroom returns large file reads and command outputs compressed, with every original kept. "
    "Prefer headroom_read over Read for large files and headroom_run over Bash for commands with "
    "long output. A line [headroom KEY: ...] or [... N lines elided ..., lines=A-B] marks what "
    "was left out: headroom_retrieve with that key (and lines or grep) gives it back exactly."
)


def _tool(name: str, description: str, properties: dict[str, Any], *required: str) -> types.Tool:
    schema = {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }
    return types.Tool(name=name, description=description, input_schema=schema)


_LINES = {"type": "string", "description": "Only lines A-B (1-based, inclusive), e.g. 120-180."}
TOOLS = (
    _tool(
        "headroom_read",
        "Read a text file, line-numbered like Read, compressed when large. Use it instead of "
        "Read for big files; redeem any elided part with headroom_retrieve.",
        {"path": {"type": "string", "description": "The file's path."}, "lines": _LINES},
        "path",
    ),
    _tool(
        "headroom_run",
        "Run a shell command like Bash; returns its exit code and its output (stdout and stderr), "
        "compressed when long. Use it for builds, tests, logs, searches with long output.",
        {
            "command": {"type": "string", "description": "The shell command."},
            "cwd": {"type": "string", "description": "Directory to run it in."},
            "timeout": {
                "type": "number",
                "description": f"Seconds before it is killed (default {DEFAULT_TIMEOUT:.0f}).",
                "exclusiveMinimum": 0,
                "maximum": MAX_TIMEOUT,
            },
        },
        "command",
    ),
    _tool(
        "headroom_retrieve",
        "Get back exactly what a headroom marker left out: KEY from [headroom KEY: ...] or "
        "key=KEY, the whole original or only lines A-B (lines=A-B markers) or grep matches.",
        {
            "key": {"type": "string", "description": "The key the marker names."},
            "lines": _LINES,
            "grep": {"type": "string", "description": "A regular expression; matching lines."},
        },
        "key",
    ),
    _tool(
        "headroom_compress",
        "Compress content you got from elsewhere (not a file or command: use headroom_read or "
        "headroom_run for those, so the content is not sent twice).",
        {
            "content": {"type": "string", "description": "The text to compress."},
            "kind": {"type": "string", "enum": list(BUILTINS), "description": "Its kind."},
            "query": {"type": "string", "description": "The question the output should serve."},
        },
        "content",
    ),
    _tool("headroom_stats", "What headroom saved: its store and its ledger.", {}),
)


@dataclass(frozen=True, slots=True)
class Reply:
    """A tool's answer: its text, and whether it is an error the model should act on."""

    text: str
    error: bool = False


def call(name: str, arguments: dict[str, Any], store: Store, settings: Settings) -> Reply:
    """Runs one tool call; headroom's own errors become tool errors."""
    tool = next((one for one in TOOLS if one.name == name), None)
    if tool is None:
        names = ", ".join(one.name for one in TOOLS)
        raise MCPError(types.INVALID_PARAMS, f"no tool named {name!r}; the tools are: {names}")
    try:
        return _HANDLERS[name](_checked(tool, arguments), store, settings)
    except HeadroomError as exc:
        return Reply(str(exc), error=True)


def _checked(tool: types.Tool, arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments, checked against the tool's schema; a null counts as absent."""
    args = {name: value for name, value in arguments.items() if value is not None}
    properties: dict[str, Any] = tool.input_schema["properties"]
    for name in args:
        if name not in properties:
            accepted = ", ".join(properties) or "no arguments"
            raise ConfigError(f"{tool.name} has no argument {name!r}; it takes {accepted}")
    for name in tool.input_schema["required"]:
        if name not in args:
            raise ConfigError(f"{tool.name} needs the argument {name!r}")
    for name, value in args.items():
        spec = properties[name]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (isinstance(value, str) if spec["type"] == "string" else number):
            raise ConfigError(f"{tool.name}: {name} must be a {spec['type']}, got {value!r}")
        if "enum" in spec and value not in spec["enum"]:
            raise ConfigError(f"{tool.name}: {name}={value!r} is not one of {spec['enum']}")
    return args


def _read(args: dict[str, Any], store: Store, settings: Settings) -> Reply:
    path = Path(args["path"]).expanduser()
    text = read_text(path)
    if not text:
        return Reply(f"{path} is empty")
    numbered = _numbered(text)
    spec = args.get("lines")
    if spec is None:
        return Reply(_compressed(Request(numbered, Hints(path=str(path))), store, settings))
    part = slice_lines(numbered, spec)
    if not part:
        count = numbered.count("\n") + 1
        raise ConfigError(f"lines={spec} is past the end of {path}, which has {count} lines")
    small = not tokens.at_least(part, settings.read_whole_below_tokens)
    request = Request(part, Hints(path=str(path)), ranged_read=small)
    return Reply(_compressed(request, store, settings))


def _numbered(text: str) -> str:
    """The text as Claude Code's Read shows it: each line after its number and an arrow."""
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return "\n".join(f"{number:>6}→{line}" for number, line in enumerate(lines, 1))


def _run(args: dict[str, Any], store: Store, settings: Settings) -> Reply:
    command: str = args["command"]
    timeout = float(args.get("timeout", DEFAULT_TIMEOUT))
    if not 0 < timeout <= MAX_TIMEOUT:
        raise ConfigError(
            f"timeout={timeout:g} is out of range; give seconds above 0, at most {MAX_TIMEOUT:.0f}"
        )
    cwd = Path(args.get("cwd") or Path.cwd()).expanduser()
    if not cwd.is_dir():
        raise ConfigError(f"cwd {cwd} is not a directory; give an existing one")
    capture, code, timed_out = execute(command, cwd, timeout)
    body = b"".join(capture.chunks).decode("utf-8", errors="replace").rstrip("\n")
    shown = _compressed(Request(body, Hints(command=command)), store, settings) if body else ""
    notes = []
    if capture.seen > mcp_fetch.MAX_BYTES:
        notes.append(
            f"[output cut: the command printed {capture.seen:,} bytes; the first {mcp_fetch.MAX_BYTES:,} "
            "are shown. Redirect it to a file and search that instead]"
        )
    if capture.open:
        notes.append(
            "[background processes it started still hold its output; what they print "
            "from now on is not shown: redirect their output to a file to keep it]"
        )
    if timed_out:
        notes.append(
            f"[timed out after {timeout:g} s: the command's process group was killed; "
            f"give a larger timeout (at most {MAX_TIMEOUT:.0f}) or run it in the background]"
        )
    elif code < 0:
        notes.append(f"[killed by signal {-code}]")
    else:
        notes.append(f"[exit code {code}]")
    return Reply("\n".join([shown or "(no output)", *notes]), error=timed_out)


_KEY = re.compile(markers.KEY_PATTERN)


def _retrieve(args: dict[str, Any], store: Store, settings: Settings) -> Reply:
    key = args["key"].strip().lower()
    if not _KEY.fullmatch(key):
        raise ConfigError(
            f"{args['key']!r} is not a headroom key: 16 hex characters, as in "
            "[headroom 9f86d081884c7d65: ...] or key=9f86d081884c7d65"
        )
    text = retrieve_from(store, key, args.get("lines"), args.get("grep"))
    if text is None:
        location = store.stats().location
        return Reply(
            f"key {key} is unknown to the store at {location}; check the key against the "
            "marker, and that whatever produced it uses the same store (HEADROOM_STORE)",
            error=True,
        )
    if not text and (args.get("lines") or args.get("grep")):
        return Reply("(no lines: the slice asked for is empty in the original)")
    return Reply(text)


def _compress(args: dict[str, Any], store: Store, settings: Settings) -> Reply:
    request = Request(args["content"], query=args.get("query", ""), kind=args.get("kind"))
    return Reply(_compressed(request, store, settings))


def _stats(args: dict[str, Any], store: Store, settings: Settings) -> Reply:
    held = store.stats()
    summary = (
        f"headroom store {held.location}: {held.keys:,} originals "
        f"({held.original_bytes:,} bytes, {held.stored_bytes:,} stored), {held.expired:,} expired"
    )
    return Reply(f"{summary}\n\n{render(load_ledger(store))}".rstrip("\n"))


_HANDLERS: dict[str, Callable[[dict[str, Any], Store, Settings], Reply]] = {
    "headroom_read": _read,
    "headroom_run": _run,
    "headroom_retrieve": _retrieve,
    "headroom_compress": _compress,
    "headroom_stats": _stats,
}


def _compressed(request: Request, store: Store, settings: Settings) -> str:
    """The request's text through the pipeline, counted in the ledger; the text itself when
    anything fails (fail open)."""
    try:
        transform = compress_payload(request, store, settings)
    except Exception:  # fail open: the caller gets its content whole
        return request.text
    if transform.skipped is None:
        try:
            remember_origin(transform, SESSION, store)
            tokens_in, tokens_out = transform.tokens_in, transform.tokens_out
            update_ledger(
                store,
                SESSION,
                lambda ledger: ledger.record_compression(
                    SESSION, transform.kind, tokens_in, tokens_out
                ),
            )
        except StoreError:
            pass  # statistics never stand between the caller and its content
    return transform.output


def build_server(store: Store, settings: Settings) -> Server[Any]:
    """The MCP server answering the tools above from `store`."""

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=list(TOOLS))

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        reply = await anyio.to_thread.run_sync(
            call, params.name, params.arguments or {}, store, settings
        )
        return types.CallToolResult(
            content=[types.TextContent(text=reply.text)], is_error=reply.error
        )

    return Server(
        "headroom",
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def serve(settings: Settings) -> None:
    """Serves the tools over stdin and stdout until the client closes them."""
    server = build_server(store_for(settings), settings)

    async def run() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(run)
