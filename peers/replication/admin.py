"""Admin: replica count vs target per manifest (filter "under target"), targets per
community and per manifest, the backfill queue (replication fetch jobs) and the history of
backfill runs, with an action to run the backfill now."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import F, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from peers.superpeer.models import FetchJob, FileManifest

from . import services
from .models import BackfillJob, BackfillRun, CommunityTarget, ReplicaStatus


class UnderTargetFilter(admin.SimpleListFilter):
    """Manifests with fewer complete verified replicas than their target (as of the last
    backfill run); works on file manifests and on replica status rows."""

    title = "replicas"
    parameter_name = "replicas"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("under", "under target"), ("lost", "lost"), ("ok", "at target")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        prefix = "replica_status__" if queryset.model is FileManifest else ""
        value = self.value()
        if value == "under":
            return queryset.filter(**{f"{prefix}replicas__lt": F(f"{prefix}effective_target")})
        if value == "lost":
            return queryset.filter(**{f"{prefix}state": ReplicaStatus.LOST})
        if value == "ok":
            return queryset.filter(**{f"{prefix}replicas__gte": F(f"{prefix}effective_target")})
        return queryset


def replicas_column(obj: FileManifest) -> str:
    """``replicas / target`` of a manifest, marked when under target."""
    status = getattr(obj, "replica_status", None)
    if status is None:
        return "-"
    return _count(status)


def _count(status: ReplicaStatus) -> str:
    text = f"{status.replicas} / {status.effective_target}"
    if status.replicas < status.effective_target:
        return format_html('<strong class="replicas-under">{}</strong> ({})', text, status.state)
    return format_html('<span class="replicas-ok">{}</span>', text)


class ReplicaStatusInline(admin.StackedInline[ReplicaStatus, FileManifest]):
    """On a file manifest: its own target (editable) and what the last run saw."""

    model = ReplicaStatus
    can_delete = False
    fields = ["target", "effective_target", "replicas", "state", "holder_list", "jobs"]
    readonly_fields = ["effective_target", "replicas", "state", "holder_list", "jobs"]

    @admin.display(description="holders")
    def holder_list(self, obj: ReplicaStatus) -> str:
        return format_html_join(
            ", ", "{} ({})", ((h.get("peer"), h.get("kind")) for h in obj.holders)
        )


@admin.register(ReplicaStatus)
class ReplicaStatusAdmin(admin.ModelAdmin[ReplicaStatus]):
    list_display = ["manifest", "count", "state", "community", "under_since", "job_count"]
    list_filter = [UnderTargetFilter, "state", "community"]
    search_fields = ["manifest__manifest_id", "manifest__name"]
    list_select_related = ["manifest"]
    STATUS_FIELDS = (
        "manifest",
        "community",
        "target",
        "effective_target",
        "replicas",
        "state",
        "holders",
        "jobs",
        "under_since",
        "lost_since",
        "retry_at",
        "checked_at",
    )
    fields = STATUS_FIELDS
    readonly_fields = [f for f in STATUS_FIELDS if f != "target"]
    actions = ["run_backfill"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # rows are written by the backfill run

    @admin.display(description="replicas / target", ordering="replicas")
    def count(self, obj: ReplicaStatus) -> str:
        return _count(obj)

    @admin.display(description="jobs")
    def job_count(self, obj: ReplicaStatus) -> int:
        return len(obj.jobs)

    @admin.action(description="Run the backfill now")
    def run_backfill(self, request: HttpRequest, queryset: QuerySet[ReplicaStatus]) -> None:
        services.request_backfill("admin")
        self.message_user(request, "backfill run requested")


@admin.register(CommunityTarget)
class CommunityTargetAdmin(admin.ModelAdmin[CommunityTarget]):
    list_display = ["community", "target"]
    search_fields = ["community"]


@admin.register(BackfillJob)
class BackfillJobAdmin(admin.ModelAdmin[BackfillJob]):
    """The backfill queue: replication fetch jobs, newest first."""

    list_display = ["job_id", "state", "peer_id", "manifest_id", "progress", "attempt", "reason"]
    list_filter = ["state"]
    search_fields = ["job_id", "manifest_id", "peer_id"]
    readonly_fields = [f.name for f in FetchJob._meta.fields]

    def get_queryset(self, request: HttpRequest) -> QuerySet[BackfillJob]:
        return super().get_queryset(request).filter(kind=FetchJob.REPLICATION)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(BackfillRun)
class BackfillRunAdmin(admin.ModelAdmin[BackfillRun]):
    """History of backfill runs."""

    list_display = [
        "started_at",
        "trigger",
        "manifests",
        "under_target",
        "lost",
        "super_peers",
        "jobs_in_flight",
        "jobs_started",
        "jobs_cancelled",
        "alerts",
        "bytes_fetched",
        "duration_ms",
        "error",
    ]
    list_filter = ["trigger"]
    readonly_fields = [f.name for f in BackfillRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
