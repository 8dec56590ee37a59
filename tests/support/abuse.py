"""One abusive address against a real daphne, and a legitimate client from another one.

Loopback answers on all of 127.0.0.0/8, so the abuser connects from ``ATTACKER``
(127.0.0.1) and the legitimate client binds its sockets to ``LEGIT`` (127.0.0.2): the
server sees two clients. Shared by tests/test_abuse_live.py and bench/abuse.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from dataclasses import dataclass, field

import httpx

ATTACKER = "127.0.0.1"
LEGIT = "127.0.0.2"


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, MiB, from /proc."""
    fields: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


@dataclass
class Answer:
    """What one abusive connection got: the status and error code, when it ended."""

    status: int | None = None
    code: str | None = None
    ended_after_s: float | None = None  # connect -> the server's answer or close
    sent: int = 0  # request bytes sent before the answer


def parse_answer(raw: bytes, answer: Answer) -> None:
    head, _, body = raw.partition(b"\r\n\r\n")
    if head.startswith(b"HTTP/1.1 "):
        answer.status = int(head[9:12])
        with contextlib.suppress(ValueError, KeyError, TypeError):
            answer.code = json.loads(body)["error"]["code"]


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    data = b""
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            data += chunk
    return data


async def open_from(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def trickle(port: int, source: str, every_s: float, give_up_s: float) -> Answer:
    """A slowloris connection: a request line, then one header byte every ``every_s``."""
    answer = Answer()
    start = time.monotonic()
    try:
        reader, writer = await open_from(port, source)
    except OSError:
        answer.ended_after_s = 0.0
        return answer
    reading = asyncio.ensure_future(_read_all(reader))
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: abuse\r\nX-Slow: ")
        while time.monotonic() - start < give_up_s:
            done, _ = await asyncio.wait({reading}, timeout=every_s)
            if done:
                break
            writer.write(b"a")
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        if reading.done():
            answer.ended_after_s = time.monotonic() - start
            parse_answer(reading.result(), answer)
    finally:
        reading.cancel()
        writer.close()
    return answer


async def declared_body(port: int, source: str, path: str, length: int) -> Answer:
    """Headers announcing a ``length``-byte body, and not one byte of it."""
    answer = Answer()
    start = time.monotonic()
    reader, writer = await open_from(port, source)
    head = f"POST {path} HTTP/1.1\r\nHost: abuse\r\nContent-Length: {length}\r\n\r\n"
    writer.write(head.encode())
    try:
        raw = await asyncio.wait_for(_read_all(reader), timeout=10)
        answer.ended_after_s = time.monotonic() - start
        parse_answer(raw, answer)
    finally:
        writer.close()
    return answer


async def streamed_body(
    port: int, source: str, path: str, total: int, chunk: int = 65536, every_s: float = 0.0
) -> Answer:
    """A chunked body of up to ``total`` bytes (``every_s`` between chunks), sent until
    the server answers or stops reading."""
    answer = Answer()
    start = time.monotonic()
    reader, writer = await open_from(port, source)
    reading = asyncio.ensure_future(_read_all(reader))
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: abuse\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    )
    data = b"%x\r\n" % chunk + b"x" * chunk + b"\r\n"
    try:
        with contextlib.suppress(ConnectionError):
            while answer.sent < total and not reading.done():
                writer.write(data)
                await asyncio.wait_for(writer.drain(), timeout=10)
                answer.sent += chunk
                if every_s:
                    await asyncio.wait({reading}, timeout=every_s)
            if answer.sent >= total and not reading.done():
                writer.write(b"0\r\n\r\n")
        raw = await asyncio.wait_for(reading, timeout=10)
        answer.ended_after_s = time.monotonic() - start
        parse_answer(raw, answer)
    finally:
        reading.cancel()
        writer.close()
    return answer


@dataclass
class Probe:
    """The legitimate client's record: one fresh connection per request."""

    ok: int = 0
    failed: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.ok + len(self.failed)

    @property
    def rate(self) -> float:
        return self.ok / self.total if self.total else 0.0

    def summary(self) -> str:
        lat = sorted(self.latencies) or [0.0]
        p50 = statistics.median(lat) * 1000
        worst = lat[-1] * 1000
        return (
            f"{self.ok}/{self.total} served ({self.rate:.0%}), p50 {p50:.0f} ms, max {worst:.0f} ms"
        )


async def probe_until(
    base_url: str, path: str, stop: asyncio.Event, *, every_s: float = 0.1, source: str = LEGIT
) -> Probe:
    """GET ``path`` from ``source`` every ``every_s`` until ``stop`` is set."""
    probe = Probe()
    while not stop.is_set():
        start = time.monotonic()
        transport = httpx.AsyncHTTPTransport(local_address=source)
        try:
            async with httpx.AsyncClient(transport=transport, timeout=5) as client:
                response = await client.get(base_url + path)
            if response.status_code == 200:
                probe.ok += 1
                probe.latencies.append(time.monotonic() - start)
            else:
                probe.failed.append(str(response.status_code))
        except httpx.HTTPError as exc:
            probe.failed.append(type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
    return probe
