"""Admin for super-peers: their status (stored bytes, pinned bytes, connections), the
manifests they hold, pins (pin / unpin go through ``peers.superpeer.services``), fetch jobs with
their progress, the post entries kept, the mailbox (messages held for peers who are away) and,
for a super-peer that is a guardian, the recovery requests to approve or refuse."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html, format_html_join

from peers.replication.admin import ReplicaStatusInline, UnderTargetFilter, replicas_column

from . import services
from .errors import SuperPeerError
from .models import (
    FetchJob,
    FileManifest,
    GuardianRequest,
    Holding,
    MailboxMessage,
    Pin,
    Post,
    SuperPeer,
)


def _pretty(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


class HoldingInline(admin.TabularInline[Holding, SuperPeer]):
    model = Holding
    extra = 0
    can_delete = False
    fields = ["manifest", "chunks_held", "bytes_held", "complete", "pinned", "stored_at"]
    readonly_fields = ["manifest", "chunks_held", "bytes_held", "complete", "pinned", "stored_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SuperPeer)
class SuperPeerAdmin(admin.ModelAdmin[SuperPeer]):
    list_display = [
        "peer_id",
        "state",
        "stored",
        "pinned",
        "chunk_count",
        "connection_count",
        "last_seen",
    ]
    list_filter = ["state", "community"]
    search_fields = ["peer_id"]
    readonly_fields = [
        "peer_id",
        "community",
        "state",
        "agent",
        "started_at",
        "last_seen",
        "stored",
        "pinned",
        "chunk_count",
        "connection_table",
        "stats_json",
        "scan_json",
    ]
    exclude = ["connections", "stats", "last_scan", "storage_used", "pinned_bytes"]
    inlines = [HoldingInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # rows are written by the super-peer processes

    @admin.display(description="stored / quota")
    def stored(self, obj: SuperPeer) -> str:
        return f"{filesizeformat(obj.storage_used)} / {filesizeformat(obj.storage_budget)}"

    @admin.display(description="pinned bytes", ordering="pinned_bytes")
    def pinned(self, obj: SuperPeer) -> str:
        return str(filesizeformat(obj.pinned_bytes))

    @admin.display(description="connections")
    def connection_count(self, obj: SuperPeer) -> int:
        return len(obj.connections) if obj.state == SuperPeer.RUNNING else 0

    @admin.display(description="open connections")
    def connection_table(self, obj: SuperPeer) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    c.get("peer_id"),
                    "out" if c.get("outbound") else "in",
                    c.get("health"),
                    c.get("rtt_ms"),
                    filesizeformat(c.get("bytes_in", 0)),
                    filesizeformat(c.get("bytes_out", 0)),
                )
                for c in obj.connections
            ),
        )
        head = format_html_join(
            "", "<th>{}</th>", ((n,) for n in ("peer", "dir", "health", "rtt ms", "in", "out"))
        )
        return format_html("<table><tr>{}</tr>{}</table>", head, rows)

    @admin.display(description="counters")
    def stats_json(self, obj: SuperPeer) -> str:
        return _pretty(obj.stats)

    @admin.display(description="store scan at start")
    def scan_json(self, obj: SuperPeer) -> str:
        return _pretty(obj.last_scan)


@admin.register(FileManifest)
class FileManifestAdmin(admin.ModelAdmin[FileManifest]):
    list_display = [
        "name",
        "manifest_id",
        "human_size",
        "chunk_count",
        "replicas",
        "author",
        "first_seen",
    ]
    list_filter = [UnderTargetFilter]
    list_select_related = ["replica_status"]
    search_fields = ["manifest_id", "name", "author"]
    readonly_fields = [f.name for f in FileManifest._meta.fields]
    actions = ["pin_everywhere", "unpin_everywhere"]
    inlines = [ReplicaStatusInline]  # replica count vs target, and the manifest's own target

    @admin.display(description="replicas / target", ordering="replica_status__replicas")
    def replicas(self, obj: FileManifest) -> str:
        return replicas_column(obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="size", ordering="size")
    def human_size(self, obj: FileManifest) -> str:
        return str(filesizeformat(obj.size))

    @admin.action(description="Pin on every super-peer")
    def pin_everywhere(self, request: HttpRequest, queryset: QuerySet[FileManifest]) -> None:
        for manifest in queryset:
            services.superpeer_pin(manifest.manifest_id)
        self.message_user(request, f"pinned {queryset.count()} manifest(s)")

    @admin.action(description="Unpin everywhere (content stays until room is needed)")
    def unpin_everywhere(self, request: HttpRequest, queryset: QuerySet[FileManifest]) -> None:
        removed = sum(services.superpeer_unpin(m.manifest_id) for m in queryset)
        self.message_user(request, f"removed {removed} pin(s)")


@admin.register(Holding)
class HoldingAdmin(admin.ModelAdmin[Holding]):
    list_display = ["manifest", "superpeer", "progress", "complete", "pinned", "stored_at"]
    list_filter = ["complete", "pinned", "superpeer"]
    search_fields = ["manifest__manifest_id", "manifest__name"]
    readonly_fields = ["superpeer", "manifest", "chunks_held", "bytes_held", "complete", "pinned"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="chunks")
    def progress(self, obj: Holding) -> str:
        return f"{obj.chunks_held}/{obj.manifest.chunk_count}"


class PinForm(forms.ModelForm[Pin]):
    class Meta:
        model = Pin
        fields = ["manifest_id", "peer_id"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            services.check_pin(data.get("manifest_id", ""), data.get("peer_id", ""))
        except SuperPeerError as exc:
            raise forms.ValidationError(f"{exc.code}: {exc.message}", code=exc.code) from exc
        return data


@admin.register(Pin)
class PinAdmin(admin.ModelAdmin[Pin]):
    list_display = ["manifest_id", "target", "source", "created_at"]
    list_filter = ["source"]
    search_fields = ["manifest_id", "peer_id"]
    form = PinForm

    @admin.display(description="super-peer")
    def target(self, obj: Pin) -> str:
        return obj.peer_id or "every super-peer"

    def save_model(self, request: HttpRequest, obj: Pin, form: Any, change: bool) -> None:
        if change:  # a changed pin is a new pin: drop the old one first
            old = Pin.objects.get(pk=obj.pk)
            services.superpeer_unpin(old.manifest_id, peer_id=old.peer_id)
        pin = services.superpeer_pin(obj.manifest_id, peer_id=obj.peer_id)
        obj.pk = pin.pk

    def delete_model(self, request: HttpRequest, obj: Pin) -> None:
        services.superpeer_unpin(obj.manifest_id, peer_id=obj.peer_id)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Pin]) -> None:
        for pin in queryset:
            services.superpeer_unpin(pin.manifest_id, peer_id=pin.peer_id)


@admin.register(FetchJob)
class FetchJobAdmin(admin.ModelAdmin[FetchJob]):
    list_display = ["job_id", "kind", "peer_id", "state", "progress", "reason", "updated_at"]
    list_filter = ["state", "kind"]
    search_fields = ["job_id", "manifest_id", "peer_id"]
    readonly_fields = [f.name for f in FetchJob._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Post)
class PostAdmin(admin.ModelAdmin[Post]):
    list_display = ["author", "seq", "kind", "entry_hash", "received_at"]
    search_fields = ["author", "entry_hash"]
    readonly_fields = [f.name for f in Post._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(MailboxMessage)
class MailboxMessageAdmin(admin.ModelAdmin[MailboxMessage]):
    """What waits for peers who are away: read-only (an operator may delete, e.g. to free a
    full quota; the sender's end sends again what still matters)."""

    list_display = ["recipient", "body_kind", "sender", "size", "created_at", "expires_at"]
    list_filter = ["kind"]
    search_fields = ["recipient", "sender", "signer", "message_id"]
    readonly_fields = [f.name for f in MailboxMessage._meta.fields]

    @admin.display(description="message")
    def body_kind(self, obj: MailboxMessage) -> str:
        body = obj.envelope.get("body") if isinstance(obj.envelope, dict) else None
        return str(body.get("kind", "?")) if isinstance(body, dict) else "?"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(GuardianRequest)
class GuardianRequestAdmin(admin.ModelAdmin[GuardianRequest]):
    """Recovery requests for identities a super-peer guards. Approve only when the person
    asking has read out, on another channel, the code shown here."""

    list_display = [
        "for_peer",
        "code_shown",
        "state",
        "decision",
        "conflict",
        "error",
        "received_at",
        "expires_at",
        "guardian",
    ]
    list_filter = ["state", "conflict"]
    search_fields = ["for_peer", "temp", "code", "request_id"]
    readonly_fields = [f.name for f in GuardianRequest._meta.fields]
    actions = ["approve", "refuse"]

    @admin.display(description="verification code", ordering="code")
    def code_shown(self, obj: GuardianRequest) -> str:
        return f"{obj.code[:4]} {obj.code[4:]}"

    @admin.action(description="Approve (the code was read out to you)")
    def approve(self, request: HttpRequest, queryset: QuerySet[GuardianRequest]) -> None:
        marked = services.guardian_decide(list(queryset), GuardianRequest.APPROVE)
        self.message_user(request, f"approved {marked} request(s); the super-peer sends the shares")

    @admin.action(description="Refuse")
    def refuse(self, request: HttpRequest, queryset: QuerySet[GuardianRequest]) -> None:
        marked = services.guardian_decide(list(queryset), GuardianRequest.REFUSE)
        self.message_user(request, f"refused {marked} request(s)")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None  # the list and its actions; no edit form
