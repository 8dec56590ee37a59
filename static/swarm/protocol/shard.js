// Guardians and recovery: the signed messages of domain swarm/shard/v1 (docs/protocol.md
// "Guardians and recovery (`shard_*`)"), mirror of peers/protocol/shard.py. Kinds: share
// (owner -> guardian), receipt (guardian -> owner), revoke (owner -> guardians),
// recover_req (temporary identity -> everyone), release and refuse (guardian -> temporary
// identity). A share is opaque here: 1..33 words of printable ASCII (SLIP-39 lives elsewhere).
import { isDigestId, isFileId } from "./chunks.js";
import { b64urlDecode, b64urlEncode, PEER_ID_RE, peerIdForKey, utf8 } from "./encoding.js";
import { checkEnvelopeSize, DOMAIN_SHARD, sign, verify } from "./envelope.js";
import {
  BAD_KEY,
  BAD_SHARD,
  BAD_SHARE,
  EXPIRED,
  NOT_YET_VALID,
  PEER_MISMATCH,
  ProtocolError,
  SHARD_TOO_LARGE,
  TTL_TOO_LONG,
  UNEXPECTED_KIND,
  WRONG_RECIPIENT,
} from "./errors.js";
import { checkX25519Public } from "./keywrap.js";
import { objectId } from "./manifest.js";
import { MAX_SEALED_BYTES, openSealed, SEAL_OVERHEAD, seal } from "./seal.js";

export const KIND_SHARE = "share";
export const KIND_RECEIPT = "receipt";
export const KIND_REVOKE = "revoke";
export const KIND_RECOVER_REQ = "recover_req";
export const KIND_RELEASE = "release";
export const KIND_REFUSE = "refuse";
const FIELDS = {
  share: ["expires_at", "guardian", "index", "issued_at", "k", "kind", "n", "owner", "sealed", "set"],
  receipt: ["guardian", "held_at", "index", "kind", "owner", "set"],
  revoke: ["issued_at", "kind", "owner", "set"],
  recover_req: ["expires_at", "for", "issued_at", "kind", "temp", "x25519"],
  release: ["for", "guardian", "index", "k", "kind", "n", "request", "sealed", "set", "temp"],
  refuse: ["for", "guardian", "kind", "request", "temp"],
};
// The body field that must be the signer's peer id.
const SIGNER_FIELD = { share: "owner", receipt: "guardian", revoke: "owner", recover_req: "temp", release: "guardian", refuse: "guardian" };
export const MIN_K = 2;
export const MAX_N = 16;
export const MAX_SHARE_BYTES = 1024;
export const MAX_SHARE_WORDS = 33;
// Canonical JSON (RFC 8785) of a whole message envelope, in bytes.
export const MAX_MESSAGE_BYTES = 4096;
export const CLOCK_SKEW_MS = 15_000;
const DAY_MS = 86_400_000;
export const DEFAULT_SHARE_LIFETIME_MS = 730 * DAY_MS;
export const MAX_SHARE_LIFETIME_MS = 3650 * DAY_MS;
export const DEFAULT_REQUEST_LIFETIME_MS = DAY_MS;
export const MAX_REQUEST_LIFETIME_MS = 7 * DAY_MS;
// The verification code: CODE_DIGITS decimal digits of PBKDF2-HMAC-SHA256 of the request id,
// slow on purpose so that grinding a second request with the same code is costly.
export const CODE_DIGITS = 8;
export const CODE_ITERATIONS = 262_144;
const CODE_SALT = "swarm/shard/code/v1";
const SET_ID_BYTES = 16;
const SHARE_RE = /^[\x21-\x7e]+(?: [\x21-\x7e]+)*$/;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const hasOwn = (object, key) => Object.hasOwn(object, key);

/** A fresh share-set id: 16 random bytes in canonical base64url. */
export function newSetId() {
  return b64urlEncode(crypto.getRandomValues(new Uint8Array(SET_ID_BYTES)));
}

/** The claimed kind of an unverified message (for routing; the receiver verifies it). */
export function kindOf(envelope) {
  const kind = envelope?.body?.kind;
  return typeof kind === "string" && hasOwn(FIELDS, kind) ? kind : null;
}

/** A share as carried here: 1..33 words of printable ASCII, single spaces, <= 1 KiB. */
export function checkShareText(text) {
  if (typeof text !== "string" || !SHARE_RE.test(text)) {
    throw new ProtocolError(BAD_SHARE, "a share is words of printable ASCII and single spaces");
  }
  if (text.length > MAX_SHARE_BYTES || text.split(" ").length > MAX_SHARE_WORDS) {
    throw new ProtocolError(BAD_SHARE, `a share is at most ${MAX_SHARE_WORDS} words, 1 KiB`);
  }
  return text;
}

/** What a sealed share is bound to (besides its recipient). */
export function shareContext(owner, setId, index) {
  return `${DOMAIN_SHARD}\n${owner}\n${setId}\n${index}`;
}

/** The id of a recovery request: base64url SHA-256 of its signing input. */
export function requestId(body) {
  return objectId(DOMAIN_SHARD, body);
}

/** The digits both people compare: PBKDF2-HMAC-SHA256 of the request id (~0.2 s). */
export async function verificationCode(request) {
  const raw = b64urlDecode(request, "request", BAD_SHARD);
  const key = await crypto.subtle.importKey("raw", raw, "PBKDF2", false, ["deriveBits"]);
  const params = { name: "PBKDF2", hash: "SHA-256", salt: utf8.encode(CODE_SALT), iterations: CODE_ITERATIONS };
  const bits = await crypto.subtle.deriveBits(params, key, 64);
  const value = new DataView(bits).getBigUint64(0) % 10n ** BigInt(CODE_DIGITS);
  return value.toString().padStart(CODE_DIGITS, "0");
}

// --- making messages ---

async function signed(signer, body) {
  checkBody(body);
  const envelope = await sign(DOMAIN_SHARD, body, signer);
  checkSize(envelope);
  return envelope;
}

/** Seal `share` to the guardian's X25519 key (raw) and sign it as the owner. */
export async function makeShare(signer, { guardian, guardianKey, setId, index, k, n, share, issuedAt, expiresAt, ephemeral = null }) {
  const owner = await peerIdForKey(signer.publicKey);
  const data = utf8.encode(checkShareText(share));
  const sealed = await seal(data, { recipient: guardian, recipientKey: guardianKey, context: shareContext(owner, setId, index), ephemeral });
  const body = { kind: KIND_SHARE, owner, guardian, set: setId, index, k, n, issued_at: issuedAt, expires_at: expiresAt, sealed: b64urlEncode(sealed) };
  return signed(signer, body);
}

export async function makeReceipt(signer, share, { heldAt }) {
  const body = { kind: KIND_RECEIPT, owner: share.owner, guardian: await peerIdForKey(signer.publicKey), set: share.set, index: share.index, held_at: heldAt };
  return signed(signer, body);
}

export async function makeRevoke(signer, { setId, issuedAt }) {
  return signed(signer, { kind: KIND_REVOKE, owner: await peerIdForKey(signer.publicKey), set: setId, issued_at: issuedAt });
}

/** Sign a recovery request for `forPeer` with a temporary identity and its X25519 key (raw). */
export async function makeRecoverRequest(tempSigner, tempX25519, { forPeer, issuedAt, expiresAt }) {
  const body = {
    kind: KIND_RECOVER_REQ,
    for: forPeer,
    temp: await peerIdForKey(tempSigner.publicKey),
    x25519: b64urlEncode(tempX25519),
    issued_at: issuedAt,
    expires_at: expiresAt,
  };
  return signed(tempSigner, body);
}

/** Seal `share` to the request's temporary key and sign it as the guardian. */
export async function makeRelease(signer, request, { setId, index, k, n, share, ephemeral = null }) {
  const data = utf8.encode(checkShareText(share));
  const context = shareContext(request.forPeer, setId, index);
  const sealed = await seal(data, { recipient: request.temp, recipientKey: request.x25519, context, ephemeral });
  const body = {
    kind: KIND_RELEASE,
    for: request.forPeer,
    guardian: await peerIdForKey(signer.publicKey),
    temp: request.temp,
    request: request.id,
    set: setId,
    index,
    k,
    n,
    sealed: b64urlEncode(sealed),
  };
  return signed(signer, body);
}

export async function makeRefuse(signer, request) {
  const body = { kind: KIND_REFUSE, for: request.forPeer, guardian: await peerIdForKey(signer.publicKey), temp: request.temp, request: request.id };
  return signed(signer, body);
}

// --- checking messages ---

/**
 * Verify one swarm/shard/v1 message at `now`; `kind` pins the kind expected. Checks in order:
 * size (shard_too_large), envelope and signature (bad_envelope, bad_signature), kind
 * (bad_shard, unexpected_kind), fields (bad_shard), signer (peer_mismatch), keys (bad_key),
 * times (ttl_too_long, not_yet_valid, expired).
 */
export async function parseMessage(envelope, { now, kind = null }) {
  checkSize(envelope);
  const { body, peerId } = await verify(envelope, DOMAIN_SHARD);
  if (typeof body.kind !== "string" || !hasOwn(FIELDS, body.kind)) throw fail("kind is not a shard message kind");
  if (kind !== null && body.kind !== kind) throw new ProtocolError(UNEXPECTED_KIND, `expected a ${kind}, got a ${body.kind}`);
  checkBody(body);
  const field = SIGNER_FIELD[body.kind];
  if (body[field] !== peerId) throw new ProtocolError(PEER_MISMATCH, `${field} is not the signer's peer id`);
  const message = await toMessage(body, envelope);
  checkTimes(message, now);
  return message;
}

/** The share text in a `share` message for this guardian (keyPair = {privateKey, publicKey}). */
export async function openShare(share, { keyPair, peerId }) {
  if (share.guardian !== peerId) throw new ProtocolError(WRONG_RECIPIENT, "this share is sealed to another guardian");
  const context = shareContext(share.owner, share.set, share.index);
  return shareText(await openSealed(share.sealed, { keyPair, recipient: peerId, context }));
}

/** The share text in a `release` for the temporary identity holding keyPair. */
export async function openRelease(release, { keyPair }) {
  const context = shareContext(release.forPeer, release.set, release.index);
  return shareText(await openSealed(release.sealed, { keyPair, recipient: release.temp, context }));
}

function shareText(data) {
  if (data.some((b) => b > 0x7f)) throw new ProtocolError(BAD_SHARE, "a share is printable ASCII");
  return checkShareText(String.fromCharCode(...data));
}

function checkSize(envelope) {
  return checkEnvelopeSize(envelope, MAX_MESSAGE_BYTES, SHARD_TOO_LARGE, "a shard message");
}

const fail = (message) => new ProtocolError(BAD_SHARD, message);

function int(body, field, low, high) {
  const value = body[field];
  if (!Number.isSafeInteger(value) || value < low || value > high) throw fail(`${field} must be an integer in ${low}..${high}`);
  return value;
}

function checkBody(body) {
  const kind = body.kind;
  if (typeof kind !== "string" || !hasOwn(FIELDS, kind)) throw fail("kind is not a shard message kind");
  const keys = Object.keys(body).sort();
  const expected = FIELDS[kind];
  if (keys.length !== expected.length || keys.some((k, i) => k !== expected[i])) throw fail(`${kind} fields must be ${expected.join(",")}`);
  for (const field of ["owner", "guardian", "for", "temp"]) {
    if (hasOwn(body, field) && (typeof body[field] !== "string" || !PEER_ID_RE.test(body[field]))) {
      throw fail(`${field} is not a key-bound peer id`);
    }
  }
  for (const field of ["issued_at", "expires_at", "held_at"]) if (hasOwn(body, field)) int(body, field, 0, MAX_SAFE);
  if (hasOwn(body, "set") && !isFileId(body.set)) throw fail("set must be 16 bytes in canonical base64url");
  if (hasOwn(body, "request") && !isDigestId(body.request)) throw fail("request must be a request id (43 base64url characters)");
  if (hasOwn(body, "n")) int(body, "k", MIN_K, int(body, "n", MIN_K, MAX_N));
  if (hasOwn(body, "index")) int(body, "index", 1, body.n ?? MAX_N);
  if (hasOwn(body, "sealed")) {
    const sealed = b64urlDecode(body.sealed, "sealed", BAD_SHARD);
    if (sealed.length <= SEAL_OVERHEAD || sealed.length > MAX_SEALED_BYTES) {
      throw fail(`sealed must be ${SEAL_OVERHEAD + 1} to ${MAX_SEALED_BYTES} bytes`);
    }
  }
  if (hasOwn(body, "expires_at") && body.expires_at <= body.issued_at) throw fail("expires_at must be after issued_at");
  const parties = ["owner", "guardian", "for", "temp"].filter((f) => hasOwn(body, f)).map((f) => body[f]);
  if (new Set(parties).size !== parties.length) throw fail("a message names one peer in two roles");
}

async function toMessage(body, envelope) {
  const sealed = () => b64urlDecode(body.sealed, "sealed", BAD_SHARD);
  switch (body.kind) {
    case KIND_SHARE:
      return {
        kind: body.kind,
        owner: body.owner,
        guardian: body.guardian,
        set: body.set,
        index: body.index,
        k: body.k,
        n: body.n,
        issuedAt: body.issued_at,
        expiresAt: body.expires_at,
        sealed: sealed(),
        envelope,
      };
    case KIND_RECEIPT:
      return { kind: body.kind, owner: body.owner, guardian: body.guardian, set: body.set, index: body.index, heldAt: body.held_at, envelope };
    case KIND_REVOKE:
      return { kind: body.kind, owner: body.owner, set: body.set, issuedAt: body.issued_at, envelope };
    case KIND_RELEASE:
      return {
        kind: body.kind,
        forPeer: body.for,
        guardian: body.guardian,
        temp: body.temp,
        request: body.request,
        set: body.set,
        index: body.index,
        k: body.k,
        n: body.n,
        sealed: sealed(),
        envelope,
      };
    case KIND_REFUSE:
      return { kind: body.kind, forPeer: body.for, guardian: body.guardian, temp: body.temp, request: body.request, envelope };
    default: {
      const x25519 = await checkX25519Public(b64urlDecode(body.x25519, "x25519", BAD_KEY));
      const id = await requestId(body);
      return { kind: body.kind, forPeer: body.for, temp: body.temp, x25519, issuedAt: body.issued_at, expiresAt: body.expires_at, id, envelope };
    }
  }
}

function checkTimes(message, now) {
  let start;
  if (message.kind === KIND_SHARE || message.kind === KIND_RECOVER_REQ) {
    const longest = message.kind === KIND_SHARE ? MAX_SHARE_LIFETIME_MS : MAX_REQUEST_LIFETIME_MS;
    if (message.expiresAt - message.issuedAt > longest) throw new ProtocolError(TTL_TOO_LONG, `a ${message.kind} lives at most ${longest} ms`);
    start = message.issuedAt;
  } else if (message.kind === KIND_RECEIPT) start = message.heldAt;
  else if (message.kind === KIND_REVOKE) start = message.issuedAt;
  else return; // releases and refusals live as long as the request they answer
  if (start > now + CLOCK_SKEW_MS) throw new ProtocolError(NOT_YET_VALID, `the ${message.kind} is dated in the future`);
  if ((message.kind === KIND_SHARE || message.kind === KIND_RECOVER_REQ) && now >= message.expiresAt) {
    throw new ProtocolError(EXPIRED, `the ${message.kind} has expired`);
  }
}
