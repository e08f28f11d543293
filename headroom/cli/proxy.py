"""`headroom proxy`: serve the HTTP proxy; flags override their `HEADROOM_*` twins."""

from __future__ import annotations

from dataclasses import replace

import click

from headroom.config import MODES, Settings


@click.command("proxy")
@click.option("--host", default=None, help="Address to listen on (HEADROOM_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (HEADROOM_PORT, 8787).")
@click.option("--mode", type=click.Choice(MODES), default=None, help="cache or token.")
@click.option("--store", default=None, help="Store URL, e.g. sqlite:////abs/path.db or memory://.")
@click.option("--anthropic-url", default=None, help="Anthropic API base URL to forward to.")
@click.option("--openai-url", default=None, help="OpenAI API base URL (with /v1) to forward to.")
@click.option("--gemini-url", default=None, help="Gemini API base URL to forward to.")
@click.option("--admin-token", default=None, help="Bearer token for the admin endpoints.")
@click.option("--bedrock-url", default=None, help="Bedrock Runtime base URL to forward to.")
@click.option("--bedrock-region", default=None, help="AWS region Bedrock requests are signed for.")
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
    )
    click.echo(f"headroom proxy on http://{settings.host}:{settings.port}", err=True)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, ws="none")


def settings_with(**flags: object) -> Settings:
    """The environment's settings with each flag that was given laid over its twin."""
    given = {name: value for name, value in flags.items() if value is not None}
    return replace(Settings.from_env(), **given)  # type: ignore[arg-type]
