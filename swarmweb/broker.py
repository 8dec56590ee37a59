"""kombu's filesystem transport, made safe for a worker that reads while others write: the
Celery broker of the embedded default (no Redis).

kombu's filesystem channel writes a message by creating its file under the final name and
then writing into it; a worker that lists the folder in between moves the still empty file
away, reads nothing and fails to decode it. Celery counts an error in its consumer loop as
unrecoverable, so the worker exits, and with it (honcho stops every process once one exits)
the whole `make run` set (kombu issue #1551; the soak hit it after 65 to 190 rounds). Here:

- a message is written under a name the consumer does not take (its queue's name followed
  by ``.part``), then renamed to its final name: a rename within one folder is atomic, so a
  consumer sees a message whole or not at all;
- a message file that cannot be decoded (written by something else, or cut short by a full
  disk) is logged and dropped, and the next one is read: one bad file must not stop the
  worker.

Nothing is synced to disk: the queue lives as long as the folder, and a power cut may lose
what was queued, as with Redis without persistence.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps

logger = logging.getLogger("swarmweb.broker")

PARTIAL_SUFFIX = ".part"  # a message being written: "<ms>_<uuid>.<queue>.msg.part"


class Channel(filesystem.Channel):
    # kombu's own base classes disagree on the second argument's name (message, payload).
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Put a message onto `queue`: written whole, then renamed into place."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL_SUFFIX
        try:
            with open(partial, "wb") as f:
                f.write(dumps(payload).encode("utf-8"))  # type: ignore[no-untyped-call]
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.remove(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        """The next message of `queue` (kombu's Empty when there is none), skipping files that
        do not decode."""
        while True:
            try:
                return super()._get(queue)  # type: ignore[no-untyped-call]
            except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
                # The file is gone already (kombu removes it before decoding).
                logger.error("dropped a message of queue %s that does not decode: %s", queue, exc)


class Transport(filesystem.Transport):
    Channel = Channel
