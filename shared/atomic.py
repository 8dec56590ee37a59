"""Atomic file replacement: readers see the old bytes or the new, never a mix.

The bytes go to a fresh temporary file (``O_EXCL``, so concurrent writers never share one),
are fsynced, renamed over the target with ``os.replace`` (atomic on POSIX), and the
directory is fsynced so that the rename survives a crash. A writer killed midway leaves the
previous file in place plus a ``.<name>.<pid>.<random>.tmp`` file that its owner cleans up.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def temporaries(path: Path) -> list[Path]:
    """Temporaries that writers of ``path`` (live or dead) left beside it."""
    return list(path.parent.glob(f".{path.name}.*.tmp"))


def write_atomic(
    path: Path,
    data: bytes,
    *,
    mode: int = 0o644,
    tmp_dir: Path | None = None,
    durable: bool = True,
) -> None:
    """Replace ``path`` with ``data``.

    ``tmp_dir`` holds the temporary (default: beside ``path``; it must be on the same file
    system). ``durable=False`` skips both fsyncs: still atomic for readers, not crash-safe.
    """
    tmp = (tmp_dir or path.parent) / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    os.replace(tmp, path)
    if durable:
        _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
