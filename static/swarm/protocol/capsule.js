// Signed capsules (docs/capsules.md), mirror of peers/protocol/capsule.py.
// verifyCapsule checks the bundle (signature, body, trusted key and its window, lifetime);
// capsuleTickets re-verifies the tickets inside, which expire one by one during its life.
import { b64urlDecode, b64urlEncode, sha256 } from "./encoding.js";
import { DOMAIN_CAPSULE, sign, verify } from "./envelope.js";
import { BAD_BODY, ProtocolError, UNTRUSTED_KEY, WRONG_COMMUNITY } from "./errors.js";
import { checkLifetime, CLOCK_SKEW_MS, isValidCommunity, verifyTicket } from "./ticket.js";

export const CAPSULE_TTL_MS = 600_000;
export const MAX_PEERS = 100;
export const EXCLUDED = "excluded";
const FIELDS = ["community", "expires_at", "issued_at", "peers"];
const KEY_TIMES = ["created_at", "retired_at", "expires_at"];

const isPlainObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

// First 16 characters of b64url(SHA-256(raw public key)).
export async function kidFor(publicKey) {
  return b64urlEncode(await sha256(publicKey)).slice(0, 16);
}

// Read GET /capsules/keys.json into [{ pk, created_at, retired_at, expires_at }].
// A key pinned in page config can be passed as { pk } alone (no window).
export function parseTrustedKeys(document) {
  if (!isPlainObject(document) || !Array.isArray(document.keys)) {
    throw new ProtocolError(BAD_BODY, "keys document must be an object with a keys list");
  }
  return document.keys.map((entry) => {
    if (!isPlainObject(entry)) throw new ProtocolError(BAD_BODY, "each key must be an object");
    if (b64urlDecode(entry.pk, "pk", BAD_BODY).length !== 32) {
      throw new ProtocolError(BAD_BODY, "pk must be a 32-byte Ed25519 key");
    }
    const key = { pk: entry.pk };
    for (const name of KEY_TIMES) {
      const value = entry[name] ?? null;
      if (value !== null && !(Number.isSafeInteger(value) && value >= 0)) {
        throw new ProtocolError(BAD_BODY, "key times must be integers (ms) or null");
      }
      key[name] = value;
    }
    return key;
  });
}

export async function makeCapsule(signer, { community, now, peers, ttlMs = CAPSULE_TTL_MS }) {
  if (peers.length > MAX_PEERS) throw new ProtocolError(BAD_BODY, `a capsule holds at most ${MAX_PEERS} peers`);
  return sign(DOMAIN_CAPSULE, { community, issued_at: now, expires_at: now + ttlMs, peers: [...peers] }, signer);
}

function checkFields(body) {
  const keys = Object.keys(body).sort();
  if (keys.length !== FIELDS.length || keys.some((k, i) => k !== FIELDS[i])) {
    throw new ProtocolError(BAD_BODY, `capsule body fields: ${keys.join(",")}`);
  }
  if (!isValidCommunity(body.community)) throw new ProtocolError(BAD_BODY, "community name is invalid");
  for (const name of ["issued_at", "expires_at"]) {
    if (!Number.isSafeInteger(body[name]) || body[name] < 0) {
      throw new ProtocolError(BAD_BODY, `${name} must be a non-negative integer (ms)`);
    }
  }
  if (body.expires_at <= body.issued_at) throw new ProtocolError(BAD_BODY, "expires_at must be after issued_at");
  if (!Array.isArray(body.peers) || !body.peers.every(isPlainObject)) {
    throw new ProtocolError(BAD_BODY, "peers must be a list of signed tickets");
  }
  if (body.peers.length > MAX_PEERS) throw new ProtocolError(BAD_BODY, `a capsule holds at most ${MAX_PEERS} peers`);
}

function checkTrust(pk, issuedAt, now, trusted) {
  const matching = trusted.filter((key) => key.pk === pk);
  if (!matching.length) throw new ProtocolError(UNTRUSTED_KEY, "capsule is signed by a key that is not trusted");
  const inWindow = matching.some(
    (key) =>
      !(key.expires_at != null && now >= key.expires_at) &&
      !(key.created_at != null && issuedAt < key.created_at) &&
      !(key.retired_at != null && issuedAt > key.retired_at),
  );
  if (!inWindow) {
    throw new ProtocolError(UNTRUSTED_KEY, "capsule was issued outside its key's validity window, or trust ended");
  }
}

// Verify at `now` (ms) against `trusted` keys; resolves the capsule or throws ProtocolError (same order
// of checks as Python: envelope, body, community, key, lifetime, not yet valid, expired).
export async function verifyCapsule(envelope, { trusted, now, community = null, skewMs = CLOCK_SKEW_MS }) {
  const { publicKey, body } = await verify(envelope, DOMAIN_CAPSULE);
  checkFields(body);
  if (community !== null && body.community !== community) {
    throw new ProtocolError(WRONG_COMMUNITY, "capsule is for another community");
  }
  const pk = b64urlEncode(publicKey);
  checkTrust(pk, body.issued_at, now, trusted);
  checkLifetime("capsule", body.issued_at, body.expires_at, { now, maxTtlMs: CAPSULE_TTL_MS, skewMs });
  return {
    community: body.community,
    issuedAt: body.issued_at,
    expiresAt: body.expires_at,
    peers: body.peers,
    publicKey: pk,
    envelope,
  };
}

const newer = (a, b) => a.issuedAt > b.issuedAt || (a.issuedAt === b.issuedAt && a.nonce > b.nonce);

// Verify candidates, keep the newest ticket per peer (newest first, at most `limit`), count the rest.
export async function selectTickets(candidates, { community, now, limit = MAX_PEERS, exclude = null }) {
  const dropped = {};
  const best = new Map();
  let seen = 0;
  for (const candidate of candidates) {
    let ticket;
    try {
      ticket = await verifyTicket(candidate, { now, community });
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      dropped[error.code] = (dropped[error.code] ?? 0) + 1;
      continue;
    }
    if (exclude?.(ticket)) {
      dropped[EXCLUDED] = (dropped[EXCLUDED] ?? 0) + 1;
      continue;
    }
    seen += 1;
    const current = best.get(ticket.peerId);
    if (!current || newer(ticket, current)) best.set(ticket.peerId, ticket);
  }
  const ordered = [...best.values()].sort((a, b) => (newer(a, b) ? -1 : newer(b, a) ? 1 : 0));
  return {
    tickets: ordered.slice(0, limit),
    dropped: Object.fromEntries(Object.entries(dropped).sort(([a], [b]) => (a < b ? -1 : 1))),
    duplicates: seen - best.size,
    overLimit: Math.max(0, ordered.length - limit),
  };
}

// The usable tickets of a verified capsule at `now`.
export function capsuleTickets(capsule, { now }) {
  return selectTickets(capsule.peers, { community: capsule.community, now });
}
