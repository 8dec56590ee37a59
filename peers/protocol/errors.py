"""Stable error codes for protocol objects.

Each code is part of the public contract: the beacon API returns it, the browser
peer shows it, and tests assert on it. Never rename one.
"""

from __future__ import annotations


class ProtocolError(ValueError):
    """An object failed parsing or verification; ``code`` is stable."""

    code: str = "invalid"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ProtocolError({self.code!r}, {self.message!r})"


# Envelope and signature.
BAD_ENVELOPE = "bad_envelope"
BAD_SIGNATURE = "bad_signature"
# Body shape (field missing, wrong type, out of range, unknown field).
BAD_BODY = "bad_body"
# Time window.
EXPIRED = "expired"
NOT_YET_VALID = "not_yet_valid"
TTL_TOO_LONG = "ttl_too_long"
# Binding between key, id and context.
PEER_MISMATCH = "peer_mismatch"
WRONG_COMMUNITY = "wrong_community"
UNTRUSTED_KEY = "untrusted_key"
REPLAY = "replay"
# Wire frames (docs/protocol.md "Wire frames"), mirror of static/swarm/protocol/errors.js.
FRAME_TOO_LARGE = "frame_too_large"
BAD_MSGPACK = "bad_msgpack"
BAD_FRAME = "bad_frame"
UNKNOWN_FRAME = "unknown_frame"
UNSUPPORTED_FRAME = "unsupported_frame"
UNEXPECTED_FRAME = "unexpected_frame"
UNSUPPORTED_VERSION = "unsupported_version"
BAD_GOSSIP_ID = "bad_gossip_id"
RATE_LIMITED = "rate_limited"
# Content (docs/protocol.md "Files" and "Posts").
BAD_MANIFEST = "bad_manifest"
MANIFEST_MISMATCH = "manifest_mismatch"
BAD_CHUNK = "bad_chunk"
CHUNK_MISMATCH = "chunk_mismatch"
BAD_KEY = "bad_key"
DECRYPT_FAILED = "decrypt_failed"
BAD_WRAPPED_KEY = "bad_wrapped_key"
WRONG_RECIPIENT = "wrong_recipient"
WRONG_FILE = "wrong_file"
BAD_POST = "bad_post"
BROKEN_CHAIN = "broken_chain"
FORK = "fork"
GAP = "gap"
BAD_SYNC = "bad_sync"
# Identity shares (docs/protocol.md "Identity shares (SLIP-39)").
BAD_SHARE = "bad_share"
SHARE_SET_MISMATCH = "share_set_mismatch"
DUPLICATE_SHARE = "duplicate_share"
TOO_FEW_SHARES = "too_few_shares"
BAD_DIGEST = "bad_digest"
KEY_MISMATCH = "key_mismatch"
BAD_THRESHOLD = "bad_threshold"
BAD_SET_ID = "bad_set_id"
# Guardians and recovery (docs/protocol.md "Guardians and recovery (`shard_*`)").
BAD_SEALED = "bad_sealed"
BAD_SHARD = "bad_shard"
SHARD_TOO_LARGE = "shard_too_large"
UNEXPECTED_KIND = "unexpected_kind"
STALE_SET = "stale_set"
REVOKED_SET = "revoked_set"
OVER_QUOTA = "over_quota"
NO_SHARE = "no_share"
UNKNOWN_REQUEST = "unknown_request"
WRONG_REQUEST = "wrong_request"
CODE_CONFLICT = "code_conflict"
SET_MISMATCH = "set_mismatch"
SEED_MISMATCH = "seed_mismatch"
COMBINE_FAILED = "combine_failed"
# Mail (docs/protocol.md "Mail"); decrypt_failed and bad_sealed come from sealing.
MAIL_TOO_LARGE = "mail_too_large"
BAD_MAIL = "bad_mail"
BAD_RECIPIENT = "bad_recipient"
# Signaling through the mesh (docs/protocol.md "Signaling through the mesh").
SIGNAL_TOO_LARGE = "signal_too_large"
BAD_SIGNAL = "bad_signal"
UNKNOWN_KIND = "unknown_kind"
BAD_HOPS = "bad_hops"
HOPS_EXHAUSTED = "hops_exhausted"
NO_ROUTE = "no_route"
DUPLICATE = "duplicate"
QUEUE_FULL = "queue_full"
# Supernodes (docs/protocol.md "Supernodes"); expired, not_yet_valid, ttl_too_long,
# peer_mismatch, wrong_community, replay and rate_limited as above.
ADVERT_TOO_LARGE = "advert_too_large"
BAD_ADVERT = "bad_advert"
TABLE_FULL = "table_full"
# The DHT (docs/protocol.md "DHT"); record faults reuse the ticket codes above.
RECORD_TOO_LARGE = "record_too_large"
WRONG_KEY = "wrong_key"
NOT_CLOSE = "not_close"
STORE_FULL = "store_full"
TIMEOUT = "timeout"
UNREACHABLE = "unreachable"
NOT_FOUND = "not_found"
# Repair by peers (docs/replication.md "Repair by peers"): a bad input to the repair core.
BAD_REPAIR = "bad_repair"
