"""Messages from the server to super-peers over the channel layer (pure).

Every super-peer listens on two groups: ``superpeer`` (all of them) and
``superpeer.<peer id>`` (just itself). The database holds the truth (pins, jobs); a message
only says "look now", so one lost while a super-peer was down costs nothing: it reads the
database when it starts and every ``SWARM_SUPERPEER_SYNC_S`` anyway.

| ``type`` | fields | meaning |
|---|---|---|
| ``superpeer.sync`` | none | pins or jobs changed: read them again |
| ``replication.fetch`` | as ``replication.messages.fetch_message`` | a job for this super-peer |
| ``replication.cancel`` | as ``replication.messages.cancel_message`` | stop that job |

Super-peers publish ``replication.status`` and ``replication.report`` messages to the
``replication`` group for a long-lived planner, and write the same facts to the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peers.protocol.encoding import PEER_ID_RE
from peers.protocol.replication.messages import CANCEL, FETCH, parse_cancel, parse_fetch
from peers.protocol.replication.model import CancelJob, FetchJob, ReplicationError

from .errors import BAD_CONTROL, SuperPeerError

ALL_GROUP = "superpeer"
REPLICATION_GROUP = "replication"
SYNC = "superpeer.sync"


def group_for(peer_id: str) -> str:
    """The group only ``peer_id`` listens on (``superpeer`` for every super-peer)."""
    if not peer_id:
        return ALL_GROUP
    if not PEER_ID_RE.fullmatch(peer_id):
        raise SuperPeerError(BAD_CONTROL, "a super-peer id is a key-bound peer id")
    return f"{ALL_GROUP}.{peer_id}"


def sync_message() -> dict[str, Any]:
    return {"type": SYNC}


@dataclass(frozen=True)
class Sync:
    pass


Control = Sync | FetchJob | CancelJob


def parse_control(message: object, *, me: str) -> Control:
    """A channel-layer message for super-peer ``me``; ``bad_control`` for anything else,
    including jobs addressed to another fetcher."""
    if not isinstance(message, dict):
        raise SuperPeerError(BAD_CONTROL, "a control message is a map")
    kind = message.get("type")
    try:
        if kind == SYNC:
            if set(message) != {"type"}:
                raise SuperPeerError(BAD_CONTROL, f"{SYNC} has no fields")
            return Sync()
        if kind == FETCH:
            job = parse_fetch(message)
            if job.fetcher != me:
                raise SuperPeerError(BAD_CONTROL, f"job {job.job_id} is for {job.fetcher}")
            return job
        if kind == CANCEL:
            cancel = parse_cancel(message)
            if cancel.fetcher != me:
                raise SuperPeerError(BAD_CONTROL, f"job {cancel.job_id} is for {cancel.fetcher}")
            return cancel
    except ReplicationError as exc:
        raise SuperPeerError(BAD_CONTROL, f"{exc.code}: {exc.message}") from exc
    raise SuperPeerError(BAD_CONTROL, f"unknown control message type {kind!r}")
