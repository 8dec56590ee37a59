// Mail: signed, sealed messages from one peer to another, kept by mailboxes while it is away
// (docs/protocol.md "Mail"), mirror of peers/protocol/mail.py. Domain swarm/mail/v1, kinds
// "mail" {v, kind, id, from, to, created_at, expires_at, sealed} (sealed = canonical JSON of
// {topic, data} sealed to `to` with context "mail\n" + from + "\n" + id) and "ack"
// {v, kind, from, to, ids, acked_at} (the recipient tells the sender it has the mails `ids`).
// Both are signed by `from`.
import canonicalize from "canonicalize";

import { digestId, isFileId } from "./chunks.js";
import { b64urlDecode, b64urlEncode, PEER_ID_RE, peerIdForKey, utf8 } from "./encoding.js";
import { canonical, checkEnvelopeSize, sign, verify } from "./envelope.js";
import { BAD_MAIL, BAD_RECIPIENT, EXPIRED, MAIL_TOO_LARGE, NOT_YET_VALID, PEER_MISMATCH, ProtocolError, WRONG_RECIPIENT } from "./errors.js";
import { MAX_SEALED_BYTES, MAX_SEALED_DATA, openSealed, SEAL_OVERHEAD, seal } from "./seal.js";

export const DOMAIN_MAIL = "swarm/mail/v1";
export const VERSION = 1;
export const KIND_MAIL = "mail";
export const KIND_ACK = "ack";
const DAY_MS = 86_400_000;
// Canonical JSON (RFC 8785) of a whole message envelope, in bytes.
export const MAX_MAIL_BYTES = 4096;
export const MAX_ACK_IDS = 64;
export const MAIL_LIFETIME_MS = 7 * DAY_MS;
export const MAX_MAIL_LIFETIME_MS = 7 * DAY_MS;
export const ACK_LIFETIME_MS = 7 * DAY_MS;
export const CLOCK_SKEW_MS = 15_000;
const MAIL_ID_BYTES = 16;
export const TOPIC_RE = /^[a-z][a-z0-9-]{0,31}$/;
const FIELDS = {
  mail: ["created_at", "expires_at", "from", "id", "kind", "sealed", "to", "v"],
  ack: ["acked_at", "from", "ids", "kind", "to", "v"],
};
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const hasOwn = (object, key) => Object.hasOwn(object, key);
const fail = (message) => new ProtocolError(BAD_MAIL, message);

/** A fresh mail id: 16 random bytes in canonical unpadded base64url (22 characters). */
export function newMailId() {
  return b64urlEncode(crypto.getRandomValues(new Uint8Array(MAIL_ID_BYTES)));
}

/** What a mail's sealed content is bound to (besides its recipient). */
export function mailContext(from, id) {
  return `mail\n${from}\n${id}`;
}

/** Unpadded base64url SHA-256 of an envelope's canonical JSON (an ack's id, a mailbox's message id). */
export function envelopeId(envelope) {
  return digestId(utf8.encode(canonicalize(envelope)));
}

/** The claimed kind of an unverified message (for routing; the receiver verifies it). */
export function kindOf(envelope) {
  const kind = envelope?.body?.kind;
  return typeof kind === "string" && hasOwn(FIELDS, kind) ? kind : null;
}

function plaintext(topic, data) {
  if (typeof topic !== "string" || !TOPIC_RE.test(topic)) throw fail("topic must match [a-z][a-z0-9-]{0,31}");
  let text;
  try {
    text = canonical({ topic, data });
  } catch (error) {
    throw fail(`data is not a JSON value: ${error.message}`);
  }
  const bytes = utf8.encode(text);
  if (bytes.length > MAX_SEALED_DATA) throw new ProtocolError(MAIL_TOO_LARGE, `a mail's content is at most ${MAX_SEALED_DATA} B`);
  return bytes;
}

/**
 * Seal {topic, data} to `to` (raw X25519 key `toKey`) and sign it as the sender (`signer`).
 * `ephemeral` ({privateKey, publicKey}) is for test vectors only (see seal.js).
 */
export async function makeMail(signer, { to, toKey, topic, data, createdAt, expiresAt = createdAt + MAIL_LIFETIME_MS, id = newMailId(), ephemeral = null }) {
  const from = await peerIdForKey(signer.publicKey);
  checkRecipient(to, from);
  if (!isFileId(id)) throw fail("id must be 16 bytes in canonical base64url");
  const sealed = await seal(plaintext(topic, data), { recipient: to, recipientKey: toKey, context: mailContext(from, id), ephemeral });
  const body = { v: VERSION, kind: KIND_MAIL, id, from, to, created_at: createdAt, expires_at: expiresAt, sealed: b64urlEncode(sealed) };
  return signed(signer, body);
}

/** Sign "I have the mails `ids` of `to`" (`ids` are sorted and deduplicated here). */
export async function makeAck(signer, { to, ids, ackedAt }) {
  const sorted = [...new Set(ids)].sort();
  const body = { v: VERSION, kind: KIND_ACK, from: await peerIdForKey(signer.publicKey), to, ids: sorted, acked_at: ackedAt };
  return signed(signer, body);
}

async function signed(signer, body) {
  checkBody(body);
  const envelope = await sign(DOMAIN_MAIL, body, signer);
  checkSize(envelope);
  return envelope;
}

/**
 * Verify one swarm/mail/v1 message at `now`. Checks in order: size (mail_too_large), envelope
 * and signature (bad_envelope, bad_signature), body (bad_mail; bad_recipient for `to`), signer
 * (peer_mismatch: `from` is not the signer), times (not_yet_valid more than 15 s ahead, expired).
 * Resolves {kind: "mail", id, from, to, createdAt, expiresAt, sealed, envelope} or
 * {kind: "ack", id, from, to, ids, ackedAt, expiresAt, envelope}; an ack's id is envelopeId().
 */
export async function parseMail(envelope, { now }) {
  checkSize(envelope);
  const { body, peerId } = await verify(envelope, DOMAIN_MAIL);
  checkBody(body);
  if (body.from !== peerId) throw new ProtocolError(PEER_MISMATCH, "from is not the signer's peer id");
  let message;
  let start;
  if (body.kind === KIND_MAIL) {
    message = {
      kind: KIND_MAIL,
      id: body.id,
      from: body.from,
      to: body.to,
      createdAt: body.created_at,
      expiresAt: body.expires_at,
      sealed: b64urlDecode(body.sealed, "sealed", BAD_MAIL),
      envelope,
    };
    start = message.createdAt;
  } else {
    message = {
      kind: KIND_ACK,
      id: await envelopeId(envelope),
      from: body.from,
      to: body.to,
      ids: [...body.ids],
      ackedAt: body.acked_at,
      expiresAt: body.acked_at + ACK_LIFETIME_MS,
      envelope,
    };
    start = message.ackedAt;
  }
  if (start > now + CLOCK_SKEW_MS) throw new ProtocolError(NOT_YET_VALID, `the ${message.kind} is dated in the future`);
  if (now >= message.expiresAt) throw new ProtocolError(EXPIRED, `the ${message.kind} has expired`);
  return message;
}

/** The {topic, data} of a parsed mail for this peer (keyPair = {privateKey, publicKey} of its X25519 key). */
export async function openMail(parsed, { keyPair, peerId }) {
  if (parsed.to !== peerId) throw new ProtocolError(WRONG_RECIPIENT, "this mail is for another peer");
  const data = await openSealed(parsed.sealed, { keyPair, recipient: peerId, context: mailContext(parsed.from, parsed.id) });
  let value;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
  } catch {
    throw fail("the content is not JSON");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value) || Object.keys(value).sort().join() !== "data,topic") {
    throw fail("the content is {topic, data}");
  }
  const again = plaintext(value.topic, value.data);
  if (again.length !== data.length || again.some((b, i) => b !== data[i])) throw fail("the content is not canonical JSON");
  return { topic: value.topic, data: value.data };
}

function checkSize(envelope) {
  return checkEnvelopeSize(envelope, MAX_MAIL_BYTES, MAIL_TOO_LARGE, "a mail message");
}

function time(body, field) {
  const value = body[field];
  if (!Number.isSafeInteger(value) || value < 0) throw fail(`${field} must be an integer (ms)`);
  return value;
}

function checkRecipient(to, from) {
  if (typeof to !== "string" || !PEER_ID_RE.test(to)) throw new ProtocolError(BAD_RECIPIENT, "to is not a key-bound peer id");
  if (to === from) throw new ProtocolError(BAD_RECIPIENT, "a message to its own sender");
}

function checkBody(body) {
  if (body.v !== VERSION) throw fail("v must be 1");
  const kind = body.kind;
  if (typeof kind !== "string" || !hasOwn(FIELDS, kind)) throw fail("kind must be mail or ack");
  const keys = Object.keys(body).sort();
  const expected = FIELDS[kind];
  if (keys.length !== expected.length || keys.some((k, i) => k !== expected[i])) throw fail(`${kind} fields must be ${expected.join(",")}`);
  if (typeof body.from !== "string" || !PEER_ID_RE.test(body.from)) throw fail("from is not a key-bound peer id");
  checkRecipient(body.to, body.from);
  if (kind === KIND_MAIL) {
    if (!isFileId(body.id)) throw fail("id must be 16 bytes in canonical base64url");
    const created = time(body, "created_at");
    const expires = time(body, "expires_at");
    if (!(created < expires && expires <= created + MAX_MAIL_LIFETIME_MS)) throw fail("expires_at must be after created_at, by at most 7 days");
    const sealed = b64urlDecode(body.sealed, "sealed", BAD_MAIL);
    if (sealed.length <= SEAL_OVERHEAD || sealed.length > MAX_SEALED_BYTES) {
      throw fail(`sealed must be ${SEAL_OVERHEAD + 1} to ${MAX_SEALED_BYTES} bytes`);
    }
    return;
  }
  if (time(body, "acked_at") > MAX_SAFE - ACK_LIFETIME_MS) throw fail("acked_at is out of range");
  const ids = body.ids;
  if (!Array.isArray(ids) || ids.length < 1 || ids.length > MAX_ACK_IDS) throw fail(`ids must be a list of 1 to ${MAX_ACK_IDS} mail ids`);
  if (!ids.every(isFileId)) throw fail("ids must be mail ids (16 bytes in canonical base64url)");
  for (let i = 1; i < ids.length; i++) if (ids[i - 1] >= ids[i]) throw fail("ids must be distinct and sorted ascending");
}
