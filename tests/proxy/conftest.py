"""Servers on loopback for the proxy tests: the fake Anthropic API and the proxy in front
of it, each served by uvicorn in a thread on a free port; and the rig of the
retrieve-in-the-loop tests (tests/proxy/retrieve_rig.py), one set of servers a module."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from headroom.config import Settings
from headroom.proxy import create_app
from headroom.store import open_store
from tests.proxy.fake_anthropic import Fake

if TYPE_CHECKING:
    from tests.proxy.retrieve_rig import Rig, Servers


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        """Signals belong to the test runner's main thread."""


@dataclass
class Served:
    url: str
    server: _Server
    thread: threading.Thread


def serve(app: ASGIApp) -> Served:
    """Serves app on a free loopback port; returns once it answers /livez."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
    config = uvicorn.Config(app, log_level="warning", ws="none", lifespan="on")
    server = _Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for _ in range(50):
        try:
            if httpx.get(f"{url}/livez", timeout=5).status_code == 200:
                return Served(url, server, thread)
        except httpx.TransportError:
            continue
    raise RuntimeError(f"server at {url} never answered /livez")


def stop(served: Served) -> None:
    served.server.should_exit = True
    served.thread.join(timeout=10)


@pytest.fixture
def fake() -> Iterator[tuple[Fake, str]]:
    upstream = Fake()
    served = serve(upstream.app())
    yield upstream, served.url
    stop(served)


@pytest.fixture
def proxy_url(fake: tuple[Fake, str]) -> Iterator[str]:
    settings = Settings(store="memory://", anthropic_url=fake[1])
    served = serve(create_app(settings, store=open_store("memory://")))
    yield served.url
    stop(served)


@pytest.fixture(scope="module")
def rig_servers() -> Iterator[Servers]:
    """The rig's fakes and proxy, one set a test module."""
    # Imported here: the rig serves with this module's `serve`.
    from tests.proxy.retrieve_rig import running

    with running() as servers:
        yield servers


@pytest.fixture
def rig(rig_servers: Servers, request: pytest.FixtureRequest) -> Iterator[Rig]:
    """SDK clients naming the test as their session, the fakes' records cleared."""
    from tests.proxy.retrieve_rig import rig_for

    with rig_for(rig_servers, request.node.name) as rig:
        yield rig
