"""Capsule publishing: collect, re-verify, dedupe, sign, store, write the static file.

``capsule_publish`` is the whole job for one community; the Celery task, the
``publish_capsules`` command and the admin action all call it. Each attempt that
finishes leaves a ``CapsuleRun`` row: two failed runs in a row open an alert, a
success resolves it. A run killed midway leaves nothing behind but the previous
capsule (database row and file), which stays served until the next run replaces it.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, transaction

from ops import alerts, blocks, metrics
from ops.models import Alert
from peers.protocol.capsule import MAX_PEERS, make_capsule, select_tickets
from peers.protocol.ticket import Ticket

from . import capsule_files, capsule_keys, federation, selectors
from .models import Capsule, CapsuleRun, Community, RemoteBeacon

log = logging.getLogger(__name__)

# /capsules/keys.json is the key list, so a community of that name cannot have a capsule.
RESERVED_NAMES = frozenset({"keys"})
KEEP_CAPSULES = 3  # newest rows kept per community (besides unexpired ones)
FAILURES_FOR_ALERT = 2

metrics.describe("swarm_capsule_publishes_total", "Capsule publishing runs, by result.")
metrics.describe(
    "swarm_capsule_tickets_dropped_total",
    "Candidate tickets left out of capsules, by reason (forged, expired, blocked...).",
)
metrics.describe("swarm_federation_fetches_total", "Remote beacon /peers fetches, by result.")


class PublishError(Exception):
    """A publishing run failed; ``code`` is stable (shown in the admin and alerts)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    capsule: Capsule | None
    run: CapsuleRun | None
    skipped: bool = False


def capsule_publish(
    *, community_id: int, now: int, requested_at: int | None = None
) -> PublishOutcome:
    """Publish one capsule for the community; raise ``PublishError`` if it fails.

    With ``requested_at`` (a queued request), a capsule issued since then already did
    the work and the call is a no-op: a redelivered or duplicated task is harmless.
    """
    community = Community.objects.filter(id=community_id).first()
    if community is None:  # deleted since the request was queued: nothing to publish
        return PublishOutcome(capsule=None, run=None, skipped=True)
    if (
        requested_at is not None
        and Capsule.objects.filter(community=community, issued_at__gte=requested_at).exists()
    ):
        return PublishOutcome(capsule=None, run=None, skipped=True)
    try:
        capsule, run = _publish(community, now)
    except Exception as exc:
        error = _as_publish_error(exc)
        log.warning("capsule for %s failed: %s %s", community.name, error.code, error.message)
        _record_failure(community, now, error)
        raise error from exc
    metrics.incr("swarm_capsule_publishes_total", result="ok")
    alerts.alert_resolve(kind=Alert.PUBLISH_FAILING, subject=community.name, now=now)
    return PublishOutcome(capsule=capsule, run=run)


def _as_publish_error(exc: Exception) -> PublishError:
    if isinstance(exc, PublishError):
        return exc
    if isinstance(exc, OSError):
        return PublishError("write_failed", f"cannot write the capsule file: {exc}")
    if isinstance(exc, DatabaseError):
        return PublishError("database", f"database error: {exc}")
    return PublishError("internal", f"{type(exc).__name__}: {exc}")


def _publish(community: Community, now: int) -> tuple[Capsule, CapsuleRun]:
    if community.name in RESERVED_NAMES:
        raise PublishError("reserved_name", f"community {community.name!r} cannot have a capsule")
    current = capsule_keys.signing_key()
    if current is None:
        raise PublishError("no_signing_key", "no capsule key: run `manage.py capsule_key create`")
    meta, private_key = current
    local = [
        json.loads(text)
        for text in selectors.live_ticket_json(
            community.id, now=now, limit=settings.SWARM_BEACON_MAX_LIVE
        )
    ]
    fetched = _fetch_remotes(community.name)
    remote = [ticket for result in fetched for ticket in result.tickets]
    block_set = blocks.load("")

    def blocked(ticket: Ticket) -> bool:
        return block_set.blocks(public_key=ticket.envelope["pk"], peer_id=ticket.peer_id)

    selection = select_tickets(
        [*local, *remote],
        community=community.name,
        now=now,
        limit=MAX_PEERS,
        exclude=blocked,
        max_ttl_ms=settings.SWARM_TICKET_MAX_TTL_MS,
    )
    envelope = make_capsule(
        private_key, community=community.name, now=now, peers=selection.envelopes
    )
    text = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
    dropped = Counter(selection.dropped)
    if selection.over_limit:
        dropped["over_limit"] = selection.over_limit
    with transaction.atomic():
        capsule = Capsule.objects.create(
            community=community,
            kid=meta.kid,
            issued_at=now,
            expires_at=envelope["body"]["expires_at"],
            peer_count=len(selection.tickets),
            envelope=text,
        )
        run = CapsuleRun.objects.create(
            community=community,
            started_at=now,
            finished_at=_clock_after(now),
            ok=True,
            capsule=capsule,
            peer_count=len(selection.tickets),
            local_count=len(local),
            remote_count=len(remote),
            dropped=dict(sorted(dropped.items())),
            remote_errors={r.name: r.error for r in fetched if not r.ok},
        )
        # The file last: if writing it fails, the rows roll back and the run is a failure.
        capsule_files.write_atomic(capsule_files.capsule_path(community.name), text.encode())
        keys_file_write(now=now)
    _prune_capsules(community, now)
    for reason, count in dropped.items():
        metrics.incr("swarm_capsule_tickets_dropped_total", count, reason=reason)
    log.info(
        "capsule for %s: %d peers (%d local, %d remote candidates), dropped %s",
        community.name,
        capsule.peer_count,
        len(local),
        len(remote),
        dict(dropped),
    )
    return capsule, run


def keys_file_write(*, now: int) -> None:
    """Write ``keys.json`` beside the capsule files (what ``/capsules/keys.json`` serves)."""
    document = capsule_keys.keys_document(now=now)
    capsule_files.write_atomic(
        capsule_files.keys_path(), json.dumps(document, separators=(",", ":")).encode()
    )


def _clock_after(started: int) -> int:
    from shared.clock import now_ms

    return max(started, now_ms())


def _fetch_remotes(community: str) -> list[federation.Fetched]:
    remotes = [
        federation.Remote(b.name, b.base_url, b.timeout_s)
        for b in RemoteBeacon.objects.filter(enabled=True)
    ]
    results = federation.fetch_all(
        remotes,
        community,
        retries=settings.SWARM_FEDERATION_RETRIES,
        backoff_s=settings.SWARM_FEDERATION_BACKOFF_S,
    )
    for result in results:
        metrics.incr("swarm_federation_fetches_total", result=result.error or "ok")
        if not result.ok:
            log.warning("remote beacon %s: %s", result.name, result.error)
    return results


def _prune_capsules(community: Community, now: int) -> None:
    keep = list(
        Capsule.objects.filter(community=community)
        .order_by("-issued_at", "-id")
        .values_list("id", flat=True)[:KEEP_CAPSULES]
    )
    Capsule.objects.filter(community=community, expires_at__lte=now).exclude(id__in=keep).delete()


def _record_failure(community: Community, now: int, error: PublishError) -> None:
    metrics.incr("swarm_capsule_publishes_total", result="failed")
    CapsuleRun.objects.create(
        community=community,
        started_at=now,
        finished_at=_clock_after(now),
        ok=False,
        error=error.code,
        message=error.message[:500],
    )
    if selectors.capsule_failure_streak(community.id) >= FAILURES_FOR_ALERT:
        alerts.alert_raise(
            kind=Alert.PUBLISH_FAILING,
            subject=community.name,
            message=f"capsule publishing failed {FAILURES_FOR_ALERT} times in a row: "
            f"{error.code}: {error.message}",
            now=now,
        )
