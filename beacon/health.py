"""What /healthz asks of the beacon: would an announce work right now?

Two kinds of evidence. Active: the announce path's own dependencies are exercised the
way announces use them (the fast path's PostgreSQL pool, the block list read through
Django's connection outside any request, the shared rate-limit state). Passive: if the
last announce or peers request that failed for a fault of ours (a 503) is more recent
than the last one that worked, the beacon is unhealthy for ``FAULT_WINDOW_S``, whatever
the active checks say: requests know best.
"""

from __future__ import annotations

import time

from django.db import InterfaceError, OperationalError

from ops.models import Block
from ops.views import blocking_check
from shared.clock import now_ms
from shared.db import check_idle_connections

from . import store
from .limits import get_state

FAULT_WINDOW_S = 30.0

_last_fault = 0.0
_last_success = 0.0


def record(*, ok: bool) -> None:
    """Called by the fast path for each answer: ``ok`` unless it was a 503."""
    global _last_fault, _last_success
    if ok:
        _last_success = time.monotonic()
    else:
        _last_fault = time.monotonic()


def _read_blocks_table() -> None:
    try:
        Block.objects.exists()
    except (OperationalError, InterfaceError):
        check_idle_connections()  # as the beacon's own reads do (shared.db.db_sync_to_async)
        raise


_check_blocks_table = blocking_check(_read_blocks_table)


async def check() -> None:
    """Raise if announces are failing or would fail."""
    if _last_fault > _last_success and time.monotonic() - _last_fault < FAULT_WINDOW_S:
        ago = time.monotonic() - _last_fault
        raise RuntimeError(f"the last beacon request failed {ago:.1f} s ago (503)")
    await store.ping()
    await _check_blocks_table()
    await get_state().precheck(ip_key=None, rate=1.0, burst=1, peer_key=None, now_ms=now_ms())
