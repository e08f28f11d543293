"""A real `redis-server` for the tests: started on a free loopback port in a temporary
directory, with nothing written to disk, and stopped when the tests are done.

The server is Debian's `redis-server` package, which `bash scripts/test` installs; without
it the tests that need Redis fail and say so, rather than skip.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

STARTUP = 10.0
"""Seconds a server may take to answer PING."""


@dataclass
class RedisServer:
    """One running redis-server and the URL of its database 0."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(directory: Path) -> RedisServer:
    """A redis-server in `directory` answering PING on 127.0.0.1; fails the test without one."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed; the Redis store tests need a real one. "
            "Run the tests with `bash scripts/test`, which installs Debian's redis-server package."
        )
    for _ in range(3):  # another process may take the free port before the server binds it
        server = _launch(binary, directory, free_port())
        if _answers(server):
            return server
        stop(server)
    pytest.fail(f"redis-server did not start; its log:\n{server.log.read_text(errors='replace')}")


def stop(server: RedisServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def _launch(binary: str, directory: Path, port: int) -> RedisServer:
    log = directory / f"redis-{port}.log"
    command = [
        binary,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(directory),
        "--save", "",
        "--appendonly", "no",
        "--logfile", str(log),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return RedisServer(f"redis://127.0.0.1:{port}/0", process, log)


def _answers(server: RedisServer) -> bool:
    """Waits until the server answers PING; False if it exits or stays silent."""
    client = redis.Redis.from_url(server.url, socket_connect_timeout=1, retry=None)
    deadline = time.monotonic() + STARTUP
    try:
        while time.monotonic() < deadline and server.process.poll() is None:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                time.sleep(0.01)
        return False
    finally:
        client.close()
