"""`headroom proxy`: serve the HTTP proxy; flags override their `HEADROOM_*` twins.

With `--workers N` the proxy runs as N processes on one listening socket, sharing the store
(the SQLite file or Redis; a memory store cannot be shared). Each worker builds its app from
the environment (`headroom.proxy.app:app_from_env`), so the command hands its settings down
as `HEADROOM_*` variables.
"""

from __future__ import annotations

import copy
import os
import re
import socket
from dataclasses import replace
from typing import Any

import click

from headroom.config import MODES, Settings
from headroom.errors import ConfigError
from headroom.store import open_store


@click.command("proxy")
@click.option("--host", default=None, help="Address to listen on (HEADROOM_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (HEADROOM_PORT, 8787).")
@click.option("--mode", type=click.Choice(MODES), default=None, help="cache or token.")
@click.option(
    "--store",
    default=None,
    help="Store URL: sqlite:////abs/path.db, redis://HOST:PORT/DB or memory://.",
)
@click.option("--anthropic-url", default=None, help="Anthropic API base URL to forward to.")
@click.option("--openai-url", default=None, help="OpenAI API base URL (with /v1) to forward to.")
@click.option("--gemini-url", default=None, help="Gemini API base URL to forward to.")
@click.option("--admin-token", default=None, help="Bearer token for the admin endpoints.")
@click.option("--bedrock-url", default=None, help="Bedrock Runtime base URL to forward to.")
@click.option("--bedrock-region", default=None, help="AWS region Bedrock requests are signed for.")
@click.option(
    "--workers", type=click.IntRange(min=1), default=None,
    help="Worker processes sharing the store (HEADROOM_WORKERS, 1).",
)  # fmt: skip
@click.option(
    "--compress-timeout-ms", type=click.IntRange(min=0), default=None,
    help="Compression time per request; the rest is forwarded as it came (0: no limit).",
)  # fmt: skip
def proxy_command(
    host: str | None,
    port: int | None,
    mode: str | None,
    store: str | None,
    anthropic_url: str | None,
    openai_url: str | None,
    gemini_url: str | None,
    admin_token: str | None,
    bedrock_url: str | None,
    bedrock_region: str | None,
    workers: int | None,
    compress_timeout_ms: int | None,
) -> None:
    """Serve the proxy; point ANTHROPIC_BASE_URL (or OPENAI_BASE_URL, with /v1) at it."""
    import uvicorn

    from headroom.proxy import create_app

    settings = settings_with(
        host=host,
        port=port,
        mode=mode,
        store=store,
        anthropic_url=anthropic_url,
        openai_url=openai_url,
        gemini_url=gemini_url,
        admin_token=admin_token,
        bedrock_url=bedrock_url,
        bedrock_region=bedrock_region,
        workers=workers,
        compress_timeout_ms=compress_timeout_ms,
    )
    if settings.workers == 1:
        app = create_app(settings)  # opens the store: a bad --store fails before the banner
        click.echo(banner(settings), err=True)
        uvicorn.run(app, host=settings.host, port=settings.port, ws="none",
                    log_config=log_config())  # fmt: skip
    else:
        serve_workers(settings)


def banner(settings: Settings) -> str:
    """What the proxy says on start: where it listens, its store, and the lines that point an
    agent or SDK at it."""
    local = settings.host in ("127.0.0.1", "localhost", "::1")
    shown = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    url = f"http://{shown}:{settings.port}"
    store = re.sub(r"//([^/@]*):[^/@]*@", r"//\1:***@", settings.store_url())
    lines = [
        f"headroom proxy on {url} (store {store}, mode {settings.mode})",
        "Point your agent at it (Claude Code, the Anthropic SDKs; Codex, the OpenAI SDKs):",
        f"  export ANTHROPIC_BASE_URL={url}",
        f"  export OPENAI_BASE_URL={url}/v1",
    ]
    if not local:
        lines.append(
            f"Listening on {settings.host}, beyond loopback: the admin endpoints answer only "
            "with --admin-token, and anyone who reaches Bedrock routes uses this machine's "
            "AWS credentials."
        )
    return "\n".join(lines)


def serve_workers(settings: Settings) -> None:
    """The proxy as `settings.workers` processes sharing one socket and one store."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    if settings.store_url().startswith("memory:"):
        raise ConfigError(
            f"{settings.workers} workers cannot share a memory:// store; use the SQLite file "
            "(the default, or sqlite:////abs/path.db) or redis://HOST:PORT/DB"
        )
    open_store(settings.store_url()).close()  # each worker opens its own; a bad one fails here
    click.echo(banner(settings), err=True)
    os.environ.update(settings.environ())
    config = uvicorn.Config(
        "headroom.proxy.app:app_from_env", factory=True, host=settings.host, port=settings.port,
        workers=settings.workers, ws="none", log_config=log_config(),
    )  # fmt: skip
    listening = config.bind_socket()
    # Connections inherit it: asyncio turns Nagle off only on sockets it made itself, and with
    # Nagle on, an answer on a kept-alive connection waits for the client's delayed ACK.
    listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    Multiprocess(config, sockets=[listening]).run()


def log_config() -> dict[str, Any]:
    """uvicorn's logging, with headroom's own warnings (an upstream that cut its answer)
    printed the same way."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["headroom"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def settings_with(**flags: object) -> Settings:
    """The environment's settings with each flag that was given laid over its twin."""
    given = {name: value for name, value in flags.items() if value is not None}
    return replace(Settings.from_env(), **given)  # type: ignore[arg-type]
