"""Capsule files under SWARM_CAPSULE_DIR, written so that no reader sees half of one.

Writes are :func:`shared.atomic.write_atomic` (temporary file beside the target, fsync,
``os.replace``, directory fsync). A writer killed midway leaves the previous file in place
plus a stray ``.tmp`` file, which a later write removes once it is stale.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from django.conf import settings

from shared import atomic

STALE_TMP_S = 600


def capsule_dir() -> Path:
    return Path(settings.SWARM_CAPSULE_DIR)


def capsule_path(community: str) -> Path:
    return capsule_dir() / f"{community}.json"


def keys_path() -> Path:
    return capsule_dir() / "keys.json"


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: readers see the old bytes or the new, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    atomic.write_atomic(path, data, mode=0o644)


def _remove_stale_temporaries(path: Path) -> None:
    # Temporaries of concurrent writers are young; only those of dead writers get old.
    cutoff = time.time() - STALE_TMP_S
    for tmp in atomic.temporaries(path):
        with contextlib.suppress(OSError):
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
