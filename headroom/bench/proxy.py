"""The proxy benchmark behind `headroom bench --proxy`: what the proxy adds to a request,
measured against going straight to the upstream.

The fake Anthropic API (`headroom.bench.upstream`) and `headroom proxy` run as processes of
their own, the proxy as a user runs it (SQLite store, default settings). Every corpus payload
is sent as a tool result, straight to the upstream and through the proxy in turn (the order
alternating), for a few rounds; each request is a session of its own, so the proxy compresses
the payload afresh. The same request is then sent again (its decisions replayed, as on an
agent's later turns) and with `x-headroom-bypass` (the HTTP hop alone); payloads up to 256 KB
are streamed too, for the first byte's delay. Requests go one at a time, each as soon as the
previous one is answered, so the proxy's bookkeeping after an answer competes with the next.

Reported: added latency percentiles for payloads up to 256 KB, MB/s on larger ones (payload
bytes over added time), the first streamed byte's added delay, small requests per second
through the proxy from concurrent clients, and the fault run (`headroom.bench.faults`).
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
FAULT_REQUESTS = 1000
NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass(frozen=True)
class Payload:
    name: str
    size: int
    body: bytes
    streamed: bytes


@dataclass(frozen=True)
class Sample:
    """One payload in one round, in milliseconds: straight to the upstream, and through the
    proxy on first sight (compressed), replayed (the same request again in its session:
    every decision replayed) and bypassed (`x-headroom-bypass`: the HTTP hop alone)."""

    name: str
    size: int
    direct_ms: float
    proxy_ms: float
    replay_ms: float = 0.0
    bypass_ms: float = 0.0

    @property
    def added_ms(self) -> float:
        return self.proxy_ms - self.direct_ms


@dataclass
class ProxyResult:
    samples: list[Sample]
    first_byte: list[Sample]
    """Streamed requests: milliseconds to the first byte of the answer (never bypassed)."""
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
    if process.stdout is not None:
        process.stdout.close()


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
    *,
    seconds: float = THROUGHPUT_SECONDS,
    fault_requests: int = FAULT_REQUESTS,
) -> ProxyResult:
    """The whole proxy benchmark on `corpus`: `rounds` of timed requests, `seconds` of small
    requests each way, and `fault_requests` concurrent requests with faults."""
    payloads = load(corpus)
    with (
        tempfile.TemporaryDirectory(prefix="headroom-proxy-bench-") as home,
        running(Path(home)) as servers,
    ):
        steps = [(r, i) for r in range(rounds) for i in range(len(payloads))]
        # Without TCP_NODELAY a body sent after its headers waits for the server's delayed
        # ACK (40 ms on Linux); asyncio's sockets (the servers') set it already.
        nodelay = httpx.HTTPTransport(socket_options=[NODELAY])
        with httpx.Client(timeout=120, transport=nodelay) as client:
            timed = [
                _pair(client, servers, payloads[i], f"bench-{r}-{i}", (r + i) % 2 == 0)
                for r, i in (progress(steps) if progress else steps)
            ]
        direct = asyncio.run(_throughput(servers.upstream, seconds))
        through = asyncio.run(_throughput(servers.proxy, seconds))
        fault_run = asyncio.run(faults.run(servers.proxy, servers.upstream, fault_requests))
        errors = len(log_errors(servers.log))
    samples = [sample for sample, _ in timed]
    first_byte = [first for _, first in timed if first is not None]
    return ProxyResult(samples, first_byte, through, direct, fault_run, errors)


def _pair(
    client: httpx.Client, servers: Servers, payload: Payload, session: str, direct_first: bool
) -> tuple[Sample, Sample | None]:
    """The payload direct and through the proxy, then replayed and bypassed; streamed too
    when it is small."""
    order = [servers.upstream, servers.proxy]
    if not direct_first:
        order.reverse()
    headers = faults.headers(session)
    plain = {url: _whole(client, url, payload.body, headers) for url in order}
    replay = _whole(client, servers.proxy, payload.body, headers)
    bypass = _whole(client, servers.proxy, payload.body, {**headers, "x-headroom-bypass": "true"})
    direct = plain[servers.upstream]
    sample = Sample(payload.name, payload.size, direct, plain[servers.proxy], replay, bypass)
    if payload.size > SMALL:
        return sample, None
    headers = faults.headers(session + "-stream")
    first = {url: _first_byte(client, url, payload.streamed, headers) for url in order}
    again = _first_byte(client, servers.proxy, payload.streamed, headers)
    streamed = Sample(payload.name, payload.size, first[servers.upstream], first[servers.proxy],
                      again)  # fmt: skip
    return sample, streamed


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


async def _throughput(url: str, seconds: float) -> float:
    """Tiny requests per second from `CLIENTS` concurrent clients, each a session of its own."""
    body = faults.request_body(False, "ok")
    limits = httpx.Limits(max_connections=CLIENTS)
    done = 0
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        deadline = time.perf_counter() + seconds

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


def log_errors(log: Path) -> list[str]:
    """The lines of a proxy log that report an error or start a traceback."""
    lines = log.read_text(errors="replace").splitlines()
    return [line for line in lines if "Traceback" in line or line.startswith("ERROR")]


def table(result: ProxyResult) -> str:
    """The proxy benchmark as a Markdown table: each measure, its target, whether it is met."""
    small = [s for s in result.samples if s.size <= SMALL]
    large = [s for s in result.samples if s.size > SMALL]
    added = [s.added_ms for s in small]
    replayed = [s.replay_ms - s.direct_ms for s in small]
    bypassed = [s.bypass_ms - s.direct_ms for s in small]
    first = [s.added_ms for s in result.first_byte]
    first_again = [s.replay_ms - s.direct_ms for s in result.first_byte]
    p50, p95, rate = _pct(added, 50), _pct(added, 95), _rate(large)
    run = result.faults
    rows = [
        ("added latency p50, payloads <= 256 KB (compressed on first sight)", "<= 5 ms",
         f"{p50:.1f} ms", _met(p50 <= 5)),
        ("added latency p95, payloads <= 256 KB", "<= 50 ms", f"{p95:.1f} ms", _met(p95 <= 50)),
        ("added latency p99, payloads <= 256 KB", "", f"{_pct(added, 99):.1f} ms", ""),
        ("the same requests replayed (decisions replayed): p50 / p95", "",
         f"{_pct(replayed, 50):.1f} / {_pct(replayed, 95):.1f} ms", ""),
        ("the same requests with x-headroom-bypass (the HTTP hop): p50 / p95", "",
         f"{_pct(bypassed, 50):.1f} / {_pct(bypassed, 95):.1f} ms", ""),
        ("payloads > 256 KB: MB per second of added time", ">= 20 MB/s", f"{rate:.1f} MB/s",
         _met(rate >= 20)),
        ("first streamed byte, added: p50 / p95", "<= 5 ms (p50)",
         f"{_pct(first, 50):.1f} / {_pct(first, 95):.1f} ms", _met(_pct(first, 50) <= 5)),
        ("first streamed byte, added, the same requests replayed: p50 / p95", "",
         f"{_pct(first_again, 50):.1f} / {_pct(first_again, 95):.1f} ms", ""),
        (f"small requests/s through the proxy ({CLIENTS} clients)", ">= 200",
         f"{result.requests_per_s:.0f}", _met(result.requests_per_s >= 200)),
        (f"{run.requests} concurrent requests, upstream faults injected", "none lost or altered",
         f"{len(run.lost)} lost, {len(run.altered)} altered in {run.seconds:.1f} s; proxy "
         + ("up" if run.alive else "DOWN"), _met(run.ok)),
    ]  # fmt: skip
    lines = ["| measure | target | measured | met |", "|---|---|---:|:---:|"]
    lines += [f"| {name} | {target} | {value} | {met} |" for name, target, value, met in rows]
    lines.append(
        f"\n{len(small)} requests <= 256 KB, {len(large)} larger, {len(result.first_byte)} "
        f"streamed; straight to the upstream: {result.direct_requests_per_s:.0f} small "
        f"requests/s; errors in the proxy's log: {result.proxy_log_errors}"
    )
    return "\n".join(lines)


def _met(ok: bool) -> str:
    return "yes" if ok else "NO"


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
