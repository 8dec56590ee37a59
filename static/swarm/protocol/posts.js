// Signed post entries (docs/protocol.md "Posts"), mirror of peers/protocol/posts.py.
// Body {author, seq, prev, created_at, kind, text, target, attachments, name}, domain swarm/post/v1;
// the entry hash (what prev and target name) is objectId(DOMAIN_POST, body).
import { isDigestId } from "./chunks.js";
import { PEER_ID_RE, peerIdForKey } from "./encoding.js";
import { DOMAIN_POST, sign, verify } from "./envelope.js";
import { BAD_POST, NOT_YET_VALID, PEER_MISMATCH, ProtocolError } from "./errors.js";
import { objectId, utf8Length } from "./manifest.js";

export const KIND_POST = "post";
export const KIND_EDIT = "edit";
export const KIND_DELETE = "delete";
const KINDS = [KIND_POST, KIND_EDIT, KIND_DELETE];
export const MAX_TEXT_BYTES = 8192;
export const MAX_NAME_BYTES = 64;
export const MAX_ATTACHMENTS = 16;
export const CLOCK_SKEW_MS = 15_000;
const FIELDS = ["attachments", "author", "created_at", "kind", "name", "prev", "seq", "target", "text"];
// Text keeps tabs and line breaks; a name is one line without bidi overrides.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
const TEXT_FORBIDDEN_RE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
const NAME_FORBIDDEN_RE = /[\u0000-\u001f\u007f\u202a-\u202e\u2066-\u2069]/;

export const entryHash = (body) => objectId(DOMAIN_POST, body);

const isCount = (v) => Number.isSafeInteger(v) && v >= 0;

function checkFields(body) {
  const keys = Object.keys(body).sort();
  if (keys.length !== FIELDS.length || keys.some((k, i) => k !== FIELDS[i])) {
    const missing = FIELDS.filter((k) => !(k in body));
    const detail = missing.length ? `is missing ${missing.join(",")}` : `has unknown fields ${keys.filter((k) => !FIELDS.includes(k)).join(",")}`;
    throw new ProtocolError(BAD_POST, `post ${detail}`);
  }
  const { author, seq, prev, kind, text, target, attachments, name } = body;
  if (typeof author !== "string" || !PEER_ID_RE.test(author)) {
    throw new ProtocolError(BAD_POST, "author is not a key-bound peer id");
  }
  if (!isCount(seq)) throw new ProtocolError(BAD_POST, "seq must be a non-negative integer");
  if (seq === 0 && prev !== null) throw new ProtocolError(BAD_POST, "the first entry (seq 0) has prev null");
  if (seq > 0 && !isDigestId(prev)) throw new ProtocolError(BAD_POST, "prev must be the hash of the previous entry");
  if (!isCount(body.created_at)) throw new ProtocolError(BAD_POST, "created_at must be a non-negative integer (ms)");
  if (!KINDS.includes(kind)) throw new ProtocolError(BAD_POST, "kind must be post, edit or delete");
  const length = typeof text === "string" ? utf8Length(text) : null;
  if (length === null || length > MAX_TEXT_BYTES || TEXT_FORBIDDEN_RE.test(text)) {
    throw new ProtocolError(BAD_POST, `text must be at most ${MAX_TEXT_BYTES} UTF-8 bytes of printable text`);
  }
  if (
    !Array.isArray(attachments) ||
    attachments.length > MAX_ATTACHMENTS ||
    !attachments.every(isDigestId) ||
    new Set(attachments).size !== attachments.length
  ) {
    throw new ProtocolError(BAD_POST, `attachments must be up to ${MAX_ATTACHMENTS} distinct manifest ids`);
  }
  if (kind === KIND_POST && target !== null) throw new ProtocolError(BAD_POST, "a post has target null");
  if (kind !== KIND_POST && !isDigestId(target)) {
    throw new ProtocolError(BAD_POST, "an edit or delete names the hash of its target post");
  }
  if (kind === KIND_DELETE && (text || attachments.length)) {
    throw new ProtocolError(BAD_POST, "a delete carries no text or attachments");
  }
  if (kind !== KIND_DELETE && !text && !attachments.length) {
    throw new ProtocolError(BAD_POST, `an empty ${kind}: it needs text or attachments`);
  }
  const nameLength = typeof name === "string" ? utf8Length(name) : null;
  if (nameLength === null || nameLength > MAX_NAME_BYTES || NAME_FORBIDDEN_RE.test(name)) {
    throw new ProtocolError(BAD_POST, `name must be at most ${MAX_NAME_BYTES} UTF-8 bytes on one line`);
  }
}

// Sign one log entry (signer from ed25519.js); bad_post if it would not verify.
export async function makePost(signer, { seq, prev, createdAt, kind = KIND_POST, text = "", target = null, attachments = [], name = "" }) {
  const body = {
    author: await peerIdForKey(signer.publicKey),
    seq,
    prev,
    created_at: createdAt,
    kind,
    text,
    target,
    attachments: [...attachments],
    name,
  };
  checkFields(body);
  return sign(DOMAIN_POST, body, signer);
}

// Verify one entry on its own (signature, fields, author), not its place in the log.
// Resolves { hash, author, seq, prev, createdAt, kind, text, target, attachments, name, publicKey, envelope }.
export async function verifyPost(envelope, { now = null, skewMs = CLOCK_SKEW_MS } = {}) {
  const { publicKey, body, peerId } = await verify(envelope, DOMAIN_POST);
  checkFields(body);
  if (peerId !== body.author) throw new ProtocolError(PEER_MISMATCH, "author is not the peer id of the signing key");
  if (now !== null && body.created_at > now + skewMs) {
    throw new ProtocolError(NOT_YET_VALID, "post is created in the future");
  }
  return {
    hash: await entryHash(body),
    author: body.author,
    seq: body.seq,
    prev: body.prev,
    createdAt: body.created_at,
    kind: body.kind,
    text: body.text,
    target: body.target,
    attachments: [...body.attachments],
    name: body.name,
    publicKey,
    envelope,
  };
}
