"""A small closed-loop HTTP/1.1 load generator on asyncio streams (like wrk, in-process).

``concurrency`` keep-alive connections each send one request, wait for the whole
response, then send the next, until ``total`` requests went out. Requests are
raw bytes made by ``make(i)`` just before sending (so a signature can carry a
fresh timestamp). It avoids an HTTP client library's per-request cost, which on
a 2-core machine would otherwise eat into the server being measured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Load:
    """What a run saw: per-request latency (seconds) and status, and the wall time of the run."""

    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    wall: float = 0.0

    @property
    def ok(self) -> int:
        return sum(200 <= s < 300 for s in self.statuses)

    @property
    def rate(self) -> float:
        """Successful requests per second."""
        return self.ok / self.wall if self.wall > 0 else 0.0


def request(method: str, path: str, host: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """Raw HTTP/1.1 request bytes with Content-Length and keep-alive."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server closes) of one response with a Content-Length (or chunked) body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, body, headers.get("connection", "").lower() == "close"


async def _run(host: str, port: int, make: Callable[[int], bytes], total: int, concurrency: int,
               keep_bodies: bool) -> Load:
    load = Load()
    counter = iter(range(total))

    async def connection() -> None:
        reader = writer = None
        for i in counter:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            payload = make(i)
            sent = time.perf_counter()
            writer.write(payload)
            await writer.drain()
            status, body, closing = await _read_response(reader)
            load.latencies.append(time.perf_counter() - sent)
            load.statuses.append(status)
            if keep_bodies:
                load.bodies.append(body)
            if closing:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    load.wall = time.perf_counter() - started
    return load


def run(port: int, make: Callable[[int], bytes], total: int, concurrency: int, host: str = "127.0.0.1",
        keep_bodies: bool = False) -> Load:
    """Send ``total`` requests over ``concurrency`` connections; returns latencies, statuses, wall time."""
    return asyncio.run(_run(host, port, make, total, concurrency, keep_bodies))
