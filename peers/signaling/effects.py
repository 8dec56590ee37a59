"""What the hub asks its adapter to do: send, close, claim, release, route."""

from __future__ import annotations

from dataclasses import dataclass

from .directory import Holder

# Servers may only send 1000 or an application code (autobahn enforces it): 40xx mirror
# the standard 1008 (policy), 1009 (too big) and 1012 (service restart).
CLOSE_NORMAL = 1000
CLOSE_POLICY = 4008
CLOSE_TOO_BIG = 4009
CLOSE_RESTART = 4012


@dataclass(frozen=True, slots=True)
class Send:
    conn: int
    frame: str
    src: str | None = None  # a relayed frame's sender, told LEAVE if this send fails


@dataclass(frozen=True, slots=True)
class Close:
    conn: int
    code: int = CLOSE_NORMAL


@dataclass(frozen=True, slots=True)
class Claim:
    conn: int
    peer_id: str
    holder: Holder
    ip: str | None = None  # the client's address and network, for the per-address limits
    network: str | None = None


@dataclass(frozen=True, slots=True)
class Release:
    conn: int
    peer_id: str


@dataclass(frozen=True, slots=True)
class Route:
    """Deliver ``frame`` to ``dst`` held elsewhere, or queue it (``queueable``) until
    ``deadline``; ``notify`` tells the sender when that fails (not for server frames)."""

    src: str
    dst: str
    frame: str
    queueable: bool
    deadline: int
    notify: bool = True


Effect = Send | Close | Claim | Release | Route
