"""Gossip (docs/protocol.md "Gossip"), mirror of static/swarm/protocol/gossip.js.

Signed messages flooded over the mesh with a hop limit, deduplicated by an id that is the
SHA-256 of the canonical payload, so nobody can claim an id to suppress a message.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .envelope import DOMAIN_GOSSIP, MAX_SAFE_INTEGER, JsonObject, sign, verify
from .errors import (
    BAD_BODY,
    BAD_GOSSIP_ID,
    EXPIRED,
    NOT_YET_VALID,
    PEER_MISMATCH,
    WRONG_COMMUNITY,
    ProtocolError,
)
from .ticket import CLOCK_SKEW_MS, COMMUNITY_RE
from .wire import MAX_GOSSIP_TTL, Gossip

DEFAULT_GOSSIP_TTL = 10
GOSSIP_MAX_AGE_MS = 10 * 60_000
TOPIC_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
BODY_KEYS = frozenset({"community", "topic", "issued_at", "data"})
DEFAULT_MAX_SEEN = 50_000


@dataclass(frozen=True, slots=True)
class GossipMessage:
    """A gossip message that passed every check; ``id`` is hex."""

    id: str
    origin: str
    topic: str
    issued_at: int
    data: Any
    ttl: int
    payload: JsonObject


def gossip_id(payload: JsonObject) -> bytes:
    """``SHA-256(JCS(payload envelope))``: 32 bytes."""
    try:
        return hashlib.sha256(rfc8785.dumps(payload)).digest()
    except (rfc8785.CanonicalizationError, ValueError, TypeError) as exc:
        raise ProtocolError(BAD_GOSSIP_ID, f"payload cannot be canonicalized: {exc}") from exc


def make_gossip(
    private_key: Ed25519PrivateKey,
    *,
    origin: str,
    community: str,
    topic: str,
    now: int,
    data: Any = None,
    ttl: int = DEFAULT_GOSSIP_TTL,
) -> Gossip:
    """Sign a gossip payload and wrap it in a frame."""
    if not TOPIC_RE.fullmatch(topic):
        raise ProtocolError(BAD_BODY, "topic is malformed")
    body = {"community": community, "topic": topic, "issued_at": now, "data": data}
    payload = sign(DOMAIN_GOSSIP, body, private_key)
    return Gossip(
        id=gossip_id(payload), origin=origin, ttl=min(ttl, MAX_GOSSIP_TTL), payload=payload
    )


def _check_body(body: JsonObject) -> None:
    if set(body) != BODY_KEYS:
        raise ProtocolError(BAD_BODY, f"gossip body fields: {','.join(sorted(body))}")
    community = body["community"]
    # fullmatch: the pattern's `$` alone would admit a trailing newline, JS's does not.
    if not isinstance(community, str) or not COMMUNITY_RE.fullmatch(community):
        raise ProtocolError(BAD_BODY, "community name is invalid")
    topic = body["topic"]
    if not isinstance(topic, str) or not TOPIC_RE.fullmatch(topic):
        raise ProtocolError(BAD_BODY, "topic is malformed")
    issued_at = body["issued_at"]
    if type(issued_at) is not int or not 0 <= issued_at <= MAX_SAFE_INTEGER:
        raise ProtocolError(BAD_BODY, "issued_at must be a non-negative integer (ms)")


def check_gossip(
    frame: Gossip,
    *,
    now: int,
    community: str,
    max_age_ms: int = GOSSIP_MAX_AGE_MS,
    skew_ms: int = CLOCK_SKEW_MS,
) -> GossipMessage:
    """Check a decoded gossip frame at ``now``: id, signature, body, origin, community, age
    (in that order). Returns the message or raises :class:`ProtocolError`."""
    if gossip_id(frame.payload) != frame.id:
        raise ProtocolError(BAD_GOSSIP_ID, "id is not the hash of the payload")
    verified = verify(frame.payload, DOMAIN_GOSSIP)
    body = verified.body
    _check_body(body)
    if verified.peer_id != frame.origin:
        raise ProtocolError(PEER_MISMATCH, "origin is not the signer of the payload")
    if body["community"] != community:
        raise ProtocolError(WRONG_COMMUNITY, "gossip is for another community")
    issued_at: int = body["issued_at"]
    if issued_at > now + skew_ms:
        raise ProtocolError(NOT_YET_VALID, "gossip is issued in the future")
    if now - issued_at >= max_age_ms:
        raise ProtocolError(EXPIRED, "gossip is too old to relay")
    return GossipMessage(
        id=frame.id.hex(),
        origin=verified.peer_id,
        topic=body["topic"],
        issued_at=issued_at,
        data=body["data"],
        ttl=frame.ttl,
        payload=frame.payload,
    )


def relay_frame(frame: Gossip) -> Gossip | None:
    """The frame to pass on, or None once the hop limit is spent."""
    if frame.ttl <= 0:
        return None
    return replace(frame, ttl=frame.ttl - 1)


class GossipLog:
    """Which gossip ids were already handled.

    An id is remembered until its message is too old to be accepted anyway (issued_at +
    max age + skew), so memory stays bounded by the message rate.
    """

    def __init__(
        self,
        *,
        max_age_ms: int = GOSSIP_MAX_AGE_MS,
        skew_ms: int = CLOCK_SKEW_MS,
        max_seen: int = DEFAULT_MAX_SEEN,
    ) -> None:
        self.max_age_ms = max_age_ms
        self.skew_ms = skew_ms
        self.max_seen = max_seen
        self.seen: OrderedDict[str, int] = OrderedDict()  # id hex -> forget at (ms)

    def has(self, id_hex: str) -> bool:
        return id_hex in self.seen

    def add(self, id_hex: str, issued_at: int) -> None:
        # A Map.set on an existing key keeps its place in JS: so does assignment here.
        self.seen[id_hex] = issued_at + self.max_age_ms + self.skew_ms
        while len(self.seen) > self.max_seen:
            self.seen.popitem(last=False)

    def prune(self, now: int) -> None:
        for id_hex in [i for i, forget_at in self.seen.items() if forget_at <= now]:
            del self.seen[id_hex]
