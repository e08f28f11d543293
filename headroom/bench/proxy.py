"""The proxy benchmark behind `headroom bench --proxy`: what the proxy adds to a request,
measured against going straight to the upstream.

The fake Anthropic API (`headroom.bench.upstream`) and `headroom proxy` run as processes of
their own, the proxy as a user runs it (SQLite store, default settings). Every corpus payload
is sent as a tool result, straight to the upstream and through the proxy in turn (the order
alternating), for a few rounds; each request is a session of its own, so the proxy compresses
the payload afresh every time. Reported: added latency percentiles for payloads up to 256 KB,
MB/s on larger ones (payload bytes over added time), the first streamed byte's added delay,
small requests per second through the proxy from concurrent clients, and the fault run
(`headroom.bench.faults`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from headroom.bench import faults
from headroom.bench.corpus import load_manifest
from headroom.errors import HeadroomError

SMALL = 256 * 1024
ROUNDS = 3
CLIENTS = 16
"""Concurrent clients of the small-request throughput run."""
THROUGHPUT_SECONDS = 3.0
NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass(frozen=True)
class Payload:
    name: str
    size: int
    body: bytes
    streamed: bytes


@dataclass(frozen=True)
class Sample:
    """One payload in one round: milliseconds direct and through the proxy."""

    name: str
    size: int
    direct_ms: float
    proxy_ms: float

    @property
    def added_ms(self) -> float:
        return self.proxy_ms - self.direct_ms


@dataclass
class ProxyResult:
    samples: list[Sample]
    first_byte: list[Sample]
    requests_per_s: float
    direct_requests_per_s: float
    faults: faults.FaultRun
    proxy_log_errors: int
    """Lines of the proxy's log with a traceback or an error."""


@dataclass(frozen=True)
class Servers:
    upstream: str
    proxy: str
    log: Path
    """The proxy's stdout and stderr."""


@contextlib.contextmanager
def running(home: Path, *proxy_args: str) -> Iterator[Servers]:
    """The fake upstream and `headroom proxy` in front of it, as processes, with the proxy's
    home and store in `home`; both are stopped on exit."""
    env = {**os.environ, "HEADROOM_HOME": str(home)}
    env.pop("HEADROOM_STORE", None)
    upstream = subprocess.Popen(
        [sys.executable, "-m", "headroom.bench.upstream"], stdout=subprocess.PIPE, env=env
    )
    log = home / "proxy.log"
    with contextlib.ExitStack() as stack:
        stack.callback(_stop, upstream)
        assert upstream.stdout is not None
        upstream_url = f"http://127.0.0.1:{int(upstream.stdout.readline())}"
        port = _free_port()
        command = [sys.executable, "-m", "headroom.cli", "proxy", "--port", str(port),
                   "--anthropic-url", upstream_url, *proxy_args]  # fmt: skip
        out = stack.enter_context(log.open("wb"))
        proxy = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        stack.callback(_stop, proxy)
        proxy_url = f"http://127.0.0.1:{port}"
        _wait_live(proxy_url, proxy, log)
        yield Servers(upstream_url, proxy_url, log)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_live(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/livez", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise HeadroomError(f"the proxy at {url} did not start; its log:\n{log.read_text()[-2000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def load(corpus: Path) -> list[Payload]:
    """Each corpus payload as a request body, plain and streamed."""
    payloads = []
    for record in load_manifest(corpus):
        with (corpus / record["file"]).open(encoding="utf-8", newline="") as handle:
            text = handle.read()
        plain = faults.request_body(False, text)
        payloads.append(Payload(record["file"], len(text.encode()), plain,
                                faults.request_body(True, text)))  # fmt: skip
    return payloads


def run(
    corpus: Path,
    rounds: int = ROUNDS,
    progress: Callable[[list[Any]], Iterator[Any]] | None = None,
) -> ProxyResult:
    """The whole proxy benchmark on `corpus`."""
    payloads = load(corpus)
    with (
        tempfile.TemporaryDirectory(prefix="headroom-proxy-bench-") as home,
        running(Path(home)) as servers,
    ):
        if True:
            steps = [(r, i) for r in range(rounds) for i in range(len(payloads))]
            # Without TCP_NODELAY a body sent after its headers waits for the server's
            # delayed ACK (40 ms on Linux); asyncio's sockets (the proxy's) set it already.
            nodelay = httpx.HTTPTransport(socket_options=[NODELAY])
            with httpx.Client(timeout=120, transport=nodelay) as client:
                timed = [
                    _pair(client, servers, payloads[i], f"bench-{r}-{i}", (r + i) % 2 == 0)
                    for r, i in (progress(steps) if progress else steps)
                ]
            samples = [s for s, _ in timed]
            first_byte = [f for _, f in timed if f is not None]
            direct = asyncio.run(_throughput(servers.upstream))
            through = asyncio.run(_throughput(servers.proxy))
            fault_run = asyncio.run(faults.run(servers.proxy, servers.upstream))
            errors = _log_errors(servers.log)
    return ProxyResult(samples, first_byte, through, direct, fault_run, errors)


def _pair(
    client: httpx.Client, servers: Servers, payload: Payload, session: str, direct_first: bool
) -> tuple[Sample, Sample | None]:
    """The payload direct and through the proxy (plain, then streamed when it is small)."""
    order = [servers.upstream, servers.proxy]
    if not direct_first:
        order.reverse()
    headers = faults.headers(session)
    plain = {url: _whole(client, url, payload.body, headers) for url in order}
    sample = Sample(payload.name, payload.size, plain[servers.upstream], plain[servers.proxy])
    if payload.size > SMALL:
        return sample, None
    headers = faults.headers(session + "-stream")
    first = {url: _first_byte(client, url, payload.streamed, headers) for url in order}
    return sample, Sample(payload.name, payload.size, first[servers.upstream], first[servers.proxy])


def _whole(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> float:
    start = time.perf_counter()
    response = client.post(f"{url}/v1/messages", content=body, headers=headers)
    elapsed = (time.perf_counter() - start) * 1000
    _check(response)
    return elapsed


def _first_byte(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> float:
    start = time.perf_counter()
    with client.stream("POST", f"{url}/v1/messages", content=body, headers=headers) as response:
        chunks = response.iter_raw()
        next(chunks)
        elapsed = (time.perf_counter() - start) * 1000
        for _ in chunks:
            pass
    _check(response)
    return elapsed


def _check(response: httpx.Response) -> None:
    if response.status_code != 200:
        raise HeadroomError(
            f"{response.url} answered {response.status_code}: {response.read()[:300]!r}"
        )


async def _throughput(url: str) -> float:
    """Tiny requests per second from `CLIENTS` concurrent clients, each its own session."""
    body = faults.request_body(False, "ok")
    limits = httpx.Limits(max_connections=CLIENTS)
    done = 0
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        deadline = time.perf_counter() + THROUGHPUT_SECONDS

        async def one_client(index: int) -> None:
            nonlocal done
            headers = faults.headers(f"small-{index}")
            while time.perf_counter() < deadline:
                response = await client.post(f"{url}/v1/messages", content=body, headers=headers)
                _check(response)
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(one_client(i) for i in range(CLIENTS)))
        return done / (time.perf_counter() - start)


def _log_errors(log: Path) -> int:
    lines = log.read_text(errors="replace").splitlines()
    return sum(1 for line in lines if "Traceback" in line or line.startswith("ERROR"))


def table(result: ProxyResult) -> str:
    """The proxy benchmark as a Markdown table: each measure, its target, and whether it meets it."""
    small = [s.added_ms for s in result.samples if s.size <= SMALL]
    large = [s for s in result.samples if s.size > SMALL]
    large_mb_s = _rate(large)
    first = [s.added_ms for s in result.first_byte]
    rows = [
        ("added latency p50, payloads <= 256 KB", "<= 5 ms", _pct(small, 50), 5.0, False),
        ("added latency p95, payloads <= 256 KB", "<= 50 ms", _pct(small, 95), 50.0, False),
        ("added latency p99, payloads <= 256 KB", "", _pct(small, 99), None, False),
        ("throughput, payloads > 256 KB (MB/s of added time)", ">= 20", large_mb_s, 20.0, True),
        ("first streamed byte, added p50", "<= 5 ms", _pct(first, 50), 5.0, False),
        ("first streamed byte, added p95", "", _pct(first, 95), None, False),
        (
            f"small requests/s through the proxy ({CLIENTS} clients)",
            ">= 200",
            result.requests_per_s,
            200.0,
            True,
        ),
    ]
    lines = ["| measure | target | measured | met |", "|---|---:|---:|:---:|"]
    for name, target, value, limit, higher in rows:
        met = (
            ""
            if limit is None
            else ("yes" if (value >= limit if higher else value <= limit) else "NO")
        )
        lines.append(f"| {name} | {target} | {value:.1f} | {met} |")
    run = result.faults
    lines.append(f"| faults: {run.summary()} | none lost or altered | "
                 f"{len(run.lost)} lost, {len(run.altered)} altered | {'yes' if run.ok else 'NO'} |")  # fmt: skip
    lines.append(
        f"\n{len(small)} requests <= 256 KB and {len(large)} larger ({len(result.samples)} in all, "
        f"{len(result.first_byte)} streamed); straight to the upstream: "
        f"{result.direct_requests_per_s:.0f} small requests/s; errors in the proxy's log: "
        f"{result.proxy_log_errors}"
    )
    return "\n".join(lines)


def _pct(values: list[float], pct: float) -> float:
    """The nearest-rank percentile (NaN for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered), math.ceil(pct / 100 * len(ordered))) - 1)]


def _rate(samples: list[Sample]) -> float:
    """Payload MB over the time the proxy added, summed over `samples`."""
    added = sum(max(s.added_ms, 0.0) for s in samples) / 1000
    return sum(s.size for s in samples) / 1e6 / added if added else float("inf")


def as_json(result: ProxyResult) -> str:
    data = asdict(result)
    data["faults"]["ok"] = result.faults.ok
    return json.dumps(data, indent=1)
