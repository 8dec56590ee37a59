// The signed envelope of every swarm object (docs/protocol.md), mirror of peers/protocol/envelope.py.
import canonicalize from "canonicalize";

import * as ed25519 from "./ed25519.js";
import { b64urlDecode, b64urlEncode, peerIdForKey, utf8 } from "./encoding.js";
import { BAD_ENVELOPE, BAD_SIGNATURE, ProtocolError } from "./errors.js";

export const VERSION = 1;
export const ALG = "ed25519";
const PUBLIC_KEY_BYTES = 32;
const SIGNATURE_BYTES = 64;
const ENVELOPE_KEYS = ["alg", "body", "pk", "sig", "v"];
const MAX_DEPTH = 16;

export const DOMAIN_TICKET = "swarm/ticket/v1";
export const DOMAIN_CAPSULE = "swarm/capsule/v1";
export const DOMAIN_MANIFEST = "swarm/manifest/v1";
export const DOMAIN_POST = "swarm/post/v1";
export const DOMAIN_SHARD = "swarm/shard/v1";
export const DOMAIN_SIGNAL_TOKEN = "swarm/signal-token/v1";
export const DOMAIN_GOSSIP = "swarm/gossip/v1";
export const DOMAIN_HAVE = "swarm/have/v1";
export const DOMAIN_WITHDRAW = "swarm/withdraw/v1";

function isPlainObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function checkJsonValue(value, path, depth) {
  if (depth > MAX_DEPTH) throw new ProtocolError(BAD_ENVELOPE, `${path} nests too deeply`);
  if (value === null || typeof value === "boolean" || typeof value === "string") return;
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) {
      throw new ProtocolError(BAD_ENVELOPE, `${path}: signed bodies carry safe integers only`);
    }
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      checkJsonValue(item, `${path}[${i}]`, depth + 1);
    });
    return;
  }
  if (isPlainObject(value)) {
    for (const [key, item] of Object.entries(value)) checkJsonValue(item, `${path}.${key}`, depth + 1);
    return;
  }
  throw new ProtocolError(BAD_ENVELOPE, `${path} is not a JSON value`);
}

/**
 * `envelope` as a JSON object whose canonical JSON (RFC 8785) is at most `limit` bytes:
 * bad_envelope for a value that is no canonical JSON object, `code` ("`what` is at most
 * `limit` B, not N") beyond. The size check every signed message kind with its own limit makes
 * before its signature is checked (peers/protocol/envelope.py check_envelope_size).
 */
export function checkEnvelopeSize(envelope, limit, code, what) {
  if (!isPlainObject(envelope)) throw new ProtocolError(BAD_ENVELOPE, "envelope must be a JSON object");
  let text;
  try {
    text = canonicalize(envelope);
  } catch {
    throw new ProtocolError(BAD_ENVELOPE, "the envelope is not canonical JSON");
  }
  if (typeof text !== "string") throw new ProtocolError(BAD_ENVELOPE, "the envelope is not canonical JSON");
  const size = utf8.encode(text).length;
  if (size > limit) throw new ProtocolError(code, `${what} is at most ${limit} B, not ${size}`);
  return envelope;
}

export function canonical(body) {
  checkJsonValue(body, "body", 0);
  try {
    return canonicalize(body);
  } catch (error) {
    throw new ProtocolError(BAD_ENVELOPE, `body cannot be canonicalized: ${error.message}`);
  }
}

export function signingInput(domain, body) {
  return utf8.encode(`${domain}\n${canonical(body)}`);
}

export async function sign(domain, body, signer) {
  const signature = await ed25519.sign(signer, signingInput(domain, body));
  return {
    v: VERSION,
    alg: ALG,
    pk: b64urlEncode(signer.publicKey),
    sig: b64urlEncode(signature),
    body,
  };
}

// Check shape and signature for `domain`; resolves { publicKey, body, peerId } or throws ProtocolError.
export async function verify(envelope, domain) {
  if (!isPlainObject(envelope)) throw new ProtocolError(BAD_ENVELOPE, "envelope must be a JSON object");
  const keys = Object.keys(envelope).sort();
  if (keys.length !== ENVELOPE_KEYS.length || keys.some((k, i) => k !== ENVELOPE_KEYS[i])) {
    throw new ProtocolError(BAD_ENVELOPE, `envelope fields: ${keys.join(",")}`);
  }
  if (envelope.v !== VERSION) throw new ProtocolError(BAD_ENVELOPE, "unsupported envelope version");
  if (envelope.alg !== ALG) throw new ProtocolError(BAD_ENVELOPE, "unsupported signature algorithm");
  const publicKey = b64urlDecode(envelope.pk, "pk");
  if (publicKey.length !== PUBLIC_KEY_BYTES) {
    throw new ProtocolError(BAD_ENVELOPE, "pk must be a 32-byte Ed25519 key");
  }
  const signature = b64urlDecode(envelope.sig, "sig");
  if (signature.length !== SIGNATURE_BYTES) {
    throw new ProtocolError(BAD_ENVELOPE, "sig must be a 64-byte Ed25519 signature");
  }
  if (!isPlainObject(envelope.body)) throw new ProtocolError(BAD_ENVELOPE, "body must be a JSON object");
  const message = signingInput(domain, envelope.body);
  if (!(await ed25519.verify(publicKey, signature, message))) {
    throw new ProtocolError(BAD_SIGNATURE, "signature does not verify");
  }
  return { publicKey, body: envelope.body, peerId: await peerIdForKey(publicKey) };
}
