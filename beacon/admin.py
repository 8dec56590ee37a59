"""Admin for the rendezvous store: communities, tickets (read-only), blocks, remote beacons."""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from swarmweb.clock import now_ms

from .models import Block, Community, PresenceTicket, RemoteBeacon


def _ms(value: int) -> str:
    return datetime.fromtimestamp(value / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


@admin.register(Community)
class CommunityAdmin(admin.ModelAdmin[Community]):
    list_display = ["name", "is_open", "live_tickets", "created_at"]
    list_filter = ["is_open"]
    search_fields = ["name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Community]:
        return (
            super()
            .get_queryset(request)
            .annotate(live=Count("tickets", filter=Q(tickets__expires_at__gt=now_ms())))
        )

    @admin.display(description="live tickets", ordering="live")
    def live_tickets(self, obj: Community) -> int:
        return int(getattr(obj, "live", 0))


class LiveFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: object) -> list[tuple[str, str]]:
        return [("live", "live"), ("expired", "expired")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[PresenceTicket]
    ) -> QuerySet[PresenceTicket]:
        if self.value() == "live":
            return queryset.filter(expires_at__gt=now_ms())
        if self.value() == "expired":
            return queryset.filter(expires_at__lte=now_ms())
        return queryset


@admin.register(PresenceTicket)
class PresenceTicketAdmin(admin.ModelAdmin[PresenceTicket]):
    list_display = ["peer_id", "community", "issued", "expires", "is_live", "ip", "received_at"]
    list_filter = [LiveFilter, "community"]
    search_fields = ["peer_id", "public_key", "ip"]
    list_select_related = ["community"]
    ordering = ["-issued_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="issued (UTC)", ordering="issued_at")
    def issued(self, obj: PresenceTicket) -> str:
        return _ms(obj.issued_at)

    @admin.display(description="expires (UTC)", ordering="expires_at")
    def expires(self, obj: PresenceTicket) -> str:
        return _ms(obj.expires_at)

    @admin.display(description="live", boolean=True)
    def is_live(self, obj: PresenceTicket) -> bool:
        return obj.expires_at > now_ms()


@admin.register(Block)
class BlockAdmin(admin.ModelAdmin[Block]):
    list_display = ["kind", "value", "reason", "created_at", "expires_at", "is_active"]
    list_filter = ["kind"]
    search_fields = ["value", "reason"]

    @admin.display(description="active", boolean=True)
    def is_active(self, obj: Block) -> bool:
        from django.utils import timezone

        return obj.expires_at is None or obj.expires_at > timezone.now()


@admin.register(RemoteBeacon)
class RemoteBeaconAdmin(admin.ModelAdmin[RemoteBeacon]):
    list_display = ["name", "base_url", "enabled", "timeout_s", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["name", "base_url"]
