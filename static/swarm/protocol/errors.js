// Stable error codes shared with peers/protocol/errors.py: tests and the UI match on `code`.

export const BAD_ENVELOPE = "bad_envelope";
export const BAD_SIGNATURE = "bad_signature";
export const BAD_BODY = "bad_body";
export const EXPIRED = "expired";
export const NOT_YET_VALID = "not_yet_valid";
export const TTL_TOO_LONG = "ttl_too_long";
export const PEER_MISMATCH = "peer_mismatch";
export const WRONG_COMMUNITY = "wrong_community";
export const UNTRUSTED_KEY = "untrusted_key";
export const REPLAY = "replay";

export class ProtocolError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "ProtocolError";
    this.code = code;
  }
}

// Wire frames (docs/protocol.md "Wire frames"): decoding failures and per-frame semantics.
export const FRAME_TOO_LARGE = "frame_too_large";
export const BAD_MSGPACK = "bad_msgpack";
export const BAD_FRAME = "bad_frame";
export const UNKNOWN_FRAME = "unknown_frame";
export const UNSUPPORTED_FRAME = "unsupported_frame";
export const UNEXPECTED_FRAME = "unexpected_frame";
export const UNSUPPORTED_VERSION = "unsupported_version";
export const BAD_GOSSIP_ID = "bad_gossip_id";
export const RATE_LIMITED = "rate_limited";

// Content (docs/protocol.md "Files" and "Posts"), mirror of peers/protocol/errors.py.
export const BAD_MANIFEST = "bad_manifest";
export const MANIFEST_MISMATCH = "manifest_mismatch";
export const BAD_CHUNK = "bad_chunk";
export const CHUNK_MISMATCH = "chunk_mismatch";
export const BAD_KEY = "bad_key";
export const DECRYPT_FAILED = "decrypt_failed";
export const BAD_WRAPPED_KEY = "bad_wrapped_key";
export const WRONG_RECIPIENT = "wrong_recipient";
export const WRONG_FILE = "wrong_file";
export const BAD_POST = "bad_post";
export const BROKEN_CHAIN = "broken_chain";
export const FORK = "fork";
export const GAP = "gap";
export const BAD_SYNC = "bad_sync";

// Identity shares (docs/protocol.md "Identity shares (SLIP-39)"), mirror of peers/protocol/errors.py.
export const BAD_SHARE = "bad_share";
export const SHARE_SET_MISMATCH = "share_set_mismatch";
export const DUPLICATE_SHARE = "duplicate_share";
export const TOO_FEW_SHARES = "too_few_shares";
export const BAD_DIGEST = "bad_digest";
export const KEY_MISMATCH = "key_mismatch";
export const BAD_THRESHOLD = "bad_threshold";
export const BAD_SET_ID = "bad_set_id";
// Guardians and recovery (docs/protocol.md "Guardians and recovery (`shard_*`)").
export const BAD_SEALED = "bad_sealed";
export const BAD_SHARD = "bad_shard";
export const SHARD_TOO_LARGE = "shard_too_large";
export const UNEXPECTED_KIND = "unexpected_kind";
export const STALE_SET = "stale_set";
export const REVOKED_SET = "revoked_set";
export const OVER_QUOTA = "over_quota";
export const NO_SHARE = "no_share";
export const UNKNOWN_REQUEST = "unknown_request";
export const WRONG_REQUEST = "wrong_request";
export const CODE_CONFLICT = "code_conflict";
export const SET_MISMATCH = "set_mismatch";
export const SEED_MISMATCH = "seed_mismatch";
export const COMBINE_FAILED = "combine_failed";
// Mail (docs/protocol.md "Mail"); decrypt_failed and bad_sealed come from sealing.
export const MAIL_TOO_LARGE = "mail_too_large";
export const BAD_MAIL = "bad_mail";
export const BAD_RECIPIENT = "bad_recipient";
// Signaling through the mesh (docs/protocol.md "Signaling through the mesh").
export const SIGNAL_TOO_LARGE = "signal_too_large";
export const BAD_SIGNAL = "bad_signal";
export const UNKNOWN_KIND = "unknown_kind";
export const BAD_HOPS = "bad_hops";
export const HOPS_EXHAUSTED = "hops_exhausted";
export const NO_ROUTE = "no_route";
export const DUPLICATE = "duplicate";
export const QUEUE_FULL = "queue_full";
// Supernodes (docs/protocol.md "Supernodes"); expired, not_yet_valid, ttl_too_long,
// peer_mismatch, wrong_community, replay and rate_limited as above.
export const ADVERT_TOO_LARGE = "advert_too_large";
export const BAD_ADVERT = "bad_advert";
export const TABLE_FULL = "table_full";
// The DHT (docs/protocol.md "DHT"); record faults reuse the ticket codes above.
export const RECORD_TOO_LARGE = "record_too_large";
export const WRONG_KEY = "wrong_key";
export const NOT_CLOSE = "not_close";
export const STORE_FULL = "store_full";
export const TIMEOUT = "timeout";
export const UNREACHABLE = "unreachable";
export const NOT_FOUND = "not_found";
// Repair by peers (docs/replication.md "Repair by peers"): a bad input to the repair core.
export const BAD_REPAIR = "bad_repair";
