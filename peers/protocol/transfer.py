"""Fetching one shared file from whoever holds it: the download scheduler, mirror of
static/swarm/protocol/transfer.js (the two are held together by tests/vectors/transfer.json).

Sans-IO (like h11): peers' adverts and answers, connection changes and ``now`` (ms) go in;
requests to send, penalties, drops, completion and failure come out of :meth:`take_actions`,
and :meth:`tick` is due at :meth:`next_deadline`. No IO, no crypto: the adapter checks each
manifest and chunk before telling the transfer what it got. docs/protocol.md "Fetching a
file" describes the policy.

Phases: ``manifest`` (ask holders, then any connected peer, one at a time) -> ``chunks``
(pipelined, paced requests to several sources) -> ``complete`` (back to ``chunks`` when a
chunk counted held is lost) | ``failed`` (only with a give-up timeout). With nobody to ask
the transfer is *waiting* (:attr:`waiting`) and resumes by itself when a source appears.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

Phase = Literal["manifest", "chunks", "complete", "failed"]

PENDING, ASKED, HELD = 0, 1, 2
# Why a source left a transfer, and why a transfer gave up.
DROP_TIMEOUT = "timeout"
NO_SOURCE = "no_source"
# Why a transfer waits: nobody ever offered the file / every source it had is gone.
NO_HOLDER = "no_holder"
HOLDERS_GONE = "holders_gone"
HEARTBEAT_MS = 1_000  # rate tokens, endgame, manifest retries, the waiting clock


@dataclass(frozen=True, slots=True)
class TransferOptions:
    """The scheduler's limits (the same defaults as TRANSFER_DEFAULTS in transfer.js)."""

    per_source: int = 64  # chunk requests in flight per source
    window: int = 128  # chunk requests in flight in all
    request_timeout_ms: int = 8_000  # an unanswered request goes to another source
    max_timeouts: int = 3  # timed-out requests in a row, with nothing heard: source dropped
    manifest_timeout_ms: int = 5_000
    manifest_retry_ms: int = 15_000  # a peer asked for the manifest may be asked again after
    probe_after_ms: int = 2_000  # no holder answered by then: ask connected peers too
    give_up_after_ms: int | None = None  # waiting this long: failed (None: wait for ever)
    endgame_after_ms: int = 1_500  # nothing left to ask: re-ask a request this old elsewhere
    rate: float = 450  # requests per second per source: peers accept 500 frames/s
    burst: float = 900
    rate_window_ms: int = 2_000  # throughput used to rank sources


@dataclass(frozen=True, slots=True)
class AskManifest:
    peer_id: str


@dataclass(frozen=True, slots=True)
class AskChunk:
    peer_id: str
    index: int


@dataclass(frozen=True, slots=True)
class Penalize:
    """The peer sent bad data (a manifest or chunk that failed its checks)."""

    peer_id: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class SourceDropped:
    """The peer stopped answering; a fresh advert (or a manifest answer) brings it back."""

    peer_id: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Complete:
    pass


@dataclass(frozen=True, slots=True)
class Failed:
    code: str
    message: str


Action = AskManifest | AskChunk | Penalize | SourceDropped | Complete | Failed


@dataclass(slots=True)
class Source:
    peer_id: str
    tokens: float
    tokens_at: int
    advertised: int | None = None  # chunks it says it holds (None: answered a probe)
    in_flight: dict[int, int] = field(default_factory=dict)  # index -> asked at
    late: set[int] = field(default_factory=set)  # asked, then timed out or held elsewhere
    missing: set[int] = field(default_factory=set)  # indices it said it lacks
    heard_at: int = -1  # its last answer
    strikes: int = 0
    received: int = 0
    meter: Meter = field(default_factory=lambda: Meter())


class Meter:
    """Bytes per second over a sliding window (older arrivals are forgotten)."""

    def __init__(self) -> None:
        self.arrivals: deque[tuple[int, int]] = deque()  # (at, bytes)
        self.bytes = 0

    def add(self, at: int, size: int) -> None:
        self.arrivals.append((at, size))
        self.bytes += size

    def rate(self, now: int, window_ms: int) -> float:
        while self.arrivals and now - self.arrivals[0][0] > window_ms:
            self.bytes -= self.arrivals.popleft()[1]
        return self.bytes * 1000 / window_ms


class Transfer:
    """One file being fetched. With ``chunk_count`` (a manifest already verified and stored)
    it starts in the chunks phase and ``held`` lists the indices already stored."""

    def __init__(
        self,
        manifest_id: str,
        *,
        now: int,
        chunk_count: int | None = None,
        held: tuple[int, ...] | list[int] = (),
        options: TransferOptions | None = None,
    ) -> None:
        self.manifest_id = manifest_id
        self.options = options or TransferOptions()
        self.started_at = now
        self.phase: Phase = "manifest"
        self.sources: dict[str, Source] = {}
        self.connected: set[str] = set()
        self.dropped: dict[str, str] = {}  # peer id -> code (timeouts may come back)
        self.tried: dict[str, int] = {}  # peer id -> when it was asked for the manifest
        self.manifest_ask: tuple[str, int] | None = None  # (peer id, at)
        self.had_source = False
        self.waiting: tuple[str, int] | None = None  # (reason, since)
        self.served: dict[str, int] = {}  # peer id -> chunks it supplied that we kept
        self.result: Failed | None = None
        self.count = 0
        self.state = bytearray()
        self.held_count = 0
        self._cursor = 0
        self._actions: list[Action] = []
        if chunk_count is not None:
            self.manifest_ready(None, chunk_count, held, now)
        else:
            self._step(now)

    # --- outputs ---

    def take_actions(self) -> list[Action]:
        out, self._actions = self._actions, []
        return out

    @property
    def done(self) -> bool:
        return self.phase in ("complete", "failed")

    def next_deadline(self, now: int) -> int | None:
        """When :meth:`tick` is due (None: nothing left to time)."""
        if self.done:
            return None
        o = self.options
        nxt: float = now + HEARTBEAT_MS
        if self.manifest_ask is not None:
            nxt = min(nxt, self.manifest_ask[1] + o.manifest_timeout_ms)
        if now < self.started_at + o.probe_after_ms:
            nxt = min(nxt, self.started_at + o.probe_after_ms)
        for source in self.sources.values():
            for at in source.in_flight.values():
                nxt = min(nxt, at + o.request_timeout_ms)
            if self.phase == "chunks" and source.tokens < 1:
                nxt = min(nxt, source.tokens_at + (1 - source.tokens) * 1000 / o.rate)
        if self.waiting is not None and o.give_up_after_ms is not None:
            nxt = min(nxt, self.waiting[1] + o.give_up_after_ms)
        return max(math.ceil(nxt), now + 1)

    def expects(self, peer_id: str, index: int) -> bool:
        """Is a chunk from this peer at this index one we asked it for? (others are ignored)"""
        source = self.sources.get(peer_id)
        return source is not None and (index in source.in_flight or index in source.late)

    def awaits_manifest_from(self, peer_id: str) -> bool:
        return self.manifest_ask is not None and self.manifest_ask[0] == peer_id

    def in_flight(self) -> int:
        return sum(len(s.in_flight) for s in self.sources.values())

    # --- inputs: peers ---

    def peer_opened(self, peer_id: str, now: int) -> None:
        self.connected.add(peer_id)
        self._step(now)

    def peer_closed(self, peer_id: str, now: int) -> None:
        """Gone: its requests go back at once; if it opens again it may be asked anew."""
        self.connected.discard(peer_id)
        self.tried.pop(peer_id, None)
        self._remove_source(peer_id)
        if self.awaits_manifest_from(peer_id):
            self.manifest_ask = None
        self._step(now)

    def have(self, peer_id: str, chunks: int, now: int) -> None:
        """A ``have`` advert: ``chunks`` chunks of this file held (0 withdraws it)."""
        if self.phase == "failed" or self._penalized(peer_id):
            return
        if chunks <= 0:
            self._remove_source(peer_id)
        else:
            self.dropped.pop(peer_id, None)  # a source dropped for timeouts is back
            source = self.sources.get(peer_id) or self._add_source(peer_id, now)
            source.advertised = chunks
            source.missing.clear()  # it holds more now
        self._step(now)

    # --- inputs: the manifest ---

    def manifest_ready(
        self, peer_id: str | None, chunk_count: int, held: tuple[int, ...] | list[int], now: int
    ) -> None:
        """The manifest (asked of ``peer_id``; None: known already) verified: ``chunk_count``
        chunks, ``held`` stored already. Later, a peer answering a probe becomes a source."""
        if peer_id is not None and self.awaits_manifest_from(peer_id):
            self.manifest_ask = None
        if self.phase == "manifest":
            self.count = chunk_count
            self.state = bytearray(chunk_count)
            for index in held:
                if 0 <= index < chunk_count and self.state[index] != HELD:
                    self.state[index] = HELD
                    self.held_count += 1
            self.phase = "chunks"
        if peer_id is not None and peer_id not in self.sources and not self._penalized(peer_id):
            self.dropped.pop(peer_id, None)
            self._add_source(peer_id, now)  # whoever has the manifest probably has chunks
        self._step(now)

    def manifest_absent(self, peer_id: str, now: int) -> None:
        """The peer answered that it does not hold the manifest."""
        if self.awaits_manifest_from(peer_id):
            self.manifest_ask = None
        if self.phase == "manifest":
            self._remove_source(peer_id)
        self._step(now)

    def manifest_rejected(self, peer_id: str, code: str, message: str, now: int) -> None:
        """The peer sent a manifest that failed verification (fail closed: never used)."""
        if self.awaits_manifest_from(peer_id):
            self.manifest_ask = None
        self._drop(peer_id, Penalize(peer_id, code, message))
        self._step(now)

    # --- inputs: chunks ---

    def chunk_accepted(self, peer_id: str, index: int, size: int, now: int) -> bool:
        """A chunk we asked for passed its checks; False if it was not needed (not asked of
        this peer, or held already), True if it counts: the adapter stores it."""
        source = self._answered(peer_id, index, now)
        if source is None:
            return False
        source.received += 1
        source.meter.add(now, size)
        if self.phase not in ("chunks", "complete") or self.state[index] == HELD:
            self._step(now)
            return False
        self.state[index] = HELD
        self.held_count += 1
        self.served[peer_id] = self.served.get(peer_id, 0) + 1
        for other in self.sources.values():  # endgame duplicates: their answers are ignored
            if other.in_flight.pop(index, None) is not None:
                other.late.add(index)
        self._step(now)
        return True

    def chunk_rejected(self, peer_id: str, index: int, code: str, message: str, now: int) -> None:
        """A chunk from the peer failed its checks: asked of another source, sender dropped."""
        if self._answered(peer_id, index, now) is None:
            return
        self._release(index)
        self._drop(peer_id, Penalize(peer_id, code, message))
        self._step(now)

    def chunk_missing(self, peer_id: str, index: int, now: int) -> None:
        """The peer does not hold this chunk after all (until its next advert)."""
        source = self._answered(peer_id, index, now)
        if source is None:
            return
        source.missing.add(index)
        self._release(index)
        self._step(now)

    def chunk_lost(self, index: int, now: int) -> None:
        """A chunk counted held is not in the store after all: fetch it again."""
        if self.phase not in ("chunks", "complete") or not 0 <= index < self.count:
            return
        if self.state[index] != HELD:
            return
        self.state[index] = PENDING
        self.held_count -= 1
        self._cursor = min(self._cursor, index)
        self.phase = "chunks"
        self._step(now)

    def tick(self, now: int) -> None:
        """Timeouts, rate tokens, probes, the waiting clock."""
        if self.done:
            return
        o = self.options
        if self.manifest_ask is not None and now - self.manifest_ask[1] >= o.manifest_timeout_ms:
            self.manifest_ask = None
        for source in list(self.sources.values()):
            for index, at in list(source.in_flight.items()):
                if now - at < o.request_timeout_ms:
                    continue
                del source.in_flight[index]
                source.late.add(index)
                if source.heard_at <= at:  # nothing heard from it since it was asked
                    source.strikes += 1
                self._release(index)
            if source.strikes >= o.max_timeouts:
                message = f"{source.strikes} requests timed out"
                self._drop(source.peer_id, SourceDropped(source.peer_id, DROP_TIMEOUT, message))
        self._step(now)

    # --- internals ---

    def _penalized(self, peer_id: str) -> bool:
        code = self.dropped.get(peer_id)
        return code is not None and code != DROP_TIMEOUT

    def _add_source(self, peer_id: str, now: int) -> Source:
        source = Source(peer_id, tokens=self.options.burst, tokens_at=now)
        self.sources[peer_id] = source
        self.had_source = True
        return source

    def _remove_source(self, peer_id: str) -> None:
        source = self.sources.pop(peer_id, None)
        if source is not None:
            for index in source.in_flight:
                self._release(index)

    def _drop(self, peer_id: str, action: Penalize | SourceDropped) -> None:
        self._remove_source(peer_id)
        self.dropped[peer_id] = action.code
        self._actions.append(action)

    def _answered(self, peer_id: str, index: int, now: int) -> Source | None:
        """The source if it was asked for ``index`` (the request is then answered)."""
        source = self.sources.get(peer_id)
        if source is None or (index not in source.in_flight and index not in source.late):
            return None
        source.in_flight.pop(index, None)
        source.late.discard(index)
        source.heard_at = now
        source.strikes = 0
        return source

    def _release(self, index: int) -> None:
        """An index asked of nobody any more goes back to pending."""
        if self.phase != "chunks" or self.state[index] != ASKED:
            return
        if any(index in s.in_flight for s in self.sources.values()):
            return
        self.state[index] = PENDING
        self._cursor = min(self._cursor, index)

    def _step(self, now: int) -> None:
        if self.done:
            return
        if self.phase == "chunks":
            if self.held_count == self.count:
                self.phase = "complete"
                self.waiting = None
                self._actions.append(Complete())
                return
            self._fill(now)
        usable = self.phase == "chunks" and self._usable_source()
        if not usable:
            self._ask_manifest(now)
        # Probing peers that never offered the file is still waiting for a holder.
        asking_holder = self.manifest_ask is not None and self.manifest_ask[0] in self.sources
        self._check_waiting(usable or asking_holder, now)

    def _usable_source(self) -> bool:
        """Some source is busy, or could be asked for something pending (now or soon)."""
        if any(s.in_flight for s in self.sources.values()):
            return True
        lacking = [s.missing for s in self.sources.values()]
        for index in range(self._cursor, self.count):
            if self.state[index] == PENDING and any(index not in m for m in lacking):
                return True
        return False

    def _ask_manifest(self, now: int) -> None:
        if self.manifest_ask is not None:
            return
        o = self.options

        def fresh(peer_id: str) -> bool:
            if self._penalized(peer_id) or (peer_id in self.sources and self.phase == "chunks"):
                return False
            asked = self.tried.get(peer_id)
            return asked is None or now - asked >= o.manifest_retry_ms

        peer_id: str | None = None
        if self.phase == "manifest":  # holders first, the most complete one first
            holders = sorted(self.sources.values(), key=lambda s: (-(s.advertised or 0), s.peer_id))
            peer_id = next((s.peer_id for s in holders if fresh(s.peer_id)), None)
        if peer_id is None and now - self.started_at >= o.probe_after_ms:
            peer_id = next((p for p in sorted(self.connected) if fresh(p)), None)
        if peer_id is None:
            return
        self.tried[peer_id] = now
        self.manifest_ask = (peer_id, now)
        self._actions.append(AskManifest(peer_id))

    def _check_waiting(self, busy: bool, now: int) -> None:
        if busy:
            self.waiting = None
            return
        if self.waiting is None:
            self.waiting = (HOLDERS_GONE if self.had_source else NO_HOLDER, now)
        give_up = self.options.give_up_after_ms
        if give_up is None or now - self.waiting[1] < give_up:
            return
        codes = list(self.dropped.values())
        if self.phase == "manifest" and codes:
            # Only bad manifests seen: that is the reason (fail closed), not a lack of peers.
            message = f"every manifest received failed verification ({codes[-1]})"
            self.result = Failed(codes[-1], message)
        else:
            self.result = Failed(
                NO_SOURCE, f"no peer could serve this file for {give_up // 1000} s"
            )
        self.phase = "failed"
        self._actions.append(self.result)

    def _refill(self, source: Source, now: int) -> None:
        o = self.options
        source.tokens = min(o.burst, source.tokens + (now - source.tokens_at) * o.rate / 1000)
        source.tokens_at = now

    def _next_pending(self, source: Source) -> int:
        while self._cursor < self.count and self.state[self._cursor] != PENDING:
            self._cursor += 1
        for index in range(self._cursor, self.count):
            if self.state[index] == PENDING and index not in source.missing:
                return index
        return -1

    def _endgame_index(self, source: Source, now: int) -> int:
        """Nothing pending: the oldest request asked of one other source only, if old enough."""
        best, best_at = -1, math.inf
        for other in self.sources.values():
            if other is source:
                continue
            for index, at in other.in_flight.items():
                if at >= best_at or now - at < self.options.endgame_after_ms:
                    continue
                if index in source.missing or index in source.in_flight:
                    continue
                if sum(1 for s in self.sources.values() if index in s.in_flight) == 1:
                    best, best_at = index, at
        return best

    def _pick(self, candidates: list[Source], rates: dict[str, float], best: float) -> Source:
        """Fastest first: complete sources before partial ones, answering ones before one
        whose requests timed out, then the one expected to answer a new request soonest,
        (in flight + 1) / throughput; a source not measured yet counts as fast as the best
        one, so every source gets tried."""

        def key(s: Source) -> tuple[int, int, float, str]:
            partial = 0 if s.advertised is not None and s.advertised >= self.count else 1
            soon = (len(s.in_flight) + 1) / (rates[s.peer_id] or best)
            return (partial, s.strikes, soon, s.peer_id)

        return min(candidates, key=key)

    def _fill(self, now: int) -> None:
        o = self.options
        total = self.in_flight()
        if total >= o.window:
            return
        rates = {p: s.meter.rate(now, o.rate_window_ms) for p, s in self.sources.items()}
        best = max(1.0, *rates.values()) if rates else 1.0
        candidates = [s for s in self.sources.values() if len(s.in_flight) < o.per_source]
        while total < o.window and candidates:
            source = self._pick(candidates, rates, best)
            self._refill(source, now)
            index = self._next_pending(source) if source.tokens >= 1 else -1
            if index < 0 and source.tokens >= 1:
                index = self._endgame_index(source, now)
            if index < 0:
                candidates.remove(source)
                continue
            source.tokens -= 1
            source.in_flight[index] = now
            source.late.discard(index)
            if len(source.in_flight) >= o.per_source:
                candidates.remove(source)
            self.state[index] = ASKED
            total += 1
            self._actions.append(AskChunk(source.peer_id, index))
