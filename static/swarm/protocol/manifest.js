// File manifests (docs/protocol.md "Files"), mirror of peers/protocol/manifest.py.
// Body {file_id, name, mime, size, chunk_size, chunks, created_at, author}, domain swarm/manifest/v1;
// the manifest id (what /f/<manifest id> names) is objectId(DOMAIN_MANIFEST, body).
import {
  asBytes,
  CHUNK_SIZE,
  MAX_FILE_SIZE,
  TAG_BYTES,
  checkChunkId,
  chunkCount,
  chunkLength,
  decryptChunk,
  digestId,
  importFileKey,
  isDigestId,
  isFileId,
} from "./chunks.js";
import { PEER_ID_RE, peerIdForKey } from "./encoding.js";
import { DOMAIN_MANIFEST, sign, signingInput, verify } from "./envelope.js";
import { BAD_CHUNK, BAD_MANIFEST, MANIFEST_MISMATCH, NOT_YET_VALID, PEER_MISMATCH, ProtocolError } from "./errors.js";

export const CLOCK_SKEW_MS = 15_000;
export const MAX_NAME_BYTES = 255;
export const DEFAULT_MIME = "application/octet-stream";
// RFC 6838 restricted names, lowercase only, no parameters.
export const MIME_RE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$/;
// Control characters, bidirectional overrides (they can disguise an extension), path separators.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
const NAME_FORBIDDEN_RE = /[\u0000-\u001f\u007f\u202a-\u202e\u2066-\u2069/\\]/;
const FIELDS = ["author", "chunk_size", "chunks", "created_at", "file_id", "mime", "name", "size"];
const utf8 = new TextEncoder();

// Unpadded base64url SHA-256 of domain + "\n" + JCS(body): the id of a signed object
// (the signature is left out, so an object has one id however often it is signed).
export function objectId(domain, body) {
  return digestId(signingInput(domain, body));
}

// UTF-8 length, or null for strings with lone surrogates (not valid Unicode text).
export function utf8Length(text) {
  return text.isWellFormed() ? utf8.encode(text).length : null;
}

// What a sender puts in a manifest for a browser's File.type (often "").
export function normalizeMime(mime) {
  const candidate = (mime ?? "").split(";", 1)[0].trim().toLowerCase();
  return MIME_RE.test(candidate) ? candidate : DEFAULT_MIME;
}

export function isValidName(name) {
  if (typeof name !== "string" || name === "" || name === "." || name === "..") return false;
  const length = utf8Length(name);
  return length !== null && length <= MAX_NAME_BYTES && !NAME_FORBIDDEN_RE.test(name);
}

const isCount = (v, max) => Number.isSafeInteger(v) && v >= 0 && v <= max;

function checkFields(body) {
  const keys = Object.keys(body).sort();
  if (keys.length !== FIELDS.length || keys.some((k, i) => k !== FIELDS[i])) {
    const missing = FIELDS.filter((k) => !(k in body));
    const detail = missing.length ? `is missing ${missing.join(",")}` : `has unknown fields ${keys.filter((k) => !FIELDS.includes(k)).join(",")}`;
    throw new ProtocolError(BAD_MANIFEST, `manifest ${detail}`);
  }
  if (!isFileId(body.file_id)) throw new ProtocolError(BAD_MANIFEST, "file_id must be 16 bytes in canonical base64url");
  if (!isValidName(body.name)) {
    throw new ProtocolError(BAD_MANIFEST, `name must be 1-${MAX_NAME_BYTES} UTF-8 bytes without control characters or slashes`);
  }
  if (typeof body.mime !== "string" || !MIME_RE.test(body.mime)) {
    throw new ProtocolError(BAD_MANIFEST, "mime must be a lowercase type/subtype");
  }
  if (!isCount(body.size, MAX_FILE_SIZE)) {
    throw new ProtocolError(BAD_MANIFEST, `size must be an integer 0..${MAX_FILE_SIZE}`);
  }
  if (body.chunk_size !== CHUNK_SIZE) throw new ProtocolError(BAD_MANIFEST, `chunk_size must be ${CHUNK_SIZE}`);
  const chunks = body.chunks;
  if (!Array.isArray(chunks) || !chunks.every(isDigestId)) {
    throw new ProtocolError(BAD_MANIFEST, "chunks must be a list of chunk ids");
  }
  const expected = chunkCount(body.size);
  if (chunks.length !== expected) {
    throw new ProtocolError(BAD_MANIFEST, `a ${body.size}-byte file has ${expected} chunks, not ${chunks.length}`);
  }
  if (new Set(chunks).size !== chunks.length) throw new ProtocolError(BAD_MANIFEST, "chunk ids repeat");
  if (!isCount(body.created_at, Number.MAX_SAFE_INTEGER)) {
    throw new ProtocolError(BAD_MANIFEST, "created_at must be a non-negative integer (ms)");
  }
  if (typeof body.author !== "string" || !PEER_ID_RE.test(body.author)) {
    throw new ProtocolError(BAD_MANIFEST, "author is not a key-bound peer id");
  }
}

// Sign the manifest of a sealed file (the result of chunks.encryptFile); bad_manifest if invalid.
export async function makeManifest(signer, encrypted, { name, mime, createdAt }) {
  const body = {
    file_id: encrypted.fileId,
    name,
    mime,
    size: encrypted.size,
    chunk_size: CHUNK_SIZE,
    chunks: encrypted.chunks.map((c) => c.id),
    created_at: createdAt,
    author: await peerIdForKey(signer.publicKey),
  };
  checkFields(body);
  return sign(DOMAIN_MANIFEST, body, signer);
}

// Verify a manifest; expectedId is the id it was asked for (e.g. from a share link).
// Resolves { id, fileId, name, mime, size, chunkSize, chunks, createdAt, author, publicKey, envelope }.
export async function verifyManifest(envelope, { now = null, expectedId = null, skewMs = CLOCK_SKEW_MS } = {}) {
  const { publicKey, body, peerId } = await verify(envelope, DOMAIN_MANIFEST);
  checkFields(body);
  if (peerId !== body.author) throw new ProtocolError(PEER_MISMATCH, "author is not the peer id of the signing key");
  if (now !== null && body.created_at > now + skewMs) {
    throw new ProtocolError(NOT_YET_VALID, "manifest is created in the future");
  }
  const id = await objectId(DOMAIN_MANIFEST, body);
  if (expectedId !== null && id !== expectedId) {
    throw new ProtocolError(MANIFEST_MISMATCH, `manifest id is ${id}, not ${expectedId}`);
  }
  return {
    id,
    fileId: body.file_id,
    name: body.name,
    mime: body.mime,
    size: body.size,
    chunkSize: body.chunk_size,
    chunks: [...body.chunks],
    createdAt: body.created_at,
    author: body.author,
    publicKey,
    envelope,
  };
}

// Exact byte length a holder must serve for chunk `index` of a verified manifest.
export function ciphertextLength(manifest, index) {
  return chunkLength(manifest.size, index) + TAG_BYTES;
}

// Check a received chunk (position, id, length) and decrypt it. chunk_mismatch means the
// holder sent wrong bytes: discard them and fetch from another holder.
export async function openChunk(manifest, key, index, data) {
  const ciphertext = asBytes(data);
  if (!Number.isInteger(index) || index < 0 || index >= manifest.chunks.length) {
    throw new ProtocolError(BAD_CHUNK, `chunk index ${index} is outside the manifest`);
  }
  await checkChunkId(manifest.chunks[index], ciphertext);
  if (ciphertext.length !== ciphertextLength(manifest, index)) {
    throw new ProtocolError(BAD_CHUNK, `chunk ${index} has the wrong length`);
  }
  return decryptChunk(key, manifest.fileId, index, ciphertext);
}

// All chunks in order -> the plaintext file.
export async function decryptFile(manifest, key, chunks) {
  if (chunks.length !== manifest.chunks.length) {
    throw new ProtocolError(BAD_CHUNK, `expected ${manifest.chunks.length} chunks, got ${chunks.length}`);
  }
  const cryptoKey = key instanceof CryptoKey ? key : await importFileKey(key);
  const out = new Uint8Array(manifest.size);
  for (let i = 0; i < chunks.length; i++) {
    out.set(await openChunk(manifest, cryptoKey, i, chunks[i]), i * CHUNK_SIZE);
  }
  return out;
}
