// Restoring an identity from a backup file (static/swarm/adapters/identity.js readBackup,
// checkBackup, importIdentity; docs/recovery.md): every refusal has its stable code and leaves
// the stored identity as it was. MemoryStore stands in for IndexedDB (the browser test,
// tests/browser/test_identity_restore.py, drives the real one through the identity card).
import assert from "node:assert/strict";
import { test } from "node:test";

import * as noble from "@noble/ed25519";

import {
  BACKUP_KIND,
  checkBackup,
  exportIdentity,
  importIdentity,
  loadOrCreateIdentity,
  MAX_BACKUP_CHARS,
  MAX_BACKUP_ITERATIONS,
  readBackup,
} from "../../static/swarm/adapters/identity.js";
import { MemoryStore } from "../../static/swarm/adapters/store.js";
import { b64urlDecode, b64urlEncode, peerIdForKey, utf8 } from "../../static/swarm/protocol/encoding.js";

const PASS = "correct horse battery";
const FAST = { iterations: 1000 }; // PBKDF2 at 600,000 iterations is the browser's cost, not the tests'

// A store that counts writes: a refused restore must not write at all.
class WatchedStore extends MemoryStore {
  writes = 0;

  async putIdentity(record) {
    this.writes += 1;
    return super.putIdentity(record);
  }
}

async function someone() {
  const me = await loadOrCreateIdentity(new MemoryStore());
  return { me, backup: await exportIdentity(me.record, PASS, FAST) };
}

const codeIs = (code) => (error) => {
  assert.equal(error.name, "IdentityError");
  assert.equal(error.code, code, error.message);
  return true;
};

test("backup file: the text Export key saves reads back and restores the same peer id", async () => {
  const { me, backup } = await someone();
  const text = JSON.stringify(backup, null, 2);
  assert.deepEqual(readBackup(text), backup);
  const parts = checkBackup(backup);
  assert.equal(parts.peerId, me.peerId);
  assert.deepEqual(parts.publicKey, me.record.publicKey);
  assert.equal(parts.iterations, 1000);
  const store = new WatchedStore();
  const restored = await importIdentity(store, readBackup(text), PASS);
  assert.equal(restored.peerId, me.peerId);
  assert.equal(store.writes, 1);
  assert.equal((await loadOrCreateIdentity(store)).peerId, me.peerId);
});

test("backup file: text that is not JSON is not_json", () => {
  for (const text of ["", "hello", "{kind: swarm-identity}", "\u0000\u0001PNG", '{"v":1,']) {
    assert.throws(() => readBackup(text), codeIs("not_json"), JSON.stringify(text));
  }
});

test("backup file: JSON that is not a backup, or misses or mangles a field, is bad_backup", async () => {
  const { backup } = await someone();
  const notBackups = [null, 1, "swarm-identity", [], [backup], {}, { ...backup, kind: "swarm-post" }, { ...backup, kind: undefined }];
  for (const value of notBackups) {
    assert.throws(() => readBackup(JSON.stringify(value) ?? "null"), codeIs("bad_backup"), JSON.stringify(value));
  }
  for (const field of ["peer_id", "pk", "kdf", "iv", "ciphertext"]) {
    const { [field]: _gone, ...rest } = backup;
    assert.throws(() => readBackup(JSON.stringify(rest)), codeIs("bad_backup"), `without ${field}`);
  }
  const { salt: _salt, ...kdfWithoutSalt } = backup.kdf;
  const { iterations: _iterations, ...kdfWithoutIterations } = backup.kdf;
  const mangled = {
    "peer id not an id": { peer_id: "someone" },
    "peer id in capitals": { peer_id: backup.peer_id.toUpperCase() },
    "pk not base64url": { pk: "not base64!" },
    "pk of 31 bytes": { pk: b64urlEncode(new Uint8Array(31)) },
    "pk padded": { pk: `${backup.pk}=` },
    "iv of 16 bytes": { iv: b64urlEncode(new Uint8Array(16)) },
    "ciphertext without its tag": { ciphertext: b64urlEncode(b64urlDecode(backup.ciphertext, "c").subarray(0, 32)) },
    "ciphertext a number": { ciphertext: 7 },
    "kdf without salt": { kdf: kdfWithoutSalt },
    "salt of 8 bytes": { kdf: { ...backup.kdf, salt: b64urlEncode(new Uint8Array(8)) } },
    "kdf without iterations": { kdf: kdfWithoutIterations },
    "zero iterations": { kdf: { ...backup.kdf, iterations: 0 } },
    "fractional iterations": { kdf: { ...backup.kdf, iterations: 1000.5 } },
    "iterations as text": { kdf: { ...backup.kdf, iterations: "1000" } },
    "iterations that would freeze the tab": { kdf: { ...backup.kdf, iterations: MAX_BACKUP_ITERATIONS + 1 } },
  };
  for (const [what, change] of Object.entries(mangled)) {
    assert.throws(() => readBackup(JSON.stringify({ ...backup, ...change })), codeIs("bad_backup"), what);
  }
  const huge = JSON.stringify({ ...backup, padding: "x".repeat(MAX_BACKUP_CHARS) });
  assert.throws(() => readBackup(huge), codeIs("bad_backup"));
  assert.throws(() => readBackup(undefined), codeIs("bad_backup"));
});

test("backup file: a later version or another key derivation is unsupported_backup", async () => {
  const { backup } = await someone();
  for (const change of [{ v: 2 }, { v: "1" }, { kdf: { ...backup.kdf, name: "scrypt" } }, { kdf: "PBKDF2-SHA256" }]) {
    assert.throws(() => readBackup(JSON.stringify({ ...backup, ...change })), codeIs("unsupported_backup"), JSON.stringify(change));
  }
  assert.equal(readBackup(JSON.stringify({ ...backup, note: "kept on a stick" })).kind, BACKUP_KIND, "unknown extra fields are ignored");
});

test("restore: a key that does not give its peer id is key_mismatch, found before any key is derived", async () => {
  const { me, backup } = await someone();
  const other = await someone();
  const store = new WatchedStore();
  const current = await loadOrCreateIdentity(store);
  const tampered = [
    { ...backup, peer_id: other.me.peerId }, // the peer id of someone else
    { ...backup, pk: other.backup.pk }, // the key of someone else
  ];
  for (const value of tampered) {
    const started = performance.now();
    // An iteration count that would take minutes: key_mismatch comes first.
    const slow = { ...value, kdf: { ...value.kdf, iterations: MAX_BACKUP_ITERATIONS } };
    await assert.rejects(importIdentity(store, readBackup(JSON.stringify(slow)), PASS), codeIs("key_mismatch"));
    assert.ok(performance.now() - started < 1000, "refused without running PBKDF2");
  }
  assert.equal(store.writes, 1, "only the identity created at the start");
  assert.equal((await loadOrCreateIdentity(store)).peerId, current.peerId);
  assert.notEqual(current.peerId, me.peerId);
});

test("restore: a consistent key and peer id around another identity's seed is key_mismatch", async () => {
  // Someone builds a backup naming B (B's pk and peer id) that holds A's seed, encrypted
  // correctly under the passphrase with B's peer id as associated data: it decrypts, and the
  // seed it yields does not give B's key.
  const seedA = crypto.getRandomValues(new Uint8Array(32));
  const seedB = crypto.getRandomValues(new Uint8Array(32));
  const pkB = await noble.getPublicKeyAsync(seedB);
  const peerB = await peerIdForKey(pkB);
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const material = await crypto.subtle.importKey("raw", utf8.encode(PASS), "PBKDF2", false, ["deriveKey"]);
  const key = await crypto.subtle.deriveKey({ name: "PBKDF2", hash: "SHA-256", salt, iterations: 1000 }, material, { name: "AES-GCM", length: 256 }, false, [
    "encrypt",
  ]);
  const ciphertext = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: utf8.encode(peerB) }, key, seedA));
  const forged = {
    v: 1,
    kind: BACKUP_KIND,
    peer_id: peerB,
    pk: b64urlEncode(pkB),
    kdf: { name: "PBKDF2-SHA256", iterations: 1000, salt: b64urlEncode(salt) },
    iv: b64urlEncode(iv),
    ciphertext: b64urlEncode(ciphertext),
  };
  const store = new WatchedStore();
  await assert.rejects(importIdentity(store, readBackup(JSON.stringify(forged)), PASS), codeIs("key_mismatch"));
  assert.equal(store.writes, 0);
  assert.equal(await store.getIdentity(), undefined);
});

test("restore: a wrong, empty or missing passphrase, or a damaged ciphertext, is bad_passphrase and stores nothing", async () => {
  const { backup } = await someone();
  const store = new WatchedStore();
  const current = await loadOrCreateIdentity(store);
  for (const passphrase of ["correct horse battery ", "Correct horse battery", "", undefined]) {
    await assert.rejects(importIdentity(store, backup, passphrase), codeIs("bad_passphrase"), JSON.stringify(passphrase));
  }
  const bytes = b64urlDecode(backup.ciphertext, "c");
  bytes[5] ^= 1;
  await assert.rejects(importIdentity(store, { ...backup, ciphertext: b64urlEncode(bytes) }, PASS), codeIs("bad_passphrase"));
  const otherSalt = { ...backup, kdf: { ...backup.kdf, salt: b64urlEncode(new Uint8Array(16)) } };
  await assert.rejects(importIdentity(store, otherSalt, PASS), codeIs("bad_passphrase"));
  assert.equal(store.writes, 1, "only the identity created at the start");
  const after = await loadOrCreateIdentity(store);
  assert.equal(after.peerId, current.peerId);
  assert.equal(after.created, false);
});
