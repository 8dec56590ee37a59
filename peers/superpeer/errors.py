"""Stable error codes of the super-peer (docs/superpeer.md "Error codes")."""

from __future__ import annotations

from peers.protocol.errors import ProtocolError

# Chunk store.
BAD_CHUNK_ID = "bad_chunk_id"  # not a digest id (43-character canonical base64url)
CHUNK_MISMATCH = "chunk_mismatch"  # data does not hash to the chunk id (shared content code)
CHUNK_TOO_LARGE = "chunk_too_large"  # more than 64 KiB + tag
STORAGE_FULL = "storage_full"  # the quota cannot make room without evicting pinned content
# Control messages and services.
BAD_MANIFEST_ID = "bad_manifest_id"
BAD_PEER_ID = "bad_peer_id"
BAD_CONTROL = "bad_control"


class SuperPeerError(ProtocolError):
    """A refused input or operation of the super-peer; ``code`` is stable."""


# Mailboxes (docs/superpeer.md "Mailboxes"); the shard module's codes are used as they are.
MAILBOX_BUSY = "mailbox_busy"  # too many messages waiting for their database write
NOT_GUARDIAN = "not_guardian"  # a shard message for the super-peer, which guards nobody
GUARDIAN_BUSY = "guardian_busy"  # too many messages waiting for the super-peer's guardian store
