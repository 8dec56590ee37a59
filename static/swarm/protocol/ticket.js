// Presence tickets (docs/protocol.md), mirror of peers/protocol/ticket.py.
import { b64urlEncode, PEER_ID_RE } from "./encoding.js";
import { DOMAIN_TICKET, DOMAIN_WITHDRAW, sign, verify } from "./envelope.js";
import { BAD_BODY, EXPIRED, NOT_YET_VALID, PEER_MISMATCH, ProtocolError, TTL_TOO_LONG, WRONG_COMMUNITY } from "./errors.js";

export const COMMUNITY_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const NONCE_RE = /^[A-Za-z0-9_-]{8,64}$/;
const CAP_RE = /^[a-z0-9][a-z0-9_.-]{0,31}$/;
export const DEFAULT_TTL_MS = 180_000;
export const MAX_TTL_MS = 600_000;
export const CLOCK_SKEW_MS = 15_000;
const MAX_SIGNAL_URLS = 4;
const MAX_SIGNAL_URL_LENGTH = 256;
const MAX_CAPS = 16;
const REQUIRED = ["peer_id", "community", "issued_at", "expires_at", "nonce"];
const OPTIONAL = ["signal", "caps"];

export function isValidCommunity(name) {
  return typeof name === "string" && COMMUNITY_RE.test(name);
}

export function newNonce() {
  return b64urlEncode(crypto.getRandomValues(new Uint8Array(12)));
}

/**
 * @param {{ publicKey: Uint8Array }} signer
 * @param {{ peerId: string, community: string, now: number, ttlMs?: number, nonce?: string, signal?: string[], caps?: string[] }} fields
 */
export async function makeTicket(signer, { peerId, community, now, ttlMs = DEFAULT_TTL_MS, nonce, signal, caps }) {
  const body = {
    peer_id: peerId,
    community,
    issued_at: now,
    expires_at: now + ttlMs,
    nonce: nonce ?? newNonce(),
  };
  if (signal !== undefined) body.signal = signal;
  if (caps !== undefined) body.caps = caps;
  return sign(DOMAIN_TICKET, body, signer);
}

function isSignalUrl(url) {
  return typeof url === "string" && url.length <= MAX_SIGNAL_URL_LENGTH && /^(https?|wss?):\/\//.test(url);
}

function checkFields(body) {
  const keys = Object.keys(body);
  const missing = REQUIRED.filter((k) => !(k in body));
  if (missing.length) throw new ProtocolError(BAD_BODY, `ticket is missing ${missing.join(",")}`);
  const unknown = keys.filter((k) => !REQUIRED.includes(k) && !OPTIONAL.includes(k));
  if (unknown.length) throw new ProtocolError(BAD_BODY, `ticket has unknown fields ${unknown.join(",")}`);
  if (typeof body.peer_id !== "string" || !PEER_ID_RE.test(body.peer_id)) {
    throw new ProtocolError(BAD_BODY, "peer_id is not a key-bound peer id");
  }
  if (!isValidCommunity(body.community)) throw new ProtocolError(BAD_BODY, "community name is invalid");
  for (const name of ["issued_at", "expires_at"]) {
    if (!Number.isSafeInteger(body[name]) || body[name] < 0) {
      throw new ProtocolError(BAD_BODY, `${name} must be a non-negative integer (ms)`);
    }
  }
  if (typeof body.nonce !== "string" || !NONCE_RE.test(body.nonce)) {
    throw new ProtocolError(BAD_BODY, "nonce must be 8-64 base64url characters");
  }
  if ("signal" in body) {
    const urls = body.signal;
    if (!Array.isArray(urls) || urls.length > MAX_SIGNAL_URLS || !urls.every(isSignalUrl)) {
      throw new ProtocolError(BAD_BODY, "signal must be a list of up to 4 http(s)/ws(s) URLs");
    }
  }
  if ("caps" in body) {
    const caps = body.caps;
    if (!Array.isArray(caps) || caps.length > MAX_CAPS || !caps.every((c) => typeof c === "string" && CAP_RE.test(c))) {
      throw new ProtocolError(BAD_BODY, "caps must be a list of up to 16 short names");
    }
  }
}

// The time rules of a signed issued_at/expires_at object (tickets, capsules), in order:
// ttl_too_long, not_yet_valid (beyond now + skewMs), expired.
export function checkLifetime(what, issuedAt, expiresAt, { now, maxTtlMs, skewMs }) {
  if (expiresAt - issuedAt > maxTtlMs) {
    throw new ProtocolError(TTL_TOO_LONG, `${what} lifetime exceeds ${maxTtlMs} ms`);
  }
  if (issuedAt > now + skewMs) throw new ProtocolError(NOT_YET_VALID, `${what} is issued in the future`);
  if (now >= expiresAt) throw new ProtocolError(EXPIRED, `${what} has expired`);
}

// Verify a ticket at `now` (ms); `community` pins the expected community (null: any).
export async function verifyTicket(envelope, { now, community = null, maxTtlMs = MAX_TTL_MS, skewMs = CLOCK_SKEW_MS }) {
  const { publicKey, body, peerId } = await verify(envelope, DOMAIN_TICKET);
  checkFields(body);
  if (peerId !== body.peer_id) throw new ProtocolError(PEER_MISMATCH, "peer_id is not bound to the signing key");
  if (community !== null && body.community !== community) {
    throw new ProtocolError(WRONG_COMMUNITY, "ticket is for another community");
  }
  if (body.expires_at <= body.issued_at) throw new ProtocolError(BAD_BODY, "expires_at must be after issued_at");
  checkLifetime("ticket", body.issued_at, body.expires_at, { now, maxTtlMs, skewMs });
  return {
    peerId: body.peer_id,
    community: body.community,
    issuedAt: body.issued_at,
    expiresAt: body.expires_at,
    nonce: body.nonce,
    publicKey,
    signal: body.signal ?? [],
    caps: body.caps ?? [],
    envelope,
  };
}

// --- withdrawals ---

const WITHDRAW_FIELDS = ["community", "nonce", "peer_id"];

/** Sign the withdrawal of the ticket with `nonce` (made with the ticket, sent on leaving). */
export async function makeWithdrawal(signer, { peerId, community, nonce }) {
  return sign(DOMAIN_WITHDRAW, { peer_id: peerId, community, nonce }, signer);
}

// A withdrawal names one ticket by its nonce, so it can only ever remove that ticket (a replay
// after the peer announced again changes nothing): no clock is needed.
export async function verifyWithdrawal(envelope, { community = null } = {}) {
  const { body, peerId } = await verify(envelope, DOMAIN_WITHDRAW);
  if (Object.keys(body).sort().join(",") !== WITHDRAW_FIELDS.join(",")) {
    throw new ProtocolError(BAD_BODY, `a withdrawal has exactly the fields ${JSON.stringify(WITHDRAW_FIELDS)}`);
  }
  if (typeof body.peer_id !== "string" || !PEER_ID_RE.test(body.peer_id)) throw new ProtocolError(BAD_BODY, "peer_id is not a key-bound peer id");
  if (!isValidCommunity(body.community)) throw new ProtocolError(BAD_BODY, "community name is invalid");
  if (typeof body.nonce !== "string" || !NONCE_RE.test(body.nonce)) throw new ProtocolError(BAD_BODY, "nonce must be 8-64 base64url characters");
  if (peerId !== body.peer_id) throw new ProtocolError(PEER_MISMATCH, "peer_id is not bound to the signing key");
  if (community !== null && body.community !== community) throw new ProtocolError(WRONG_COMMUNITY, "withdrawal is for another community");
  return { peerId: body.peer_id, community: body.community, nonce: body.nonce };
}
