// This browser's identity: an Ed25519 key pair kept in the store. With WebCrypto Ed25519 the
// signing key is a non-extractable CryptoKey; a copy of the seed, encrypted under a second
// non-extractable AES key, exists only so that the person can export a backup on purpose.
// Without WebCrypto Ed25519 (@noble fallback) the seed itself is stored.
// A backup file (docs/recovery.md) is read and checked in full before anything is decrypted
// or stored: a file that is not a backup, a key that does not give its peer id, or a wrong
// passphrase is refused with a stable code and the stored identity stays as it was.
import * as noble from "@noble/ed25519";

import { hasWebCryptoEd25519, signerFromSeed } from "../protocol/ed25519.js";
import { b64urlDecode, b64urlEncode, PEER_ID_RE, peerIdForKey, utf8 } from "../protocol/encoding.js";
import { keyAgreementPairFromIdentitySeed } from "../protocol/keywrap.js";

// DER prefix of an Ed25519 PKCS#8 private key (RFC 8410); the 32-byte seed follows.
const PKCS8_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
export const BACKUP_KIND = "swarm-identity";
export const BACKUP_VERSION = 1;
const KDF_NAME = "PBKDF2-SHA256";
export const PBKDF2_ITERATIONS = 600_000; // OWASP's 2023 figure for PBKDF2-HMAC-SHA256
// The file sets its own iteration count; past this a restore would freeze the tab for minutes.
export const MAX_BACKUP_ITERATIONS = 10_000_000;
export const MAX_BACKUP_CHARS = 16 * 1024; // a backup is about 400 bytes: a bigger file is something else
const SEED_BYTES = 32;
const SALT_MIN_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16; // AES-GCM tag after the encrypted seed

// Stable codes of IdentityError (shown by the identity card as data-error).
export const NOT_JSON = "not_json";
export const BAD_BACKUP = "bad_backup";
export const UNSUPPORTED_BACKUP = "unsupported_backup";
export const KEY_MISMATCH = "key_mismatch";
export const BAD_PASSPHRASE = "bad_passphrase";
export const WEAK_PASSPHRASE = "weak_passphrase";
// The channel on which a tab that restored an identity tells the other tabs of this origin.
export const IDENTITY_CHANNEL = "swarm/identity";

export class IdentityError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "IdentityError";
    this.code = code;
  }
}

const random = (n) => crypto.getRandomValues(new Uint8Array(n));

function pkcs8FromSeed(seed) {
  const out = new Uint8Array(PKCS8_PREFIX.length + 32);
  out.set(PKCS8_PREFIX);
  out.set(seed, PKCS8_PREFIX.length);
  return out;
}

async function recordFromSeed(seed, now) {
  const publicKey = await noble.getPublicKeyAsync(seed);
  if (!(await hasWebCryptoEd25519())) return { kind: "noble", seed, publicKey, createdAt: now };
  const privateKey = await crypto.subtle.importKey("pkcs8", pkcs8FromSeed(seed), { name: "Ed25519" }, false, ["sign"]);
  const wrapKey = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
  const iv = random(12);
  const wrapped = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, wrapKey, seed));
  seed.fill(0);
  return { kind: "webcrypto", privateKey, publicKey, wrapKey, iv, wrapped, createdAt: now };
}

/** {signer, peerId, record} from a stored record. */
async function open(record) {
  const signer = record.kind === "webcrypto" ? { privateKey: record.privateKey, publicKey: record.publicKey } : await signerFromSeed(record.seed);
  return { signer, peerId: await peerIdForKey(record.publicKey), record, extractable: record.kind !== "webcrypto" };
}

/** The stored identity, or a new one (saved before it is returned). */
export async function loadOrCreateIdentity(store, now = Date.now()) {
  const existing = await store.getIdentity();
  if (existing?.publicKey) return { ...(await open(existing)), created: false };
  const record = await recordFromSeed(random(32), now);
  await store.putIdentity(record);
  return { ...(await open(record)), created: true };
}

/** The 32-byte seed of a stored identity record (the caller zeroes it when done). */
export async function seedOf(record) {
  if (record.kind === "noble") return Uint8Array.from(record.seed);
  return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: record.iv }, record.wrapKey, record.wrapped));
}

/** This identity's X25519 key pair (file keys are wrapped to it), derived from its seed. */
export async function identityKeyAgreementPair(record) {
  const seed = await seedOf(record);
  try {
    return await keyAgreementPairFromIdentitySeed(seed);
  } finally {
    seed.fill(0);
  }
}

async function passphraseKey(passphrase, salt, iterations) {
  const material = await crypto.subtle.importKey("raw", utf8.encode(passphrase), "PBKDF2", false, ["deriveKey"]);
  return crypto.subtle.deriveKey({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, material, { name: "AES-GCM", length: 256 }, false, [
    "encrypt",
    "decrypt",
  ]);
}

/** A backup object (JSON-safe): the seed encrypted under the passphrase, bound to the peer id. */
export async function exportIdentity(record, passphrase, { iterations = PBKDF2_ITERATIONS } = {}) {
  if (typeof passphrase !== "string" || passphrase.length < 8) {
    throw new IdentityError(WEAK_PASSPHRASE, "the passphrase needs at least 8 characters");
  }
  const peerId = await peerIdForKey(record.publicKey);
  const salt = random(16);
  const iv = random(12);
  const key = await passphraseKey(passphrase, salt, iterations);
  const seed = await seedOf(record);
  const ciphertext = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: utf8.encode(peerId) }, key, seed));
  seed.fill(0);
  return {
    v: BACKUP_VERSION,
    kind: BACKUP_KIND,
    peer_id: peerId,
    pk: b64urlEncode(record.publicKey),
    kdf: { name: KDF_NAME, iterations, salt: b64urlEncode(salt) },
    iv: b64urlEncode(iv),
    ciphertext: b64urlEncode(ciphertext),
  };
}

const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

function bytesField(text, name, check) {
  let bytes;
  try {
    bytes = b64urlDecode(text, name);
  } catch (error) {
    throw new IdentityError(BAD_BACKUP, `not a swarm identity backup: ${error.message}`);
  }
  if (!check(bytes.length)) throw new IdentityError(BAD_BACKUP, `not a swarm identity backup: ${name} has a wrong length`);
  return bytes;
}

/**
 * The parts of a backup object, checked (synchronous, no key is derived yet):
 * { peerId, publicKey, salt, iterations, iv, ciphertext }. Throws IdentityError bad_backup
 * (not a backup, a field missing or malformed) or unsupported_backup (a later version).
 */
export function checkBackup(backup) {
  if (!isObject(backup) || backup.kind !== BACKUP_KIND) throw new IdentityError(BAD_BACKUP, "not a swarm identity backup");
  if (backup.v !== BACKUP_VERSION) throw new IdentityError(UNSUPPORTED_BACKUP, `backup version ${JSON.stringify(backup.v)} is not supported here`);
  for (const name of ["peer_id", "pk", "kdf", "iv", "ciphertext"]) {
    if (!(name in backup)) throw new IdentityError(BAD_BACKUP, `not a swarm identity backup: ${name} is missing`);
  }
  if (typeof backup.peer_id !== "string" || !PEER_ID_RE.test(backup.peer_id)) {
    throw new IdentityError(BAD_BACKUP, "not a swarm identity backup: peer_id is not a peer id");
  }
  const { kdf } = backup;
  if (!isObject(kdf) || kdf.name !== KDF_NAME) throw new IdentityError(UNSUPPORTED_BACKUP, `the backup's key derivation is not ${KDF_NAME}`);
  if (!Number.isSafeInteger(kdf.iterations) || kdf.iterations < 1 || kdf.iterations > MAX_BACKUP_ITERATIONS) {
    throw new IdentityError(BAD_BACKUP, `not a swarm identity backup: kdf.iterations must be 1..${MAX_BACKUP_ITERATIONS}`);
  }
  return {
    peerId: backup.peer_id,
    publicKey: bytesField(backup.pk, "pk", (n) => n === SEED_BYTES),
    salt: bytesField(kdf.salt, "kdf.salt", (n) => n >= SALT_MIN_BYTES && n <= 64),
    iterations: kdf.iterations,
    iv: bytesField(backup.iv, "iv", (n) => n === IV_BYTES),
    ciphertext: bytesField(backup.ciphertext, "ciphertext", (n) => n === SEED_BYTES + TAG_BYTES),
  };
}

/** The backup object in the text of a backup file (checked as by checkBackup; not_json if no JSON). */
export function readBackup(text) {
  if (typeof text !== "string" || text.length > MAX_BACKUP_CHARS) {
    throw new IdentityError(BAD_BACKUP, "not a swarm identity backup (the file is too large)");
  }
  let backup;
  try {
    backup = JSON.parse(text);
  } catch {
    throw new IdentityError(NOT_JSON, "this file is not a backup (not JSON): choose the .json file that Export key saved");
  }
  checkBackup(backup);
  return backup;
}

/**
 * Decrypt a backup, check it rebuilds the key of its peer id, then (and only then) store it as
 * this browser's identity. Throws IdentityError: bad_backup, unsupported_backup, key_mismatch
 * (the public key does not give the peer id, or the seed does not give the public key),
 * bad_passphrase; the store is untouched on every error.
 */
export async function importIdentity(store, backup, passphrase, now = Date.now()) {
  const parts = checkBackup(backup);
  if ((await peerIdForKey(parts.publicKey)) !== parts.peerId) {
    throw new IdentityError(KEY_MISMATCH, "the backup's key does not match its peer id");
  }
  if (typeof passphrase !== "string" || passphrase.length === 0) throw new IdentityError(BAD_PASSPHRASE, "type the backup's passphrase");
  let seed;
  try {
    const key = await passphraseKey(passphrase, parts.salt, parts.iterations);
    const params = { name: "AES-GCM", iv: parts.iv, additionalData: utf8.encode(parts.peerId) };
    seed = new Uint8Array(await crypto.subtle.decrypt(params, key, parts.ciphertext));
  } catch {
    throw new IdentityError(BAD_PASSPHRASE, "wrong passphrase, or the backup is damaged");
  }
  const publicKey = await noble.getPublicKeyAsync(seed);
  if (b64urlEncode(publicKey) !== b64urlEncode(parts.publicKey)) {
    seed.fill(0);
    throw new IdentityError(KEY_MISMATCH, "the backup's key does not match its peer id");
  }
  const record = await recordFromSeed(seed, now);
  await store.putIdentity(record);
  return open(record);
}

/**
 * Store a seed rebuilt elsewhere (guardians' shares) as this browser's identity, if its key
 * gives `peerId` (key_mismatch otherwise, and nothing is stored): the restore's storage path.
 * The seed is zeroed.
 */
export async function installSeed(store, seed, peerId, now = Date.now()) {
  const publicKey = await noble.getPublicKeyAsync(seed);
  if ((await peerIdForKey(publicKey)) !== peerId) {
    seed.fill(0);
    throw new IdentityError(KEY_MISMATCH, "the rebuilt key does not give the peer id asked for");
  }
  const record = await recordFromSeed(Uint8Array.from(seed), now);
  seed.fill(0);
  await store.putIdentity(record);
  return open(record);
}
