// Encrypted file chunks (docs/protocol.md "Files"), mirror of peers/protocol/chunks.py.
// AES-256-GCM per 64 KiB chunk; nonce = 4 zero bytes || uint64_be(index);
// AAD = "swarm/chunk/v1" || 0x00 || file_id (16 raw bytes) || uint64_be(index);
// chunk id = unpadded base64url SHA-256 of the ciphertext.
import { b64urlDecode, b64urlEncode, PEER_ID_RE, sha256, utf8 } from "./encoding.js";
import { BAD_CHUNK, BAD_KEY, BAD_MANIFEST, CHUNK_MISMATCH, DECRYPT_FAILED, ProtocolError } from "./errors.js";

export const CHUNK_SIZE = 64 * 1024;
export const MAX_CHUNKS = 4096;
export const MAX_FILE_SIZE = CHUNK_SIZE * MAX_CHUNKS;
export const KEY_BYTES = 32;
export const FILE_ID_BYTES = 16;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
const CHUNK_AAD_DOMAIN = utf8.encode("swarm/chunk/v1");
const AAD_BYTES = CHUNK_AAD_DOMAIN.length + 1 + FILE_ID_BYTES + 8;
const SHARE_FRAGMENT_PREFIX = "k=";
const SHARE_HINTS_PREFIX = "&h=";
export const MAX_SHARE_HINTS = 4; // peer ids a share link names as holders to dial first
// Canonical unpadded base64url of 32 and 16 bytes: the last character carries zero low bits.
export const DIGEST_ID_RE = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;
export const FILE_ID_RE = /^[A-Za-z0-9_-]{21}[AQgw]$/;

export async function digestId(bytes) {
  return b64urlEncode(await sha256(bytes));
}

export const isDigestId = (value) => typeof value === "string" && DIGEST_ID_RE.test(value);
export const isFileId = (value) => typeof value === "string" && FILE_ID_RE.test(value);

export function newFileKey() {
  return crypto.getRandomValues(new Uint8Array(KEY_BYTES));
}

export function newFileId() {
  return b64urlEncode(crypto.getRandomValues(new Uint8Array(FILE_ID_BYTES)));
}

export function chunkCount(size) {
  return Math.ceil(size / CHUNK_SIZE);
}

export function chunkLength(size, index) {
  if (!Number.isInteger(index) || index < 0 || index >= chunkCount(size)) {
    throw new ProtocolError(BAD_CHUNK, `chunk index ${index} is outside the file`);
  }
  return Math.min(CHUNK_SIZE, size - index * CHUNK_SIZE);
}

function checkIndex(index) {
  if (!Number.isInteger(index) || index < 0 || index >= MAX_CHUNKS) {
    throw new ProtocolError(BAD_CHUNK, `chunk index must be 0..${MAX_CHUNKS - 1}`);
  }
}

export function chunkNonce(index) {
  checkIndex(index);
  const nonce = new Uint8Array(NONCE_BYTES);
  new DataView(nonce.buffer).setBigUint64(4, BigInt(index));
  return nonce;
}

export function chunkAad(fileId, index) {
  checkIndex(index);
  if (!isFileId(fileId)) {
    throw new ProtocolError(BAD_MANIFEST, "file_id must be 16 bytes in canonical base64url");
  }
  const aad = new Uint8Array(AAD_BYTES);
  aad.set(CHUNK_AAD_DOMAIN, 0);
  aad.set(b64urlDecode(fileId, "file_id", BAD_MANIFEST), CHUNK_AAD_DOMAIN.length + 1);
  new DataView(aad.buffer).setBigUint64(AAD_BYTES - 8, BigInt(index));
  return aad;
}

export function checkFileKey(key) {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) {
    throw new ProtocolError(BAD_KEY, "a file key is 32 bytes");
  }
  return key;
}

// Chunk bytes as a Uint8Array, whatever view or buffer a DataChannel or IndexedDB gave.
export function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new ProtocolError(BAD_CHUNK, "chunk data must be bytes");
}

// Import once per file: a CryptoKey is much cheaper per chunk than raw bytes.
export async function importFileKey(raw) {
  return crypto.subtle.importKey("raw", /** @type {BufferSource} */ (checkFileKey(raw)), { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
}

async function asCryptoKey(key) {
  return key instanceof CryptoKey ? key : importFileKey(key);
}

// Seal one chunk; the result is plaintext.length + 16 bytes.
export async function encryptChunk(key, fileId, index, data) {
  const plaintext = /** @type {BufferSource} */ (asBytes(data));
  if (plaintext.byteLength > CHUNK_SIZE) throw new ProtocolError(BAD_CHUNK, `a chunk holds at most ${CHUNK_SIZE} bytes`);
  const params = { name: "AES-GCM", iv: chunkNonce(index), additionalData: chunkAad(fileId, index) };
  return new Uint8Array(await crypto.subtle.encrypt(params, await asCryptoKey(key), plaintext));
}

// Open one chunk: a wrong key, file, index or any altered byte gives decrypt_failed.
export async function decryptChunk(key, fileId, index, data) {
  const ciphertext = asBytes(data);
  if (ciphertext.length < TAG_BYTES || ciphertext.length > CHUNK_SIZE + TAG_BYTES) {
    throw new ProtocolError(BAD_CHUNK, "chunk ciphertext length is out of range");
  }
  const params = { name: "AES-GCM", iv: chunkNonce(index), additionalData: chunkAad(fileId, index) };
  const cryptoKey = await asCryptoKey(key);
  try {
    return new Uint8Array(await crypto.subtle.decrypt(params, cryptoKey, /** @type {BufferSource} */ (ciphertext)));
  } catch {
    throw new ProtocolError(DECRYPT_FAILED, `chunk ${index} does not open under this key and file`);
  }
}

// Recompute a received chunk's id: a mismatch means discard it and ask another holder.
export async function checkChunkId(expectedId, data) {
  const actual = await digestId(asBytes(data));
  if (actual !== expectedId) {
    throw new ProtocolError(CHUNK_MISMATCH, `chunk hashes to ${actual}, expected ${expectedId}`);
  }
}

async function readSlice(source, start, end) {
  if (source instanceof Uint8Array) return source.subarray(start, end);
  return new Uint8Array(await source.slice(start, end).arrayBuffer()); // Blob / File
}

// Seal a Uint8Array or Blob chunk by chunk: yields { index, id, ciphertext }, one chunk in memory.
export async function* encryptChunks(source, { key, fileId }) {
  const size = source instanceof Uint8Array ? source.length : source.size;
  if (size > MAX_FILE_SIZE) throw new ProtocolError(BAD_CHUNK, `files are at most ${MAX_FILE_SIZE} bytes`);
  const cryptoKey = await asCryptoKey(key);
  for (let index = 0; index < chunkCount(size); index++) {
    const plain = await readSlice(source, index * CHUNK_SIZE, Math.min(size, (index + 1) * CHUNK_SIZE));
    const ciphertext = await encryptChunk(cryptoKey, fileId, index, plain);
    yield { index, id: await digestId(ciphertext), ciphertext };
  }
}

// Seal a whole file under a fresh key and file id (given ones are for test vectors).
// Resolves { fileId, key (raw bytes, for the share link), size, chunks: [{ index, id, ciphertext }] }.
export async function encryptFile(source, { key = newFileKey(), fileId = newFileId() } = {}) {
  checkFileKey(key);
  const chunks = [];
  for await (const chunk of encryptChunks(source, { key, fileId })) chunks.push(chunk);
  const size = source instanceof Uint8Array ? source.length : source.size;
  return { fileId, key, size, chunks, chunkIds: chunks.map((c) => c.id) };
}

// The URL fragment (without "#") that carries a file key in a share link, and after "&h=" up
// to MAX_SHARE_HINTS peer ids that held the file (comma-separated): peers to dial first.
export function shareFragment(key, hints = []) {
  const ids = [...new Set(hints)].filter((h) => typeof h === "string" && PEER_ID_RE.test(h));
  return SHARE_FRAGMENT_PREFIX + b64urlEncode(checkFileKey(key)) + (ids.length ? SHARE_HINTS_PREFIX + ids.slice(0, MAX_SHARE_HINTS).join(",") : "");
}

function fragmentParts(fragment) {
  if (typeof fragment !== "string") throw new ProtocolError(BAD_KEY, "share fragment must be a string");
  return (fragment.startsWith("#") ? fragment.slice(1) : fragment).split("&");
}

// The file key from "k=<b64url>" (a leading "#" is allowed, and "&" parameters after it);
// bad_key otherwise.
export function parseShareFragment(fragment) {
  const text = fragmentParts(fragment)[0];
  if (!text.startsWith(SHARE_FRAGMENT_PREFIX)) throw new ProtocolError(BAD_KEY, "share fragment must be k=<key>");
  return checkFileKey(b64urlDecode(text.slice(SHARE_FRAGMENT_PREFIX.length), "k", BAD_KEY));
}

// The holder hints of a share fragment: valid peer ids only, at most MAX_SHARE_HINTS, no
// duplicates; anything else in h= is ignored (a hint is a peer to dial first, never trusted).
export function parseShareHints(fragment) {
  const out = [];
  for (const part of fragmentParts(fragment).slice(1)) {
    if (!part.startsWith("h=")) continue;
    for (const id of part.slice(2).split(",")) if (PEER_ID_RE.test(id) && !out.includes(id)) out.push(id);
  }
  return out.slice(0, MAX_SHARE_HINTS);
}
