// The identity without WebCrypto Ed25519: this file hides Ed25519 from crypto.subtle before
// loading ed25519.js and identity.js, so the capability probe fails and the @noble/ed25519
// fallback is used. Signatures are checked against the real WebCrypto, kept aside, both ways.
// (node runs each test file in its own process: other files see the real crypto.subtle.)
import assert from "node:assert/strict";
import { test } from "node:test";

const subtle = crypto.subtle;
const real = Object.fromEntries(["generateKey", "importKey", "exportKey", "sign", "verify"].map((name) => [name, subtle[name].bind(subtle)]));
const isEd25519 = (algorithm) => (typeof algorithm === "string" ? algorithm : algorithm?.name)?.toLowerCase() === "ed25519";
const calls = [];
const hide = (name, position) => {
  subtle[name] = (...args) => {
    const algorithm = args[position];
    if (isEd25519(algorithm) || (algorithm instanceof CryptoKey && isEd25519(algorithm.algorithm))) {
      calls.push(name);
      return Promise.reject(new DOMException("Unrecognized algorithm name", "NotSupportedError"));
    }
    return real[name](...args);
  };
};
hide("generateKey", 0);
hide("importKey", 2);
hide("sign", 0);
hide("verify", 0);

const ed25519 = await import("../../static/swarm/protocol/ed25519.js");
const { exportIdentity, importIdentity, loadOrCreateIdentity } = await import("../../static/swarm/adapters/identity.js");
const { b64urlEncode, peerIdForKey } = await import("../../static/swarm/protocol/encoding.js");

// Stands in for IndexedDB: records are structured-cloned in and out, as IdbStore's are.
class CloningStore {
  async getIdentity() {
    return this.saved === undefined ? undefined : structuredClone(this.saved);
  }

  async putIdentity(record) {
    this.saved = structuredClone(record);
  }
}

const PKCS8_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);

async function webcryptoKeysOf(seed) {
  const pkcs8 = new Uint8Array([...PKCS8_PREFIX, ...seed]);
  const privateKey = await real.importKey("pkcs8", pkcs8, { name: "Ed25519" }, true, ["sign"]);
  const jwk = await real.exportKey("jwk", privateKey);
  return { privateKey, x: jwk.x };
}

test("fallback: the probe fails and no Ed25519 call reaches WebCrypto afterwards", async () => {
  assert.equal(await ed25519.hasWebCryptoEd25519(), false);
  assert.deepEqual(calls, ["generateKey"], "only the probe tried WebCrypto");
  const signer = await ed25519.generateSigner();
  assert.equal(signer.privateKey, undefined);
  assert.equal(signer.seed.length, 32);
  assert.equal(signer.publicKey.length, 32);
});

test("fallback: an identity is created, stored, loaded, and signs what WebCrypto verifies (and back)", async () => {
  const store = new CloningStore();
  const first = await loadOrCreateIdentity(store, 1000);
  assert.equal(first.created, true);
  assert.equal(first.record.kind, "noble");
  assert.equal(first.extractable, true);
  assert.equal(first.record.seed.length, 32);
  assert.equal(first.record.createdAt, 1000);
  assert.match(first.peerId, /^p[a-z2-7]{32}$/);
  assert.equal(first.peerId, await peerIdForKey(first.record.publicKey));

  const again = await loadOrCreateIdentity(store, 2000);
  assert.equal(again.created, false);
  assert.equal(again.peerId, first.peerId);
  assert.equal(again.record.createdAt, 1000);
  assert.deepEqual(again.record.seed, first.record.seed);

  // WebCrypto derives the same public key from the stored seed.
  const web = await webcryptoKeysOf(again.record.seed);
  assert.equal(web.x, b64urlEncode(again.signer.publicKey));

  const message = new TextEncoder().encode("signed without WebCrypto Ed25519");
  const signature = await ed25519.sign(again.signer, message);
  assert.equal(signature.length, 64);
  const publicKey = await real.importKey("raw", again.signer.publicKey, { name: "Ed25519" }, false, ["verify"]);
  assert.equal(await real.verify({ name: "Ed25519" }, publicKey, signature, message), true);
  const other = message.slice();
  other[0] ^= 1;
  assert.equal(await real.verify({ name: "Ed25519" }, publicKey, signature, other), false);

  // And the fallback verifies what WebCrypto signs with the same key.
  const webSignature = new Uint8Array(await real.sign({ name: "Ed25519" }, web.privateKey, message));
  assert.deepEqual(webSignature, signature, "Ed25519 is deterministic: the same signature");
  assert.equal(await ed25519.verify(again.signer.publicKey, webSignature, message), true);
  assert.equal(await ed25519.verify(again.signer.publicKey, webSignature, other), false);
  const bad = webSignature.slice();
  bad[10] ^= 1;
  assert.equal(await ed25519.verify(again.signer.publicKey, bad, message), false);
  assert.equal(calls.length, 1, "still only the probe");
});

test("fallback: a backup of a noble identity restores the same peer id", async () => {
  const home = new CloningStore();
  const me = await loadOrCreateIdentity(home);
  const backup = await exportIdentity(me.record, "correct horse battery", { iterations: 1000 });
  assert.equal(backup.peer_id, me.peerId);
  const away = new CloningStore();
  const restored = await importIdentity(away, backup, "correct horse battery");
  assert.equal(restored.record.kind, "noble");
  assert.equal(restored.peerId, me.peerId);
  assert.equal((await loadOrCreateIdentity(away)).peerId, me.peerId);
  const message = Uint8Array.of(9, 9, 9);
  assert.equal(await ed25519.verify(me.signer.publicKey, await ed25519.sign(restored.signer, message), message), true);
});
