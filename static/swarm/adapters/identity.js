// This browser's identity: an Ed25519 key pair kept in the store. With WebCrypto Ed25519 the
// signing key is a non-extractable CryptoKey; a copy of the seed, encrypted under a second
// non-extractable AES key, exists only so that the person can export a backup on purpose.
// Without WebCrypto Ed25519 (@noble fallback) the seed itself is stored.
import * as noble from "@noble/ed25519";

import { hasWebCryptoEd25519, signerFromSeed } from "../protocol/ed25519.js";
import { b64urlDecode, b64urlEncode, peerIdForKey, utf8 } from "../protocol/encoding.js";

// DER prefix of an Ed25519 PKCS#8 private key (RFC 8410); the 32-byte seed follows.
const PKCS8_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
export const BACKUP_KIND = "swarm-identity";
export const PBKDF2_ITERATIONS = 600_000; // OWASP's 2023 figure for PBKDF2-HMAC-SHA256

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

async function seedOf(record) {
  if (record.kind === "noble") return Uint8Array.from(record.seed);
  return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: record.iv }, record.wrapKey, record.wrapped));
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
    throw new IdentityError("weak_passphrase", "the passphrase needs at least 8 characters");
  }
  const peerId = await peerIdForKey(record.publicKey);
  const salt = random(16);
  const iv = random(12);
  const key = await passphraseKey(passphrase, salt, iterations);
  const seed = await seedOf(record);
  const ciphertext = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: utf8.encode(peerId) }, key, seed));
  seed.fill(0);
  return {
    v: 1,
    kind: BACKUP_KIND,
    peer_id: peerId,
    pk: b64urlEncode(record.publicKey),
    kdf: { name: "PBKDF2-SHA256", iterations, salt: b64urlEncode(salt) },
    iv: b64urlEncode(iv),
    ciphertext: b64urlEncode(ciphertext),
  };
}

/** Decrypt a backup, check it rebuilds the same key, store it as this browser's identity. */
export async function importIdentity(store, backup, passphrase, now = Date.now()) {
  if (backup?.kind !== BACKUP_KIND || backup.v !== 1 || backup.kdf?.name !== "PBKDF2-SHA256") {
    throw new IdentityError("bad_backup", "not a swarm identity backup");
  }
  let seed;
  try {
    const key = await passphraseKey(passphrase, b64urlDecode(backup.kdf.salt, "salt"), backup.kdf.iterations);
    seed = new Uint8Array(
      await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: b64urlDecode(backup.iv, "iv"), additionalData: utf8.encode(backup.peer_id) },
        key,
        b64urlDecode(backup.ciphertext, "ciphertext"),
      ),
    );
  } catch (error) {
    if (error instanceof IdentityError) throw error;
    throw new IdentityError("bad_passphrase", "wrong passphrase, or the backup is damaged");
  }
  const publicKey = await noble.getPublicKeyAsync(seed);
  if (b64urlEncode(publicKey) !== backup.pk || (await peerIdForKey(publicKey)) !== backup.peer_id) {
    throw new IdentityError("bad_backup", "the backup's key does not match its peer id");
  }
  const record = await recordFromSeed(seed, now);
  await store.putIdentity(record);
  return open(record);
}
