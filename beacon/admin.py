"""Admin for the rendezvous store and capsules: communities, tickets (read-only, with
actions that block their peers or keys), remote beacons, capsules, publishing runs.
Blocks and alerts are ``ops.admin``; the beacon's part of the operations dashboard is
``beacon.dashboard``."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from ops.admin import ReadOnly, ms_utc
from ops.blocks import block_create
from ops.models import Block
from shared.clock import now_ms

from . import probes, selectors
from .models import Capsule, CapsuleRun, Community, PresenceTicket, RemoteBeacon


@admin.register(Community)
class CommunityAdmin(admin.ModelAdmin[Community]):
    list_display = ["name", "is_open", "configured", "live_tickets", "created_at"]
    list_filter = ["is_open", "configured"]
    search_fields = ["name"]
    actions = ["publish_now"]

    @admin.action(description="Publish a capsule now")
    def publish_now(self, request: HttpRequest, queryset: QuerySet[Community]) -> None:
        from .dashboard import publish_and_report

        publish_and_report(request, queryset.order_by("name"))

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
    actions = ["block_peers", "block_keys"]

    @admin.action(description="Block selected peers (by peer id)")
    def block_peers(self, request: HttpRequest, queryset: QuerySet[PresenceTicket]) -> None:
        self._block(request, queryset, Block.PEER, "peer_id")

    @admin.action(description="Block selected keys (by public key)")
    def block_keys(self, request: HttpRequest, queryset: QuerySet[PresenceTicket]) -> None:
        self._block(request, queryset, Block.KEY, "public_key")

    def _block(
        self, request: HttpRequest, queryset: QuerySet[PresenceTicket], kind: str, field: str
    ) -> None:
        values = sorted(set(queryset.values_list(field, flat=True)))
        existing = set(
            Block.objects.filter(kind=kind, value__in=values)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=_now()))
            .values_list("value", flat=True)
        )
        for value in values:
            if value not in existing:
                block_create(kind=kind, value=value, reason=f"blocked by {request.user} (admin)")
        added = len(values) - len(existing & set(values))
        self.message_user(request, f"Blocked {added} (already blocked: {len(values) - added}).")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="issued (UTC)", ordering="issued_at")
    def issued(self, obj: PresenceTicket) -> str:
        return ms_utc(obj.issued_at)

    @admin.display(description="expires (UTC)", ordering="expires_at")
    def expires(self, obj: PresenceTicket) -> str:
        return ms_utc(obj.expires_at)

    @admin.display(description="live", boolean=True)
    def is_live(self, obj: PresenceTicket) -> bool:
        return obj.expires_at > now_ms()


@admin.register(RemoteBeacon)
class RemoteBeaconAdmin(admin.ModelAdmin[RemoteBeacon]):
    list_display = ["name", "base_url", "enabled", "timeout_s", "success", "last_probe"]
    list_filter = ["enabled"]
    search_fields = ["name", "base_url"]
    actions = ["probe_now"]

    @admin.display(description="success (health window)")
    def success(self, obj: RemoteBeacon) -> str:
        window = settings.SWARM_BEACON_HEALTH_WINDOW_S * 1000
        total, good = selectors.beacon_success(obj.id, since=now_ms() - window)
        return f"{good / total:.0%} of {total}" if total else "-"

    @admin.display(description="last probe")
    def last_probe(self, obj: RemoteBeacon) -> str:
        last = obj.probes.order_by("-at").first()
        if last is None:
            return "-"
        if last.ok:
            return f"ok, {last.latency_ms or 0:.0f} ms, {ms_utc(last.at)}"
        return f"failed ({last.error}), {ms_utc(last.at)}"

    @admin.action(description="Probe selected beacons now")
    def probe_now(self, request: HttpRequest, queryset: QuerySet[RemoteBeacon]) -> None:
        for beacon in queryset:
            probe = probes.beacon_probe(beacon_id=beacon.id, now=now_ms())
            if probe is None:
                self.message_user(request, f"{beacon.name}: disabled", messages.WARNING)
            elif probe.ok:
                self.message_user(request, f"{beacon.name}: ok in {probe.latency_ms:.0f} ms")
            else:
                self.message_user(request, f"{beacon.name}: {probe.error}", messages.ERROR)


@admin.register(Capsule)
class CapsuleAdmin(ReadOnly):
    list_display = ["community", "issued", "expires", "is_fresh", "peers", "kid"]
    list_filter = ["community"]
    list_select_related = ["community"]
    ordering = ["-issued_at"]
    exclude = ["envelope"]
    readonly_fields = ["pretty_envelope"]

    @admin.display(description="issued (UTC)", ordering="issued_at")
    def issued(self, obj: Capsule) -> str:
        return ms_utc(obj.issued_at)

    @admin.display(description="expires (UTC)", ordering="expires_at")
    def expires(self, obj: Capsule) -> str:
        return ms_utc(obj.expires_at)

    @admin.display(description="fresh", boolean=True)
    def is_fresh(self, obj: Capsule) -> bool:
        return obj.expires_at > now_ms()

    @admin.display(description="peers", ordering="peer_count")
    def peers(self, obj: Capsule) -> str:
        minimum = settings.SWARM_CAPSULE_MIN_PEERS
        if obj.peer_count < minimum:
            return format_html(
                '<span class="swarm-flag" title="under the minimum of {}">{} (under {})</span>',
                minimum,
                obj.peer_count,
                minimum,
            )
        return str(obj.peer_count)

    @admin.display(description="capsule")
    def pretty_envelope(self, obj: Capsule) -> str:
        import json

        return format_html("<pre>{}</pre>", json.dumps(json.loads(obj.envelope), indent=2))


@admin.register(CapsuleRun)
class CapsuleRunAdmin(ReadOnly):
    list_display = ["community", "finished", "ok", "error", "peer_count", "local_count"]
    list_display += ["remote_count", "dropped", "remote_errors"]
    list_filter = ["ok", "error", "community"]
    list_select_related = ["community"]
    ordering = ["-id"]

    @admin.display(description="finished (UTC)", ordering="finished_at")
    def finished(self, obj: CapsuleRun) -> str:
        return ms_utc(obj.finished_at)


def _now() -> object:
    from django.utils import timezone

    return timezone.now()
