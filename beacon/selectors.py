"""Beacon reads."""

from __future__ import annotations

from .models import PresenceTicket


def live_ticket_json(
    community_id: int, *, now: int, limit: int, exclude_peer: str | None = None
) -> list[str]:
    """Signed tickets (as stored JSON) of live peers, newest first."""
    qs = PresenceTicket.objects.filter(community_id=community_id, expires_at__gt=now)
    if exclude_peer is not None:
        qs = qs.exclude(peer_id=exclude_peer)
    return list(qs.order_by("-issued_at", "-id").values_list("envelope", flat=True)[:limit])


def live_counts(*, now: int) -> list[tuple[str, int]]:
    from django.db.models import Count, Q

    from .models import Community

    rows = Community.objects.annotate(
        live=Count("tickets", filter=Q(tickets__expires_at__gt=now))
    ).values_list("name", "live")
    return list(rows)
