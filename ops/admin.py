"""Admin for what operations keep: blocks (public keys, peer ids, addresses) and alerts
(read-only, with their webhook delivery). The dashboard is ``ops.dashboard``, linked from
the admin index."""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import Alert, Block


def ms_utc(value: int) -> str:
    """A protocol timestamp (ms since the epoch) as the admin lists show it (UTC)."""
    return datetime.fromtimestamp(value / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


class ReadOnly(admin.ModelAdmin):  # type: ignore[type-arg]
    """Lists of what the system writes: shown, never added or edited by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Block)
class BlockAdmin(admin.ModelAdmin[Block]):
    list_display = ["kind", "value", "reason", "created_at", "expires_at", "is_active"]
    list_filter = ["kind"]
    search_fields = ["value", "reason"]
    actions = ["unblock"]

    @admin.action(description="Unblock selected (delete the blocks)")
    def unblock(self, request: HttpRequest, queryset: QuerySet[Block]) -> None:
        count = 0
        for block in queryset:  # one by one: each delete tells every process (signals)
            block.delete()
            count += 1
        self.message_user(request, f"Removed {count} block(s).")

    @admin.display(description="active", boolean=True)
    def is_active(self, obj: Block) -> bool:
        from django.utils import timezone

        return obj.expires_at is None or obj.expires_at > timezone.now()


class AlertStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: object) -> list[tuple[str, str]]:
        return [("open", "open"), ("resolved", "resolved")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Alert]) -> QuerySet[Alert]:
        if self.value() == "open":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(Alert)
class AlertAdmin(ReadOnly):
    list_display = ["kind", "subject", "is_open", "opened", "resolved", "delivery", "message"]
    list_filter = [AlertStateFilter, "kind"]
    search_fields = ["subject", "message"]

    @admin.display(description="open", boolean=True)
    def is_open(self, obj: Alert) -> bool:
        return obj.resolved_at is None

    @admin.display(description="opened (UTC)", ordering="opened_at")
    def opened(self, obj: Alert) -> str:
        return ms_utc(obj.opened_at)

    @admin.display(description="resolved (UTC)", ordering="resolved_at")
    def resolved(self, obj: Alert) -> str:
        return ms_utc(obj.resolved_at) if obj.resolved_at else "-"

    @admin.display(description="webhook")
    def delivery(self, obj: Alert) -> str:
        if not settings.SWARM_ALERT_WEBHOOK_URL:
            return "no webhook configured"
        parts = ["raised " + ("sent" if obj.raised_sent_at else "pending")]
        if obj.resolved_at:
            parts.append("recovery " + ("sent" if obj.resolved_sent_at else "pending"))
        if obj.last_delivery_error:
            parts.append(f"last error: {obj.last_delivery_error}")
        return ", ".join(parts)
