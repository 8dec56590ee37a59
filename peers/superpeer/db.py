"""The super-peer's database reads and writes (plain sync ORM; the service runs them in
asgiref's thread with ``shared.db.db_sync_to_async``, which gives the connection back
after each, so a database restart never leaves the long-running process a dead one)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from ops.models import Block
from peers.protocol.encoding import b64url_decode, peer_id_for_key
from peers.protocol.errors import OVER_QUOTA, ProtocolError
from peers.protocol.manifest import Manifest, verify_manifest
from peers.protocol.posts import PostEntry
from peers.replication.selectors import last_backfill_at
from peers.superpeer.models import (
    FetchJob,
    FileManifest,
    GuardianRequest,
    GuardianState,
    Holding,
    KeyAnnouncement,
    MailboxMessage,
    Pin,
    Post,
    SuperPeer,
)

if TYPE_CHECKING:
    from .config import MailboxLimits
    from .mailbox import Letter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredHolding:
    manifest: Manifest
    pinned: bool
    stored_at_ms: int


@dataclass(frozen=True)
class JobRow:
    job_id: str
    kind: str
    manifest_id: str
    sources: tuple[str, ...]
    state: str


def register(peer_id: str, community: str, agent: str, budget: int, scan: dict[str, Any]) -> None:
    now = timezone.now()
    SuperPeer.objects.update_or_create(
        peer_id=peer_id,
        defaults={
            "community": community,
            "agent": agent,
            "state": SuperPeer.RUNNING,
            "started_at": now,
            "last_seen": now,
            "storage_budget": budget,
            "last_scan": scan,
            "connections": [],
        },
    )
    # Jobs a previous run left in flight start again from what the store holds.
    FetchJob.objects.filter(peer_id=peer_id, state=FetchJob.FETCHING).update(state=FetchJob.QUEUED)


def load_holdings(peer_id: str) -> list[StoredHolding]:
    """This super-peer's holdings with their manifests, verified again (a row that no
    longer verifies is logged and skipped: its chunks become unreferenced)."""
    out = []
    rows = Holding.objects.filter(superpeer__peer_id=peer_id).select_related("manifest")
    for row in rows:
        try:
            manifest = verify_manifest(row.manifest.envelope, expected_id=row.manifest.manifest_id)
        except ProtocolError as exc:
            logger.warning("holding %s no longer verifies: %s", row.manifest.manifest_id, exc)
            continue
        out.append(StoredHolding(manifest, row.pinned, int(row.stored_at.timestamp() * 1000)))
    return out


def pinned_manifests(peer_id: str) -> set[str]:
    """Manifest ids pinned on this super-peer or on every super-peer."""
    pins = Pin.objects.filter(Q(peer_id="") | Q(peer_id=peer_id))
    return set(pins.values_list("manifest_id", flat=True))


def active_jobs(peer_id: str) -> list[JobRow]:
    rows = FetchJob.objects.filter(peer_id=peer_id, state__in=FetchJob.ACTIVE)
    return [
        JobRow(r.job_id, r.kind, r.manifest_id, tuple(r.sources), r.state)
        for r in rows.order_by("created_at")
    ]


def job_state(job_id: str) -> str | None:
    return FetchJob.objects.filter(job_id=job_id).values_list("state", flat=True).first()


def ensure_pin_job(peer_id: str, manifest_id: str, job_id: str) -> None:
    FetchJob.objects.update_or_create(
        job_id=job_id,
        defaults={
            "kind": FetchJob.PIN,
            "peer_id": peer_id,
            "manifest_id": manifest_id,
            "state": FetchJob.QUEUED,
            "reason": "",
            "finished_at": None,
        },
    )


def update_job(job_id: str, **fields: Any) -> None:
    if fields.get("state") in (FetchJob.DONE, FetchJob.FAILED, FetchJob.CANCELLED):
        fields.setdefault("finished_at", timezone.now())
    FetchJob.objects.filter(job_id=job_id).update(updated_at=timezone.now(), **fields)


def save_manifest(manifest: Manifest) -> None:
    FileManifest.objects.get_or_create(
        manifest_id=manifest.id,
        defaults={
            "envelope": manifest.envelope,
            "file_id": manifest.file_id,
            "name": manifest.name,
            "mime": manifest.mime,
            "size": manifest.size,
            "chunk_count": len(manifest.chunks),
            "author": manifest.author,
            "created_at_ms": manifest.created_at,
        },
    )


@transaction.atomic
def save_holdings(peer_id: str, changes: list[tuple[str, int, int, bool, bool]]) -> None:
    """(manifest id, chunks held, bytes held, complete, pinned); 0 chunks deletes it."""
    superpeer = SuperPeer.objects.filter(peer_id=peer_id).first()
    if superpeer is None:
        return
    for manifest_id, chunks, size, complete, pinned in changes:
        holdings = Holding.objects.filter(superpeer=superpeer, manifest__manifest_id=manifest_id)
        if chunks == 0 and not pinned:
            holdings.delete()
            continue
        manifest = FileManifest.objects.filter(manifest_id=manifest_id).first()
        if manifest is None:
            continue
        Holding.objects.update_or_create(
            superpeer=superpeer,
            manifest=manifest,
            defaults={
                "chunks_held": chunks,
                "bytes_held": size,
                "complete": complete,
                "pinned": pinned,
            },
        )


def delete_holding(peer_id: str, manifest_id: str) -> None:
    Holding.objects.filter(superpeer__peer_id=peer_id, manifest__manifest_id=manifest_id).delete()


def write_status(peer_id: str, community: str, **fields: Any) -> bool:
    """Update the super-peer's row; True when it had to be made again (someone deleted it,
    and its holdings with it: the caller writes them all again)."""
    updated = SuperPeer.objects.filter(peer_id=peer_id).update(last_seen=timezone.now(), **fields)
    if updated:
        return False
    SuperPeer.objects.update_or_create(
        peer_id=peer_id,
        defaults={"community": community, "last_seen": timezone.now(), **fields},
    )
    return True


def mark_stopped(peer_id: str) -> None:
    SuperPeer.objects.filter(peer_id=peer_id).update(
        last_seen=timezone.now(), state=SuperPeer.STOPPED, connections=[]
    )
    FetchJob.objects.filter(peer_id=peer_id, state=FetchJob.FETCHING).update(state=FetchJob.QUEUED)


def blocked_peers() -> set[str]:
    """Peer ids blocked by an active Block (by peer id, or by public key)."""
    active = Block.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()),
        kind__in=[Block.PEER, Block.KEY],
    )
    out = set()
    for kind, value in active.values_list("kind", "value"):
        if kind == Block.PEER:
            out.add(value)
            continue
        try:
            out.add(peer_id_for_key(b64url_decode(value, field="key")))
        except ProtocolError:
            continue
    return out


def store_post(entry: PostEntry) -> str:
    """Keep a verified post entry: ``stored``, ``duplicate``, or ``fork`` (another entry
    already holds that author and seq; the first one seen stays, as in a log)."""
    existing = Post.objects.filter(author=entry.author, seq=entry.seq).first()
    if existing is not None:
        return "duplicate" if existing.entry_hash == entry.hash else "fork"
    try:
        Post.objects.create(
            entry_hash=entry.hash,
            author=entry.author,
            seq=entry.seq,
            kind=entry.kind,
            envelope=entry.envelope,
            created_at_ms=entry.created_at,
        )
    except IntegrityError:
        return "duplicate"
    return "stored"


# --- mailboxes (docs/superpeer.md "Mailboxes") ---


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(frozen=True)
class PutResult:
    stored: bool
    code: str | None = None  # a refusal (over_quota), with its message
    message: str = ""


def mailbox_put(letter: Letter, limits: MailboxLimits, *, received_by: str, now: int) -> PutResult:
    """Keep a verified message unless it is held already (``stored`` False, no code) or a
    quota is full (``over_quota``: in all, for its sender, for its recipient; expired rows
    awaiting the upkeep do not count). The per-sender quota counts shard messages by the
    peer that handed them in and mails and acks by their signer (``Letter.quota_party``).
    Several super-peers sharing the database may pass a quota by the writes they make at
    the same moment."""
    held = MailboxMessage.objects.filter(
        recipient=letter.recipient, signer=letter.signer, message_id=letter.message_id
    )
    if held.exists():
        return PutResult(stored=False)
    live = MailboxMessage.objects.filter(expires_at__gt=_at(now))
    party = letter.quota_party
    by_party = Q(kind=MailboxMessage.SHARD, sender=party) | (
        ~Q(kind=MailboxMessage.SHARD) & Q(signer=party)
    )
    for count, limit, what in (
        (live.count, limits.total, "the mailbox"),
        (live.filter(by_party).count, limits.per_sender, "this sender"),
        (live.filter(recipient=letter.recipient).count, limits.per_recipient, "this recipient"),
    ):
        if count() >= limit:
            return PutResult(False, OVER_QUOTA, f"{what} holds {limit} messages already")
    try:
        with transaction.atomic():
            MailboxMessage.objects.create(
                kind=letter.kind,
                recipient=letter.recipient,
                sender=letter.sender,
                signer=letter.signer,
                message_id=letter.message_id,
                envelope=letter.envelope,
                size=letter.size,
                received_by=received_by,
                expires_at=_at(letter.expires_at),
            )
    except IntegrityError:
        return PutResult(stored=False)
    return PutResult(stored=True)


def mailbox_waiting(recipient: str, *, now: int, limit: int) -> list[tuple[str, Any]]:
    """(message id, envelope) of what waits for ``recipient``, oldest first."""
    rows = MailboxMessage.objects.filter(recipient=recipient, expires_at__gt=_at(now))
    return list(rows.order_by("created_at", "id").values_list("message_id", "envelope")[:limit])


@dataclass(frozen=True)
class WaitingRow:
    pk: int
    kind: str
    signer: str
    message_id: str
    envelope: Any


def mailbox_rows(recipient: str, *, kinds: list[str], now: int, limit: int) -> list[WaitingRow]:
    """The rows of ``kinds`` waiting for ``recipient``, oldest first."""
    rows = MailboxMessage.objects.filter(
        recipient=recipient, kind__in=kinds, expires_at__gt=_at(now)
    ).order_by("created_at", "id")
    fields = ("pk", "kind", "signer", "message_id", "envelope")
    return [WaitingRow(*values) for values in rows.values_list(*fields)[:limit]]


def mailbox_delete(recipient: str, message_ids: list[str]) -> int:
    rows = MailboxMessage.objects.filter(recipient=recipient, message_id__in=message_ids)
    return rows.delete()[0]


def mailbox_delete_rows(pks: list[int]) -> int:
    return MailboxMessage.objects.filter(pk__in=pks).delete()[0]


def mailbox_acked(*, recipient: str, signer: str, mail_ids: list[str]) -> int:
    """Delete the mails an ack names: for ``recipient`` (the ack's signer), written by
    ``signer`` (the peer the ack goes to), with those ids; nothing else. How many."""
    rows = MailboxMessage.objects.filter(
        kind=MailboxMessage.MAIL, recipient=recipient, signer=signer, message_id__in=mail_ids
    )
    return rows.delete()[0]


def mailbox_prune(*, now: int) -> int:
    """Delete the messages whose time is over; how many."""
    return MailboxMessage.objects.filter(expires_at__lte=_at(now)).delete()[0]


def mailbox_recipients(peer_ids: list[str], *, now: int) -> set[str]:
    """Those of ``peer_ids`` that have messages waiting."""
    rows = MailboxMessage.objects.filter(recipient__in=peer_ids, expires_at__gt=_at(now))
    return set(rows.values_list("recipient", flat=True).distinct())


# --- the key directory (docs/superpeer.md "Key directory") ---


def key_put(peer_id: str, envelope: dict[str, Any], created_at: int, *, now: int) -> bool:
    """Keep a verified announcement of ``peer_id`` unless a newer one is held (then only
    mark it heard); whether this one is kept now."""
    with transaction.atomic():
        row = KeyAnnouncement.objects.select_for_update().filter(peer_id=peer_id).first()
        if row is not None and row.created_at_ms >= created_at:
            KeyAnnouncement.objects.filter(pk=row.pk).update(heard_at=_at(now))
            return False
        try:
            with transaction.atomic():
                KeyAnnouncement.objects.update_or_create(
                    peer_id=peer_id,
                    defaults={
                        "envelope": envelope,
                        "created_at_ms": created_at,
                        "heard_at": _at(now),
                    },
                )
        except IntegrityError:  # another super-peer wrote it at the same moment
            return False
    return True


def key_get(peer_id: str) -> dict[str, Any] | None:
    row = KeyAnnouncement.objects.filter(peer_id=peer_id).values_list("envelope", flat=True)
    return row.first()


def key_prune(*, before: int) -> int:
    """Delete the announcements not heard since ``before`` (ms); how many."""
    return KeyAnnouncement.objects.filter(heard_at__lt=_at(before)).delete()[0]


# --- the super-peer as a guardian (docs/superpeer.md "The super-peer as a guardian") ---


@dataclass(frozen=True)
class RequestRow:
    request_id: str
    for_peer: str
    temp: str
    code: str
    conflict: bool
    state: str
    received_at: int  # ms
    expires_at: int  # ms


def guardian_load(peer_id: str) -> dict[str, Any] | None:
    row = GuardianState.objects.filter(peer_id=peer_id).first()
    return row.snapshot if row is not None else None


@transaction.atomic
def guardian_save(
    peer_id: str,
    snapshot: dict[str, Any],
    requests: list[RequestRow],
    decided: dict[str, str],
) -> None:
    """Write the store's snapshot and its requests (an operator's decision is kept until the
    super-peer applied it: ``decided`` maps the request ids it applied to an error, or "")."""
    GuardianState.objects.update_or_create(peer_id=peer_id, defaults={"snapshot": snapshot})
    rows = GuardianRequest.objects.filter(guardian=peer_id)
    rows.exclude(request_id__in=[r.request_id for r in requests]).delete()
    for r in requests:
        GuardianRequest.objects.update_or_create(
            guardian=peer_id,
            request_id=r.request_id,
            defaults={
                "for_peer": r.for_peer,
                "temp": r.temp,
                "code": r.code,
                "conflict": r.conflict,
                "state": r.state,
                "received_at": _at(r.received_at),
                "expires_at": _at(r.expires_at),
            },
        )
    for request_id, error in decided.items():
        rows.filter(request_id=request_id).update(decision="", error=error[:200])


def guardian_decisions(peer_id: str) -> list[tuple[str, str]]:
    """(request id, ``approve`` | ``refuse``) the operator decided and the super-peer has
    not applied yet."""
    rows = GuardianRequest.objects.filter(guardian=peer_id).exclude(decision="")
    return list(rows.order_by("received_at").values_list("request_id", "decision"))


@dataclass(frozen=True)
class RepairFacts:
    """What repair by peers reads at a status write (docs/replication.md "Repair by
    peers"): when the newest backfill run ended (ms, 0: none), and manifests saved after
    row ``after``: (row id, manifest id, chunk count, bytes of a stored copy)."""

    backfill_at: int
    manifests: list[tuple[int, str, int, int]]


def repair_facts(after: int, limit: int) -> RepairFacts:
    rows = (
        FileManifest.objects.filter(pk__gt=after)
        .order_by("pk")
        .values_list("pk", "manifest_id", "chunk_count", "size")[:limit]
    )
    manifests = [(pk, mid, count, size + 16 * count) for pk, mid, count, size in rows]
    return RepairFacts(last_backfill_at(), manifests)
