"""Who holds which id, and the messages waiting for absent ids.

The directory is the state the reference PeerJS server keeps in its "realm". One web
process keeps it in memory (:class:`MemoryDirectory`, pure, clock passed in); several
processes share it in Redis (``redis_directory``, the same operations as Lua scripts).
Holders are named by ``(proc, conn)``: the process and its local connection number.
"""

from __future__ import annotations

from dataclasses import dataclass

OPENED = "open"
REPLACED = "replaced"
TAKEN = "taken"
FULL = "full"
IP_FULL = "ip_full"
NETWORK_FULL = "network_full"

SENT = "sent"
QUEUED = "queued"
QUEUE_FULL = "queue_full"
DEAD = "dead"
DROPPED = "dropped"


@dataclass(frozen=True, slots=True)
class Holder:
    """The connection that holds an id. ``rank`` orders proofs (a token's issued_at)."""

    proc: str
    conn: int
    token: str
    proven: bool
    rank: int


@dataclass(frozen=True, slots=True)
class Quota:
    """How many ids the claiming client's address and network may hold at once
    (0 = no limit). Reclaiming an id its group already holds never counts twice."""

    ip: str | None = None
    network: str | None = None
    ip_limit: int = 0
    network_limit: int = 0

    def groups(self) -> list[tuple[str, int, str]]:
        """(group key, limit, refusal status) of each limit that applies."""
        groups = []
        if self.ip and self.ip_limit > 0:
            groups.append(("ip:" + self.ip, self.ip_limit, IP_FULL))
        if self.network and self.network_limit > 0:
            groups.append(("net:" + self.network, self.network_limit, NETWORK_FULL))
        return groups


@dataclass(frozen=True, slots=True)
class ClaimResult:
    status: str  # OPENED | REPLACED | TAKEN | FULL | IP_FULL | NETWORK_FULL
    previous: tuple[str, int] | None = None  # the replaced holder (proc, conn)
    queued: tuple[str, ...] = ()  # frames that waited for this id, oldest first


def may_replace(current: Holder, claim: Holder) -> bool:
    """The rule for a second connection with a held id.

    The same token is the same client reconnecting (PeerJS's rule). A key-bound id also
    passes to any valid proof at least as new as the holder's, so a reconnect after a
    network drop takes the id back from the stale socket at once; an older proof (a
    replayed token) does not.
    """
    if claim.token == current.token:
        return True
    return claim.proven and (not current.proven or claim.rank >= current.rank)


class MemoryDirectory:
    """The directory of one process (the embedded default)."""

    def __init__(self) -> None:
        self._holders: dict[str, Holder] = {}
        self._queues: dict[str, list[str]] = {}
        self._deadlines: dict[str, int] = {}
        self._members: dict[str, set[str]] = {}  # quota group -> ids held from it
        self._groups_of: dict[str, list[str]] = {}  # id -> its quota groups

    def claim(
        self, peer_id: str, claim: Holder, *, limit: int, quota: Quota | None = None
    ) -> ClaimResult:
        current = self._holders.get(peer_id)
        if current is not None:
            if not may_replace(current, claim):
                return ClaimResult(TAKEN)
            previous: tuple[str, int] | None = (current.proc, current.conn)
        else:
            if len(self._holders) >= limit:
                return ClaimResult(FULL)
            previous = None
        groups = quota.groups() if quota is not None else []
        for group, group_limit, refusal in groups:
            held = self._members.get(group, set())
            if len(held) - (peer_id in held) >= group_limit:
                return ClaimResult(refusal)
        self._leave_groups(peer_id)
        self._groups_of[peer_id] = [group for group, _, _ in groups]
        for group, _, _ in groups:
            self._members.setdefault(group, set()).add(peer_id)
        self._holders[peer_id] = claim
        queued = tuple(self._queues.pop(peer_id, ()))
        self._deadlines.pop(peer_id, None)
        return ClaimResult(REPLACED if previous else OPENED, previous, queued)

    def holds(self, peer_id: str) -> bool:
        return peer_id in self._holders

    def release(self, peer_id: str, proc: str, conn: int) -> bool:
        """Free ``peer_id`` if ``(proc, conn)`` still holds it (not a newer connection)."""
        current = self._holders.get(peer_id)
        if current is None or current.proc != proc or current.conn != conn:
            return False
        del self._holders[peer_id]
        self._leave_groups(peer_id)
        return True

    def _leave_groups(self, peer_id: str) -> None:
        for group in self._groups_of.pop(peer_id, ()):
            held = self._members[group]
            held.discard(peer_id)
            if not held:
                del self._members[group]

    def holder(self, peer_id: str) -> Holder | None:
        return self._holders.get(peer_id)

    def route(
        self, dst: str, frame: str, *, queueable: bool, queue_limit: int, deadline: int
    ) -> str:
        """SENT if ``dst`` is held (the caller delivers), else queue or drop the frame."""
        if dst in self._holders:
            return SENT
        if not queueable:
            return DROPPED
        queue = self._queues.get(dst)
        if len(queue or ()) >= queue_limit:
            return QUEUE_FULL
        if queue is None:
            queue = self._queues[dst] = []
            # Like the reference server, a queue expires a fixed time after its first message.
            self._deadlines[dst] = deadline
        queue.append(frame)
        return QUEUED

    def expire_due(self, now: int) -> list[str]:
        """Remove and return the frames of every queue whose deadline has passed."""
        due = [dst for dst, deadline in self._deadlines.items() if deadline <= now]
        frames: list[str] = []
        for dst in due:
            del self._deadlines[dst]
            frames.extend(self._queues.pop(dst, ()))
        return frames

    def count(self) -> int:
        return len(self._holders)

    def ids(self) -> list[str]:
        return list(self._holders)

    def queued_for(self, dst: str) -> int:
        return len(self._queues.get(dst, ()))
