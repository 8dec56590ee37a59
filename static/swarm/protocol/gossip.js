// Gossip: signed messages flooded over the mesh with a hop limit, deduplicated by an id that
// is the SHA-256 of the canonical payload, so nobody can claim an id to suppress a message.
import canonicalize from "canonicalize";

import { hex, sha256, utf8 } from "./encoding.js";
import { DOMAIN_GOSSIP, sign, verify } from "./envelope.js";
import { BAD_BODY, BAD_GOSSIP_ID, EXPIRED, NOT_YET_VALID, PEER_MISMATCH, ProtocolError, WRONG_COMMUNITY } from "./errors.js";
import { CLOCK_SKEW_MS, isValidCommunity } from "./ticket.js";
import { MAX_GOSSIP_TTL } from "./wire.js";

export const DEFAULT_GOSSIP_TTL = 10;
export const GOSSIP_MAX_AGE_MS = 10 * 60_000;
export const TOPIC_RE = /^[a-z0-9][a-z0-9_.-]{0,31}$/;
const BODY_KEYS = ["community", "data", "issued_at", "topic"];
const DEFAULT_MAX_SEEN = 50_000;

/** id = SHA-256(JCS(payload envelope)): 32 bytes. */
export async function gossipId(payload) {
  return sha256(utf8.encode(canonicalize(payload)));
}

/** Sign a gossip payload and wrap it in a frame ready for encodeFrame(). */
export async function makeGossip(signer, { origin, community, topic, data = null, now, ttl = DEFAULT_GOSSIP_TTL }) {
  if (!TOPIC_RE.test(topic)) throw new ProtocolError(BAD_BODY, "topic is malformed");
  const payload = await sign(DOMAIN_GOSSIP, { community, topic, issued_at: now, data }, signer);
  return { t: "gossip", id: await gossipId(payload), origin, ttl: Math.min(ttl, MAX_GOSSIP_TTL), payload };
}

function checkBody(body) {
  const keys = Object.keys(body).sort();
  if (keys.length !== BODY_KEYS.length || keys.some((k, i) => k !== BODY_KEYS[i])) {
    throw new ProtocolError(BAD_BODY, `gossip body fields: ${keys.join(",")}`);
  }
  if (!isValidCommunity(body.community)) throw new ProtocolError(BAD_BODY, "community name is invalid");
  if (typeof body.topic !== "string" || !TOPIC_RE.test(body.topic)) throw new ProtocolError(BAD_BODY, "topic is malformed");
  if (!Number.isSafeInteger(body.issued_at) || body.issued_at < 0) {
    throw new ProtocolError(BAD_BODY, "issued_at must be a non-negative integer (ms)");
  }
}

/**
 * Check a decoded gossip frame at `now`: id, signature, body, origin, community, age (in
 * that order). Resolves the message or throws ProtocolError with a stable code.
 */
export async function checkGossip(frame, { now, community, maxAgeMs = GOSSIP_MAX_AGE_MS, skewMs = CLOCK_SKEW_MS }) {
  const id = await gossipId(frame.payload);
  if (hex(id) !== hex(frame.id)) throw new ProtocolError(BAD_GOSSIP_ID, "id is not the hash of the payload");
  const { body, peerId } = await verify(frame.payload, DOMAIN_GOSSIP);
  checkBody(body);
  if (peerId !== frame.origin) throw new ProtocolError(PEER_MISMATCH, "origin is not the signer of the payload");
  if (body.community !== community) throw new ProtocolError(WRONG_COMMUNITY, "gossip is for another community");
  if (body.issued_at > now + skewMs) throw new ProtocolError(NOT_YET_VALID, "gossip is issued in the future");
  if (now - body.issued_at >= maxAgeMs) throw new ProtocolError(EXPIRED, "gossip is too old to relay");
  return {
    id: hex(id),
    origin: peerId,
    topic: body.topic,
    issuedAt: body.issued_at,
    data: body.data,
    ttl: frame.ttl,
    payload: frame.payload,
  };
}

/**
 * Which gossip ids were already handled. An id is remembered until its message is too old to
 * be accepted anyway (issued_at + max age + skew), so memory stays bounded by the message rate.
 */
export class GossipLog {
  constructor({ maxAgeMs = GOSSIP_MAX_AGE_MS, skewMs = CLOCK_SKEW_MS, maxSeen = DEFAULT_MAX_SEEN } = {}) {
    this.maxAgeMs = maxAgeMs;
    this.skewMs = skewMs;
    this.maxSeen = maxSeen;
    this.seen = new Map(); // id hex -> forget at (ms)
  }

  has(idHex) {
    return this.seen.has(idHex);
  }

  add(idHex, issuedAt) {
    this.seen.set(idHex, issuedAt + this.maxAgeMs + this.skewMs);
    while (this.seen.size > this.maxSeen) this.seen.delete(this.seen.keys().next().value);
  }

  prune(now) {
    for (const [id, forgetAt] of this.seen) if (forgetAt <= now) this.seen.delete(id);
  }

  /** The frame to pass on, or null once the hop limit is spent. */
  static relayFrame(frame) {
    if (frame.ttl <= 0) return null;
    return { ...frame, ttl: frame.ttl - 1 };
  }
}
