"""The HTTP proxy: agents and SDKs point their base URL here and get the same answers, with
compressed tool results forwarded upstream. `create_app` builds the ASGI app."""

from __future__ import annotations

from headroom.proxy.app import create_app

__all__ = ["create_app"]
