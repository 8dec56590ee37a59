"""Writes the super-peers make for the orchestrator (they call these from their database
thread): the adverts they relay, and requests for a backfill run."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import Q

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
    adverts = Advert.objects.filter(reporter=reporter)
    if reset:
        adverts.delete()
    keys = list(delete)
    for start in range(0, len(keys), DELETE_BATCH):
        match = Q()
        for holder, manifest_id in keys[start : start + DELETE_BATCH]:
            match |= Q(holder=holder, manifest_id=manifest_id)
        adverts.filter(match).delete()
    rows = [
        Advert(holder=holder, manifest_id=manifest_id, chunks=chunks, keep=keep, reporter=reporter)
        for holder, manifest_id, chunks, keep in upsert
    ]
    if rows:
        Advert.objects.bulk_create(
            rows,
            batch_size=500,
            update_conflicts=True,
            unique_fields=["holder", "manifest_id", "reporter"],
            update_fields=["chunks", "keep", "updated_at"],
        )
