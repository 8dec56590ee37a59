"""Writes the admin, views and Celery tasks make about super-peers (docs/superpeer.md).

Each service changes the database (the truth) and then, after commit, tells the super-peers
through the channel layer so they act at once; a super-peer that missed the message (down,
or the embedded in-process layer) catches up from the database on its next sync.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

from peers.protocol.chunks import is_digest_id
from peers.protocol.encoding import PEER_ID_RE
from peers.protocol.replication.messages import cancel_message, fetch_message
from peers.protocol.replication.model import CancelJob
from peers.protocol.replication.model import FetchJob as PlannedJob

from .control import group_for, sync_message
from .errors import BAD_MANIFEST_ID, BAD_PEER_ID, SuperPeerError
from .models import FetchJob, GuardianRequest, Pin

logger = logging.getLogger(__name__)


def check_pin(manifest_id: str, peer_id: str) -> None:
    """Raise ``bad_manifest_id`` / ``bad_peer_id`` for what a pin cannot name."""
    if not is_digest_id(manifest_id):
        raise SuperPeerError(BAD_MANIFEST_ID, "a manifest id is 43 characters of base64url")
    if peer_id and not PEER_ID_RE.match(peer_id):
        raise SuperPeerError(BAD_PEER_ID, "a super-peer id is a key-bound peer id")


def notify(peer_id: str, message: dict[str, Any]) -> None:
    """Send ``message`` to one super-peer's group (every super-peer's when ``peer_id`` is
    empty) once the current transaction commits. Failures are logged: the database already
    holds the change and super-peers sync from it."""
    group = group_for(peer_id)

    def publish(layer: Any) -> None:
        try:
            async_to_sync(layer.group_send)(group, message)
        except Exception:  # the channel layer is a shortcut, never the only way
            logger.warning("could not notify %s", group, exc_info=True)

    def send() -> None:
        layer = get_channel_layer()
        # The in-process layer reaches no super-peer process: they sync from the database.
        if layer is None or isinstance(layer, InMemoryChannelLayer):
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            publish(layer)
        else:  # called from async code's thread: async_to_sync cannot run here
            threading.Thread(target=publish, args=(layer,), daemon=True).start()

    transaction.on_commit(send)


@transaction.atomic
def superpeer_pin(manifest_id: str, *, peer_id: str = "", source: str = Pin.ADMIN) -> Pin:
    """Keep ``manifest_id`` on super-peer ``peer_id`` (every super-peer when empty): it
    fetches the manifest and every chunk from whoever advertises them, and never evicts it."""
    check_pin(manifest_id, peer_id)
    pin, _ = Pin.objects.get_or_create(
        manifest_id=manifest_id, peer_id=peer_id, defaults={"source": source}
    )
    notify(peer_id, sync_message())
    return pin


@transaction.atomic
def superpeer_unpin(manifest_id: str, *, peer_id: str | None = None) -> int:
    """Drop pins of ``manifest_id``: on ``peer_id`` only, or every pin when None. The content
    stays until the quota needs its room (then it goes oldest first). Returns pins removed."""
    check_pin(manifest_id, peer_id or "")
    pins = Pin.objects.filter(manifest_id=manifest_id)
    if peer_id is not None:
        pins = pins.filter(peer_id=peer_id)
    peers = set(pins.values_list("peer_id", flat=True))
    removed, _ = pins.delete()
    FetchJob.objects.filter(
        manifest_id=manifest_id, kind=FetchJob.PIN, state__in=FetchJob.ACTIVE
    ).filter(**({} if peer_id is None else {"peer_id": peer_id})).update(
        state=FetchJob.CANCELLED, reason="unpinned"
    )
    for target in peers or {peer_id or ""}:
        notify(target, sync_message())
    return removed


@transaction.atomic
def superpeer_dispatch_fetch(job: PlannedJob) -> FetchJob:
    """Record a planner's fetch job and hand it to its super-peer (Celery backfill)."""
    row, _ = FetchJob.objects.update_or_create(
        job_id=job.job_id,
        defaults={
            "kind": FetchJob.REPLICATION,
            "peer_id": job.fetcher,
            "manifest_id": job.manifest_id,
            "state": FetchJob.QUEUED,
            "chunks_total": job.chunk_count,
            "sources": list(job.sources),
            "attempt": job.attempt,
            "deadline_ms": job.deadline,
        },
    )
    Pin.objects.get_or_create(
        manifest_id=job.manifest_id, peer_id=job.fetcher, defaults={"source": Pin.REPLICATION}
    )
    notify(job.fetcher, fetch_message(job))
    return row


@transaction.atomic
def superpeer_cancel_fetch(cancel: CancelJob) -> None:
    """Stop a replication job; a copy kept only for it becomes evictable."""
    FetchJob.objects.filter(job_id=cancel.job_id, state__in=FetchJob.ACTIVE).update(
        state=FetchJob.CANCELLED, reason=cancel.reason.value
    )
    Pin.objects.filter(
        manifest_id=cancel.manifest_id, peer_id=cancel.fetcher, source=Pin.REPLICATION
    ).delete()
    notify(cancel.fetcher, cancel_message(cancel))


@transaction.atomic
def guardian_decide(requests: list[GuardianRequest], decision: str) -> int:
    """The operator approves (``approve``) or refuses (``refuse``) recovery requests a
    super-peer guards; it applies the decision at its next sync (told at once). Requests
    already decided are left as they are; returns how many were marked."""
    if decision not in (GuardianRequest.APPROVE, GuardianRequest.REFUSE):
        raise ValueError(f"not a decision: {decision!r}")
    pending = [r for r in requests if r.state == GuardianRequest.PENDING]
    for request in pending:
        GuardianRequest.objects.filter(pk=request.pk).update(decision=decision, error="")
    for guardian in sorted({r.guardian for r in pending}):
        notify(guardian, sync_message())
    return len(pending)
