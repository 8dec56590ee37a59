"""Beacon reads."""

from __future__ import annotations

from django.db.models import Count, Q

from .models import BeaconProbe, Capsule, CapsuleRun, Community, PresenceTicket


def live_ticket_json(
    community_id: int, *, now: int, limit: int, exclude_peer: str | None = None
) -> list[str]:
    """Signed tickets (as stored JSON) of live peers, newest first."""
    qs = PresenceTicket.objects.filter(community_id=community_id, expires_at__gt=now)
    if exclude_peer is not None:
        qs = qs.exclude(peer_id=exclude_peer)
    return list(qs.order_by("-issued_at", "-id").values_list("envelope", flat=True)[:limit])


def live_counts(*, now: int) -> list[tuple[str, int]]:
    """(name, live tickets) of the communities worth reporting: configured ones, and
    any other while it has live tickets (made-up names never become series)."""
    rows = (
        Community.objects.annotate(live=Count("tickets", filter=Q(tickets__expires_at__gt=now)))
        .filter(Q(configured=True) | Q(live__gt=0))
        .values_list("name", "live")
    )
    return list(rows)


def reported_community_ids(*, now: int) -> set[int]:
    """Communities /metrics reports on: configured, or with live tickets now."""
    return set(
        Community.objects.filter(Q(configured=True) | Q(tickets__expires_at__gt=now))
        .distinct()
        .values_list("id", flat=True)
    )


def capsule_failure_streak(community_id: int) -> int:
    """How many of the community's latest publishing runs failed in a row."""
    streak = 0
    for ok in (
        CapsuleRun.objects.filter(community_id=community_id)
        .order_by("-id")
        .values_list("ok", flat=True)[:20]
    ):
        if ok:
            break
        streak += 1
    return streak


def active_community_ids(*, now: int) -> list[int]:
    """Open communities worth a capsule: configured in the admin, or with live tickets
    now (one that an announce created costs nothing once its tickets are gone)."""
    return list(
        Community.objects.filter(is_open=True)
        .filter(Q(configured=True) | Q(tickets__expires_at__gt=now))
        .distinct()
        .order_by("name")
        .values_list("id", flat=True)
    )


def newest_capsule(community: str) -> Capsule | None:
    """The newest capsule of a community by name (expired or not)."""
    return Capsule.objects.filter(community__name=community).order_by("-issued_at", "-id").first()


def beacon_success(beacon_id: int, *, since: int) -> tuple[int, int]:
    """(probes, successful probes) of a remote beacon since ``since`` (ms)."""
    row = BeaconProbe.objects.filter(beacon_id=beacon_id, at__gte=since).aggregate(
        total=Count("id"), ok=Count("id", filter=Q(ok=True))
    )
    return int(row["total"]), int(row["ok"])
