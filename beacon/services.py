"""Beacon operations: announcing a ticket, withdrawing it, listing peers, pruning.

The announce path is async end to end (it is the hot path, served by the ASGI
fast path in ``beacon.asgi``); the rest is ordinary synchronous Django code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.conf import settings

from ops import blocks, metrics
from peers.protocol.encoding import parse_json
from peers.protocol.errors import REPLAY, ProtocolError
from peers.protocol.ticket import Ticket, is_valid_community, verify_ticket, verify_withdrawal

from . import presence, store
from .exceptions import BeaconError, bad_json, blocked, community_limit, rate_limited
from .limits import Precheck, SharedState, get_state
from .models import PresenceTicket

metrics.describe("swarm_beacon_announces_total", "Announces by result (accepted or error code).")
metrics.describe(
    "swarm_beacon_withdrawals_total",
    "Withdrawals by result (withdrawn, not_stored, or error code).",
)


@dataclass(frozen=True, slots=True)
class AnnounceResult:
    ticket: Ticket
    peers_json: list[str]


def parse_json_body(raw: bytes) -> object:
    try:
        return parse_json(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise bad_json() from exc


def check_community(name: str) -> None:
    if not is_valid_community(name):
        raise BeaconError(404, "bad_community", "community name is invalid")


async def ticket_announce(
    *, community: str, raw: bytes, ip: str | None, now: int
) -> AnnounceResult:
    """Verify and store one presence ticket; return the peers to hand back."""
    try:
        result = await _announce(community=community, raw=raw, ip=ip, now=now)
    except BeaconError as exc:
        metrics.incr("swarm_beacon_announces_total", result=exc.code)
        raise
    metrics.incr("swarm_beacon_announces_total", result="accepted")
    return result


def _claimed_peer(envelope: object) -> str | None:
    """The peer id a (not yet verified) ticket claims, to fetch its rate state early."""
    if isinstance(envelope, dict):
        body = envelope.get("body")
        if isinstance(body, dict) and isinstance(body.get("peer_id"), str):
            return str(body["peer_id"])[:64]
    return None


async def _precheck(state: SharedState, ip: str | None, peer_key: str | None, now: int) -> Precheck:
    """The per-address rate (and the peer's last accepted ticket, when ``peer_key``)."""
    return await state.precheck(
        ip_key=f"ip:{ip}" if ip else None,
        rate=settings.SWARM_BEACON_IP_RATE,
        burst=settings.SWARM_BEACON_IP_BURST,
        peer_key=peer_key,
        now_ms=now,
    )


async def _announce(*, community: str, raw: bytes, ip: str | None, now: int) -> AnnounceResult:
    check_community(community)
    envelope = parse_json_body(raw)
    claimed = _claimed_peer(envelope)
    state = get_state()
    pre = await _precheck(state, ip, f"peer:{community}:{claimed}" if claimed else None, now)
    if pre.ip_wait > 0:
        raise rate_limited(pre.ip_wait, "per address")
    try:
        ticket = verify_ticket(
            envelope,
            now=now,
            community=community,
            max_ttl_ms=settings.SWARM_TICKET_MAX_TTL_MS,
            skew_ms=settings.SWARM_CLOCK_SKEW_MS,
        )
    except ProtocolError as exc:
        raise BeaconError.from_protocol(exc) from exc
    block_set = await blocks.current(pre.blocks_version)
    if block_set.blocks(public_key=ticket.envelope["pk"], peer_id=ticket.peer_id, ip=ip):
        raise blocked()
    if pre.peer_recent is not None:
        wait, memo = pre.peer_recent
        issued_at, nonce, *flags = [*memo.split(" "), ""]
        # Inside the window the memo of the last accepted ticket tells a replay (422)
        # from a genuine refresh that came too soon (429) without touching the database.
        # After a withdrawal (a page leaving, maybe to reload) a newer ticket is welcome at once.
        if ticket.issued_at <= int(issued_at or 0) or ticket.nonce == nonce:
            raise _replay()
        if WITHDRAWN not in flags:
            raise rate_limited(wait, "per peer")
    peers = await _store(community, ticket, ip, now, state)
    await state.remember(
        f"peer:{community}:{ticket.peer_id}",
        settings.SWARM_BEACON_PEER_INTERVAL_S,
        now,
        f"{ticket.issued_at} {ticket.nonce}",
    )
    return AnnounceResult(ticket=ticket, peers_json=await presence.skip_departed(peers))


WITHDRAWN = "withdrawn"


async def ticket_withdraw(*, community: str, raw: bytes, ip: str | None, now: int) -> bool:
    """A leaving peer takes back its ticket (``swarm/withdraw/v1``, naming the ticket's nonce).
    True when that ticket was stored and is now gone; False when it was not (already replaced,
    expired or withdrawn): the call is idempotent. Replays of the withdrawn ticket stay
    refused until it would have expired; a newer ticket of the peer is accepted at once."""
    check_community(community)
    envelope = parse_json_body(raw)
    state = get_state()
    pre = await _precheck(state, ip, None, now)
    if pre.ip_wait > 0:
        metrics.incr("swarm_beacon_withdrawals_total", result="rate_limited")
        raise rate_limited(pre.ip_wait, "per address")
    try:
        withdrawal = verify_withdrawal(envelope, community=community)
    except ProtocolError as exc:
        metrics.incr("swarm_beacon_withdrawals_total", result=exc.code)
        raise BeaconError.from_protocol(exc) from exc
    database = await store.get_database()
    async with database.session() as session:
        row = await session.one(store.WITHDRAW, [community, withdrawal.peer_id, withdrawal.nonce])
    if row is None:
        metrics.incr("swarm_beacon_withdrawals_total", result="not_stored")
        return False
    issued_at, expires_at = int(row[0]), int(row[1])
    await state.remember(
        f"peer:{community}:{withdrawal.peer_id}",
        max(1.0, (expires_at - now) / 1000),
        now,
        f"{issued_at} {withdrawal.nonce} {WITHDRAWN}",
    )
    metrics.incr("swarm_beacon_withdrawals_total", result="withdrawn")
    return True


def _replay() -> BeaconError:
    return BeaconError.from_protocol(
        ProtocolError(REPLAY, "an equal or newer ticket of this peer is already stored")
    )


async def _store(
    community: str, ticket: Ticket, ip: str | None, now: int, state: SharedState
) -> list[str]:
    row = store.TicketRow(
        community=community,
        peer_id=ticket.peer_id,
        public_key=ticket.envelope["pk"],
        issued_at=ticket.issued_at,
        expires_at=ticket.expires_at,
        nonce=ticket.nonce,
        envelope=json.dumps(ticket.envelope, separators=(",", ":"), ensure_ascii=False),
        ip=ip,
    )
    cap: int = settings.SWARM_BEACON_MAX_LIVE
    limit: int = settings.SWARM_BEACON_MAX_PEERS
    database = await store.get_database()
    async with database.session() as session:
        peers = await session.announce(row, now=now, cap=cap, limit=limit)
        if peers is None:
            # Refused: the community may be missing (or was being created by a concurrent
            # first announce when the upsert ran), closed, or this is a replay. Make sure
            # it exists and is open, then try once more; a second refusal is a replay.
            await _ensure_open_community(session, community, ip, now, state)
            peers = await session.announce(row, now=now, cap=cap, limit=limit)
    if peers is None:
        raise _replay()
    return peers


async def _ensure_open_community(
    session: store.Session, name: str, ip: str | None, now: int, state: SharedState
) -> None:
    """Create the community if it is missing (within the new-community budgets);
    refuse a closed one."""
    row = await session.one(store.COMMUNITY_OPEN, [name])
    if row is None:
        await _spend_community_budget(ip, now, state)
        if await session.one(store.CREATE_COMMUNITY, [name]) is not None:
            return
        # A concurrent first announce created it meanwhile: is it open?
        row = await session.one(store.COMMUNITY_OPEN, [name])
    if row is not None and not row[0]:
        raise BeaconError(403, "community_closed", "this community is closed")


async def _spend_community_budget(ip: str | None, now: int, state: SharedState) -> None:
    """One new community from ``ip``: at most SWARM_COMMUNITY_NEW_PER_IP_HOUR per address
    and SWARM_COMMUNITY_NEW_PER_HOUR in all (hourly token buckets; 0 = no limit)."""
    buckets = []
    if ip:
        buckets.append((f"newcomm:ip:{ip}", settings.SWARM_COMMUNITY_NEW_PER_IP_HOUR, "address"))
    buckets.append(("newcomm:all", settings.SWARM_COMMUNITY_NEW_PER_HOUR, "server"))
    for key, per_hour, scope in buckets:
        if per_hour <= 0:
            continue
        wait = await state.take(key, per_hour / 3600.0, per_hour, now)
        if wait > 0:
            raise community_limit(wait, f"per {scope}")


async def peers_list(*, community: str, ip: str | None, now: int, limit: int) -> list[str]:
    check_community(community)
    if ip:
        pre = await get_state().precheck(
            ip_key=f"read:{ip}",
            rate=settings.SWARM_BEACON_READ_IP_RATE,
            burst=settings.SWARM_BEACON_READ_IP_BURST,
            peer_key=None,
            now_ms=now,
        )
        if pre.ip_wait > 0:
            raise rate_limited(pre.ip_wait, "per address")
    database = await store.get_database()
    async with database.session() as session:
        rows = await session.all(store.PEERS_BY_NAME, [community, now, limit])
    return await presence.skip_departed([r[0] for r in rows])


def tickets_prune(*, now: int) -> int:
    """Delete expired tickets; returns how many."""
    deleted, _ = PresenceTicket.objects.filter(expires_at__lte=now).delete()
    return deleted
