// File keys wrapped per recipient, and the X25519 keys they are wrapped to
// (docs/protocol.md "Files"), mirror of peers/protocol/keywrap.py. WebCrypto X25519 and HKDF
// (Chromium >= 133, Node >= 20). An X25519 key pair is separate from the Ed25519 identity
// (a non-extractable CryptoKey cannot be converted) and announced signed by it (swarm/xkey/v1);
// it is derived from the identity's seed, so a restored identity opens what was wrapped to it.
import { checkFileKey, isFileId, KEY_BYTES } from "./chunks.js";
import { b64urlDecode, b64urlEncode, PEER_ID_RE, peerIdForKey, sha256, utf8 } from "./encoding.js";
import { sign, verify } from "./envelope.js";
import { BAD_BODY, BAD_KEY, BAD_WRAPPED_KEY, DECRYPT_FAILED, NOT_YET_VALID, PEER_MISMATCH, ProtocolError, WRONG_FILE, WRONG_RECIPIENT } from "./errors.js";

export const DOMAIN_XKEY = "swarm/xkey/v1";
export const WRAP_VERSION = 1;
export const WRAP_ALG = "x25519-hkdf-sha256-aes256gcm";
const WRAP_INFO = "swarm/keywrap/v1";
const XKEY_INFO = "swarm/xkey/v1"; // HKDF info of the X25519 key derived from an identity seed
const WRAP_FIELDS = ["alg", "ct", "epk", "file_id", "to", "v"];
const XKEY_FIELDS = ["created_at", "peer_id", "x25519"];
const X25519_BYTES = 32;
const WRAPPED_CT_BYTES = KEY_BYTES + 16;
const CLOCK_SKEW_MS = 15_000;
const B64_32_RE = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;
// PKCS#8 header of an X25519 private key (RFC 8410): WebCrypto imports no raw private keys.
const PKCS8_X25519_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]);
const X25519 = { name: "X25519" };

let probeKey = null;

// A fresh key pair: { privateKey: non-extractable CryptoKey, publicKey: raw 32 bytes }.
export async function generateKeyAgreementPair() {
  const pair = /** @type {CryptoKeyPair} */ (await crypto.subtle.generateKey(X25519, false, ["deriveBits"]));
  const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { privateKey: pair.privateKey, publicKey };
}

// A key pair from a raw 32-byte private key (test vectors, fixed ephemeral keys).
export async function keyAgreementPairFromSeed(seed) {
  if (!(seed instanceof Uint8Array) || seed.length !== X25519_BYTES) {
    throw new ProtocolError(BAD_KEY, "an X25519 private key is 32 bytes");
  }
  const pkcs8 = new Uint8Array(PKCS8_X25519_PREFIX.length + X25519_BYTES);
  pkcs8.set(PKCS8_X25519_PREFIX);
  pkcs8.set(seed, PKCS8_X25519_PREFIX.length);
  const extractable = await crypto.subtle.importKey("pkcs8", pkcs8, X25519, true, ["deriveBits"]);
  const jwk = await crypto.subtle.exportKey("jwk", extractable);
  const privateKey = await crypto.subtle.importKey("pkcs8", pkcs8, X25519, false, ["deriveBits"]);
  return { privateKey, publicKey: b64urlDecode(jwk.x, "x", BAD_KEY) };
}

// The X25519 key pair of an identity: HKDF-SHA256(ikm = Ed25519 seed, no salt,
// info "swarm/xkey/v1", 32 bytes) as the private scalar (x25519_from_identity_seed).
export async function keyAgreementPairFromIdentitySeed(seed) {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new ProtocolError(BAD_KEY, "an identity seed is 32 bytes");
  const ikm = await crypto.subtle.importKey("raw", /** @type {BufferSource} */ (seed), "HKDF", false, ["deriveBits"]);
  const params = { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: utf8.encode(XKEY_INFO) };
  const raw = new Uint8Array(await crypto.subtle.deriveBits(params, ikm, 256));
  try {
    return await keyAgreementPairFromSeed(raw);
  } finally {
    raw.fill(0);
  }
}

// X25519(privateKey, publicRaw) as raw bytes; a small-order public key fails with `code`.
export async function deriveShared(privateKey, publicRaw, code) {
  try {
    const publicKey = await crypto.subtle.importKey("raw", publicRaw, X25519, true, []);
    return new Uint8Array(await crypto.subtle.deriveBits({ name: "X25519", public: publicKey }, privateKey, 256));
  } catch {
    // WebCrypto refuses an all-zero shared secret, i.e. a public key of small order.
    throw new ProtocolError(code, "X25519 key is of small order");
  }
}

// A usable X25519 public key: 32 bytes and not of small order (bad_key otherwise).
export async function checkX25519Public(raw) {
  if (!(raw instanceof Uint8Array) || raw.length !== X25519_BYTES) {
    throw new ProtocolError(BAD_KEY, "an X25519 key is 32 bytes");
  }
  probeKey ??= sha256(utf8.encode("swarm/xkey/probe")).then(keyAgreementPairFromSeed);
  await deriveShared((await probeKey).privateKey, raw, BAD_KEY);
  return raw;
}

// Sign {peer_id, x25519, created_at} with the identity (an ed25519.js signer).
export async function makeKeyAnnouncement(signer, keyPair, { createdAt }) {
  const body = {
    peer_id: await peerIdForKey(signer.publicKey),
    x25519: b64urlEncode(keyPair.publicKey),
    created_at: createdAt,
  };
  return sign(DOMAIN_XKEY, body, signer);
}

// Verify a key announcement: { peerId, x25519 (raw), createdAt, envelope }; newest created_at wins.
export async function verifyKeyAnnouncement(envelope, { now = null, skewMs = CLOCK_SKEW_MS } = {}) {
  const { body, peerId } = await verify(envelope, DOMAIN_XKEY);
  const keys = Object.keys(body).sort();
  if (keys.length !== XKEY_FIELDS.length || keys.some((k, i) => k !== XKEY_FIELDS[i])) {
    throw new ProtocolError(BAD_BODY, `key announcement fields must be ${XKEY_FIELDS.join(",")}`);
  }
  if (typeof body.peer_id !== "string" || !PEER_ID_RE.test(body.peer_id)) {
    throw new ProtocolError(BAD_BODY, "peer_id is not a key-bound peer id");
  }
  if (!Number.isSafeInteger(body.created_at) || body.created_at < 0) {
    throw new ProtocolError(BAD_BODY, "created_at must be a non-negative integer (ms)");
  }
  if (peerId !== body.peer_id) throw new ProtocolError(PEER_MISMATCH, "peer_id is not bound to the signing key");
  const x25519 = await checkX25519Public(b64urlDecode(body.x25519, "x25519", BAD_KEY));
  if (now !== null && body.created_at > now + skewMs) {
    throw new ProtocolError(NOT_YET_VALID, "key announcement is created in the future");
  }
  return { peerId: body.peer_id, x25519, createdAt: body.created_at, envelope };
}

// AES-256-GCM key and nonce from an X25519 shared secret: HKDF-SHA256(shared, salt = epk ||
// recipient key, info, 44 bytes). Wrapped keys and sealed values differ by `info`.
export async function deriveAead(shared, epk, recipientKey, info = WRAP_INFO) {
  const salt = new Uint8Array(epk.length + recipientKey.length);
  salt.set(epk);
  salt.set(recipientKey, epk.length);
  const ikm = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveBits"]);
  const params = { name: "HKDF", hash: "SHA-256", salt, info: utf8.encode(info) };
  const okm = new Uint8Array(await crypto.subtle.deriveBits(params, ikm, 44 * 8));
  const key = await crypto.subtle.importKey("raw", okm.subarray(0, 32), "AES-GCM", false, ["encrypt", "decrypt"]);
  return { key, nonce: okm.slice(32, 44) };
}

const aad = (fileId, recipient) => utf8.encode(`${WRAP_INFO}\n${fileId}\n${recipient}`);

// Wrap fileKey for peer `recipient` whose X25519 public key is `recipientKey` (raw bytes).
// `ephemeral` ({privateKey, publicKey}) is for test vectors only: reusing it reuses the nonce.
export async function wrapFileKey(fileKey, { fileId, recipient, recipientKey, ephemeral = null }) {
  checkFileKey(fileKey);
  if (!isFileId(fileId)) throw new ProtocolError(BAD_WRAPPED_KEY, "file_id must be 16 bytes in canonical base64url");
  if (typeof recipient !== "string" || !PEER_ID_RE.test(recipient)) {
    throw new ProtocolError(BAD_WRAPPED_KEY, "recipient is not a key-bound peer id");
  }
  await checkX25519Public(recipientKey);
  const eph = ephemeral ?? (await generateKeyAgreementPair());
  const shared = await deriveShared(eph.privateKey, recipientKey, BAD_KEY);
  const { key, nonce } = await deriveAead(shared, eph.publicKey, recipientKey);
  const params = { name: "AES-GCM", iv: nonce, additionalData: aad(fileId, recipient) };
  const ct = new Uint8Array(await crypto.subtle.encrypt(params, key, fileKey));
  return { v: WRAP_VERSION, alg: WRAP_ALG, file_id: fileId, to: recipient, epk: b64urlEncode(eph.publicKey), ct: b64urlEncode(ct) };
}

// The file key in `wrapped` for this peer (keyPair = {privateKey, publicKey}); fileId pins the file.
export async function unwrapFileKey(wrapped, { keyPair, peerId, fileId = null }) {
  if (wrapped === null || typeof wrapped !== "object" || Array.isArray(wrapped)) {
    throw new ProtocolError(BAD_WRAPPED_KEY, "wrapped key must be a JSON object");
  }
  const keys = Object.keys(wrapped).sort();
  if (keys.length !== WRAP_FIELDS.length || keys.some((k, i) => k !== WRAP_FIELDS[i])) {
    throw new ProtocolError(BAD_WRAPPED_KEY, `wrapped key fields must be ${WRAP_FIELDS.join(",")}`);
  }
  if (wrapped.v !== WRAP_VERSION) throw new ProtocolError(BAD_WRAPPED_KEY, "unsupported wrapped key version");
  if (wrapped.alg !== WRAP_ALG) throw new ProtocolError(BAD_WRAPPED_KEY, "unsupported wrapping algorithm");
  if (!isFileId(wrapped.file_id)) {
    throw new ProtocolError(BAD_WRAPPED_KEY, "file_id must be 16 bytes in canonical base64url");
  }
  if (typeof wrapped.to !== "string" || !PEER_ID_RE.test(wrapped.to)) {
    throw new ProtocolError(BAD_WRAPPED_KEY, "to is not a key-bound peer id");
  }
  if (typeof wrapped.epk !== "string" || !B64_32_RE.test(wrapped.epk)) {
    throw new ProtocolError(BAD_WRAPPED_KEY, "epk must be a 32-byte key in base64url");
  }
  const ct = b64urlDecode(wrapped.ct, "ct", BAD_WRAPPED_KEY);
  if (ct.length !== WRAPPED_CT_BYTES) throw new ProtocolError(BAD_WRAPPED_KEY, `ct must be ${WRAPPED_CT_BYTES} bytes`);
  if (wrapped.to !== peerId) throw new ProtocolError(WRONG_RECIPIENT, "this key is wrapped for another peer");
  if (fileId !== null && wrapped.file_id !== fileId) {
    throw new ProtocolError(WRONG_FILE, "this key is wrapped for another file");
  }
  const epk = b64urlDecode(wrapped.epk, "epk", BAD_WRAPPED_KEY);
  const shared = await deriveShared(keyPair.privateKey, epk, BAD_WRAPPED_KEY);
  const { key, nonce } = await deriveAead(shared, epk, keyPair.publicKey);
  const params = { name: "AES-GCM", iv: nonce, additionalData: aad(wrapped.file_id, wrapped.to) };
  try {
    return new Uint8Array(await crypto.subtle.decrypt(params, key, ct));
  } catch {
    throw new ProtocolError(DECRYPT_FAILED, "wrapped key does not open with this key");
  }
}
