"""Signaling clients under fault injection: pairs relaying numbered messages, reconnecting
after the server drops them, and the bookkeeping of what became of every message.

A message is *delivered* when its destination received it, *answered* when its sender
was told it did not arrive (the destination's ``EXPIRE`` or ``LEAVE``, or an ``ERROR``
ending the sender's session) within ``ANSWER_WINDOW_S`` of sending it, and *lost*
otherwise. Used by ``tests/test_faults_redis.py`` and ``bench/faults.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ANSWER_WINDOW_S = 20.0
HEARTBEAT_S = 1.0
RECONNECT_DELAY_S = 0.2


@dataclass
class Answer:
    kind: str  # EXPIRE | LEAVE | ERROR | ID-TAKEN
    src: str | None
    at: float
    code: str | None = None


@dataclass
class FaultPeer:
    """One PeerJS id on one server, sending numbered CANDIDATEs to its partner."""

    peer_id: str
    base: str
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    partner: str = ""
    sent: dict[int, float] = field(default_factory=dict)
    received: Counter[tuple[str, int]] = field(default_factory=Counter)
    latest: dict[str, int] = field(default_factory=dict)  # highest seq received per sender
    answers: list[Answer] = field(default_factory=list)
    outages: list[float] = field(default_factory=list)  # seconds from losing to re-opening
    id_taken: int = 0
    ws: ClientConnection | None = None
    is_open: bool = False
    lost_at: float | None = None
    last_open: float = 0.0
    stopping: bool = False
    seq: int = 0

    def url(self) -> str:
        return f"{self.base}/signal/peerjs?key=peerjs&id={self.peer_id}&token={self.token}"

    async def run(self) -> None:
        """Stay connected (reconnecting with the same token) until :meth:`leave`."""
        while not self.stopping:
            try:
                async with connect(self.url(), open_timeout=5, close_timeout=1) as ws:
                    self.ws = ws
                    beat = asyncio.get_running_loop().create_task(self._heartbeats(ws))
                    try:
                        await self._read(ws)
                    finally:
                        beat.cancel()
            except (OSError, TimeoutError, ConnectionClosed):
                pass
            self._session_ended()
            if not self.stopping:
                await asyncio.sleep(RECONNECT_DELAY_S)

    async def _heartbeats(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(HEARTBEAT_S)
                await ws.send('{"type":"HEARTBEAT"}')

    async def _read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            frame: dict[str, Any] = json.loads(raw)
            kind = frame.get("type")
            now = time.monotonic()
            if kind == "OPEN":
                self.is_open = True
                self.last_open = now
                if self.lost_at is not None:
                    self.outages.append(now - self.lost_at)
                    self.lost_at = None
            elif kind == "CANDIDATE":
                payload = frame.get("payload") or {}
                src, seq = str(frame.get("src")), int(payload.get("seq", -1))
                self.received[(src, seq)] += 1
                self.latest[src] = max(seq, self.latest.get(src, 0))
            elif kind in ("EXPIRE", "LEAVE"):
                self.answers.append(Answer(str(kind), frame.get("src"), now))
            elif kind in ("ERROR", "ID-TAKEN"):
                payload = frame.get("payload") or {}
                self.answers.append(Answer(str(kind), None, now, payload.get("code")))
                self.id_taken += kind == "ID-TAKEN"
                self._session_ended()

    def _session_ended(self) -> None:
        if self.is_open:
            self.lost_at = time.monotonic()
        self.is_open = False

    async def send_one(self) -> None:
        ws = self.ws
        if not self.is_open or ws is None or not self.partner:
            return
        self.seq += 1
        frame = {"type": "CANDIDATE", "dst": self.partner, "payload": {"seq": self.seq}}
        self.sent[self.seq] = time.monotonic()
        # On a closed socket the reader sees the close; the message stays counted as sent.
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(frame))

    async def leave(self) -> None:
        self.stopping = True
        if self.ws is not None:
            await self.ws.close()


@dataclass
class Tally:
    sent: int = 0
    delivered: int = 0
    answered: int = 0
    lost: int = 0
    duplicates: int = 0
    lost_samples: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"sent {self.sent}, delivered {self.delivered}, answered {self.answered} "
            f"(EXPIRE/LEAVE/ERROR), lost without answer {self.lost}, "
            f"duplicates {self.duplicates}"
        )


def _answers(answer: Answer, sent_at: float, dst: str) -> bool:
    """Does ``answer`` tell the sender of a message to ``dst`` sent at ``sent_at``?"""
    if not sent_at <= answer.at <= sent_at + ANSWER_WINDOW_S:
        return False
    return answer.kind == "ERROR" or (answer.kind in ("EXPIRE", "LEAVE") and answer.src == dst)


def tally(peers: list[FaultPeer]) -> Tally:
    """What became of every message each peer sent to its partner."""
    by_id = {p.peer_id: p for p in peers}
    result = Tally()
    for peer in peers:
        partner = by_id[peer.partner]
        for seq, at in peer.sent.items():
            result.sent += 1
            copies = partner.received[(peer.peer_id, seq)]
            if copies:
                result.delivered += 1
                result.duplicates += copies - 1
                continue
            if any(_answers(a, at, partner.peer_id) for a in peer.answers):
                result.answered += 1
                continue
            result.lost += 1
            if len(result.lost_samples) < 5:
                result.lost_samples.append(f"{peer.peer_id}->{partner.peer_id} #{seq} at {at:.3f}")
    return result


class Traffic:
    """Pairs split across servers, each peer sending to its partner ``rate`` times a second."""

    def __init__(self, bases: list[str], pairs: int, rate: float) -> None:
        self.peers: list[FaultPeer] = []
        for n in range(pairs):
            a = FaultPeer(f"fa{n}x{uuid.uuid4().hex[:8]}", bases[0])
            b = FaultPeer(f"fb{n}x{uuid.uuid4().hex[:8]}", bases[1 % len(bases)])
            a.partner, b.partner = b.peer_id, a.peer_id
            self.peers += [a, b]
        self.rate = rate
        self.sending = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, timeout: float = 20.0) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(p.run()) for p in self.peers]
        self._tasks.append(loop.create_task(self._send_loop()))
        await self.wait_all_open(timeout)

    async def wait_all_open(self, timeout: float) -> float:
        """Seconds until every peer holds an open session (TimeoutError past ``timeout``)."""
        started = time.monotonic()
        while not all(p.is_open for p in self.peers):
            if time.monotonic() - started > timeout:
                closed = [p.peer_id for p in self.peers if not p.is_open]
                raise TimeoutError(f"{len(closed)} peers not open after {timeout}s: {closed[:5]}")
            await asyncio.sleep(0.02)
        return time.monotonic() - started

    async def _send_loop(self) -> None:
        interval = 1.0 / self.rate
        while True:
            started = time.monotonic()
            if self.sending:
                await asyncio.gather(*(p.send_one() for p in self.peers))
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def wait_relaying(self, timeout: float) -> float:
        """Seconds until every peer has received a message sent after this call began."""
        started = time.monotonic()
        marks = {p.peer_id: max(p.sent) if p.sent else 0 for p in self.peers}
        by_id = {p.peer_id: p for p in self.peers}
        while True:
            done = all(
                p.latest.get(p.partner, 0) > marks[p.partner]
                for p in self.peers
                if by_id[p.partner].sent
            )
            if done:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"relaying did not resume within {timeout}s")
            await asyncio.sleep(0.05)

    async def leave(self) -> None:
        self.sending = False
        await asyncio.gather(*(p.leave() for p in self.peers))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def outages(self) -> list[float]:
        return [o for p in self.peers for o in p.outages]


def describe_outages(outages: list[float]) -> str:
    if not outages:
        return "no session was lost"
    return (
        f"{len(outages)} sessions lost and re-opened: median {statistics.median(outages):.2f} s, "
        f"max {max(outages):.2f} s"
    )
