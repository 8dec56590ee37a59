"""Writes the super-peers make for the orchestrator (they call these from their database
thread): the adverts they relay or heard by gossip, and requests for a backfill run."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import Q, QuerySet

from .models import Advert

DELETE_BATCH = 500


@transaction.atomic
def adverts_save(
    reporter: str,
    *,
    upsert: Iterable[tuple[str, str, int, bool]],
    delete: Iterable[tuple[str, str]],
    reset: bool = False,
) -> None:
    """Record what ``reporter`` heard: (holder, manifest id, chunks, keep) rows to write and
    (holder, manifest id) rows to drop; ``reset`` drops every row it wrote before."""
    adverts = Advert.objects.filter(reporter=reporter, via=Advert.DIRECT)
    if reset:
        adverts.delete()
    _delete_pairs(adverts, delete)
    rows = [
        Advert(holder=holder, manifest_id=manifest_id, chunks=chunks, keep=keep, reporter=reporter)
        for holder, manifest_id, chunks, keep in upsert
    ]
    if rows:
        Advert.objects.bulk_create(
            rows,
            batch_size=500,
            update_conflicts=True,
            unique_fields=["holder", "manifest_id", "reporter", "via"],
            update_fields=["chunks", "keep", "updated_at"],
        )


def _delete_pairs(adverts: QuerySet[Advert], pairs: Iterable[tuple[str, str]]) -> None:
    """Delete the (holder, manifest id) rows of ``adverts``, a few hundred per statement."""
    keys = list(pairs)
    for start in range(0, len(keys), DELETE_BATCH):
        match = Q()
        for holder, manifest_id in keys[start : start + DELETE_BATCH]:
            match |= Q(holder=holder, manifest_id=manifest_id)
        adverts.filter(match).delete()


@transaction.atomic
def gossip_adverts_save(
    reporter: str,
    *,
    upsert: Iterable[tuple[str, str, int, bool, int]],
    delete: Iterable[tuple[str, str]],
) -> None:
    """Record the ``have`` gossip ``reporter`` heard: (holder, manifest id, chunks, keep,
    issued at ms) rows to write and (holder, manifest id) rows to drop (withdrawn or
    expired). Rows via gossip are separate from the reporter's direct ones."""
    adverts = Advert.objects.filter(reporter=reporter, via=Advert.GOSSIP)
    _delete_pairs(adverts, delete)
    rows = [
        Advert(
            holder=holder,
            manifest_id=manifest_id,
            chunks=chunks,
            keep=keep,
            reporter=reporter,
            via=Advert.GOSSIP,
            heard_at=datetime.fromtimestamp(at / 1000, UTC),
        )
        for holder, manifest_id, chunks, keep, at in upsert
    ]
    if rows:
        Advert.objects.bulk_create(
            rows,
            batch_size=500,
            update_conflicts=True,
            unique_fields=["holder", "manifest_id", "reporter", "via"],
            update_fields=["chunks", "keep", "heard_at", "updated_at"],
        )


def gossip_adverts_expire(now_ms: int, ttl_ms: int) -> int:
    """Drop rows heard by gossip that are stale (any reporter's: a stopped super-peer
    leaves its rows behind); returns how many."""
    cutoff = datetime.fromtimestamp((now_ms - ttl_ms) / 1000, UTC)
    deleted, _ = Advert.objects.filter(via=Advert.GOSSIP, heard_at__lte=cutoff).delete()
    return deleted
