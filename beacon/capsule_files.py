"""Capsule files under SWARM_CAPSULE_DIR, written so that no reader sees half of one.

Each write goes to a temporary file in the same directory, is fsynced, then renamed
over the old file with ``os.replace`` (atomic on POSIX), and the directory is fsynced
so the rename survives a crash. A writer killed midway leaves the previous file in
place plus a stray ``.tmp`` file, which a later write removes once it is stale.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path

from django.conf import settings

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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_temporaries(path: Path) -> None:
    # Temporaries of concurrent writers are young; only those of dead writers get old.
    cutoff = time.time() - STALE_TMP_S
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
