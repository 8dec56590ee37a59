// Encrypted chunks, manifests and wrapped keys in the browser modules: round trips, tampering
// of any byte, wrong index/file/key/recipient, each with its stable error code.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  CHUNK_SIZE,
  decryptChunk,
  encryptChunk,
  encryptFile,
  newFileId,
  newFileKey,
  parseShareFragment,
  shareFragment,
} from "../../static/swarm/protocol/chunks.js";
import * as ed25519 from "../../static/swarm/protocol/ed25519.js";
import { b64urlDecode, b64urlEncode, peerIdForKey } from "../../static/swarm/protocol/encoding.js";
import { ProtocolError } from "../../static/swarm/protocol/errors.js";
import { generateKeyAgreementPair, makeKeyAnnouncement, unwrapFileKey, verifyKeyAnnouncement, wrapFileKey } from "../../static/swarm/protocol/keywrap.js";
import { ciphertextLength, DEFAULT_MIME, decryptFile, makeManifest, normalizeMime, openChunk, verifyManifest } from "../../static/swarm/protocol/manifest.js";

const NOW = 1_800_000_000_000;
const author = await ed25519.signerFromSeed(new Uint8Array(32).map((_, i) => i));

function randomBytes(size, seed = 1) {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

async function share(data, name = "file.bin") {
  const sealed = await encryptFile(data);
  const envelope = await makeManifest(author, sealed, { name, mime: DEFAULT_MIME, createdAt: NOW });
  return { manifest: await verifyManifest(envelope, { now: NOW }), sealed };
}

async function codeOf(work) {
  try {
    await work();
  } catch (error) {
    assert.ok(error instanceof ProtocolError, `not a ProtocolError: ${error}`);
    return error.code;
  }
  assert.fail("expected a ProtocolError");
}

test("files of every shape round trip, including a partial last chunk and an empty file", async () => {
  for (const [size, count] of [
    [0, 0],
    [1, 1],
    [CHUNK_SIZE - 1, 1],
    [CHUNK_SIZE, 1],
    [3 * CHUNK_SIZE + 17, 4],
  ]) {
    const data = randomBytes(size, size + 3);
    const { manifest, sealed } = await share(data);
    assert.equal(manifest.chunks.length, count, `size ${size}`);
    if (count) {
      const last = sealed.chunks.at(-1).ciphertext;
      assert.equal(last.length, size - (count - 1) * CHUNK_SIZE + 16);
      assert.equal(last.length, ciphertextLength(manifest, count - 1));
    }
    const plain = await decryptFile(
      manifest,
      sealed.key,
      sealed.chunks.map((c) => c.ciphertext),
    );
    assert.deepEqual(plain, data, `size ${size}`);
  }
});

test("a Blob is sealed to the same chunks as its bytes", async () => {
  const data = randomBytes(2 * CHUNK_SIZE + 9, 5);
  const key = newFileKey();
  const fileId = newFileId();
  const fromBytes = await encryptFile(data, { key, fileId });
  const fromBlob = await encryptFile(new Blob([data]), { key, fileId });
  assert.deepEqual(fromBlob.chunkIds, fromBytes.chunkIds);
  assert.equal(fromBlob.size, data.length);
});

const shared = await share(randomBytes(2 * CHUNK_SIZE + 100, 9));

test("any altered ciphertext byte: chunk_mismatch on receipt, decrypt_failed in the AEAD", async () => {
  const { manifest, sealed } = shared;
  const last = sealed.chunks[2].ciphertext; // 100 + 16 bytes: every position is tried
  for (let i = 0; i < last.length; i++) {
    const altered = last.slice();
    altered[i] ^= 0x01 << (i % 8);
    assert.equal(await codeOf(() => openChunk(manifest, sealed.key, 2, altered)), "chunk_mismatch", `byte ${i}`);
    assert.equal(await codeOf(() => decryptChunk(sealed.key, manifest.fileId, 2, altered)), "decrypt_failed");
  }
  const full = sealed.chunks[0].ciphertext;
  for (const i of [0, 1, 4095, 32768, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 15]) {
    const altered = full.slice();
    altered[i] ^= 0x80;
    assert.equal(await codeOf(() => decryptChunk(sealed.key, manifest.fileId, 0, altered)), "decrypt_failed");
  }
});

test("a chunk at another index or of another file does not open", async () => {
  const { manifest, sealed } = shared;
  const first = sealed.chunks[0].ciphertext;
  assert.equal(await codeOf(() => decryptChunk(sealed.key, manifest.fileId, 1, first)), "decrypt_failed");
  assert.equal(await codeOf(() => openChunk(manifest, sealed.key, 1, first)), "chunk_mismatch");
  assert.equal(await codeOf(() => decryptChunk(sealed.key, newFileId(), 0, first)), "decrypt_failed");
});

test("any altered key byte fails to decrypt; malformed keys and indexes have their codes", async () => {
  const { manifest, sealed } = shared;
  const chunk = sealed.chunks[1].ciphertext;
  for (let i = 0; i < 32; i++) {
    const key = sealed.key.slice();
    key[i] ^= 0x10;
    assert.equal(await codeOf(() => openChunk(manifest, key, 1, chunk)), "decrypt_failed", `key byte ${i}`);
  }
  assert.equal(await codeOf(() => openChunk(manifest, sealed.key.subarray(0, 31), 1, chunk)), "bad_key");
  assert.equal(await codeOf(() => openChunk(manifest, sealed.key, 3, chunk)), "bad_chunk");
  assert.equal(await codeOf(() => openChunk(manifest, sealed.key, -1, chunk)), "bad_chunk");
  assert.equal(await codeOf(() => decryptChunk(sealed.key, manifest.fileId, 0, chunk.subarray(0, 15))), "bad_chunk");
  const tooBig = new Uint8Array(CHUNK_SIZE + 1);
  assert.equal(await codeOf(() => encryptChunk(sealed.key, manifest.fileId, 0, tooBig)), "bad_chunk");
  assert.equal(await codeOf(() => decryptFile(manifest, sealed.key, [chunk])), "bad_chunk");
});

test("chunk data may come as any buffer or view; anything else is bad_chunk", async () => {
  const { manifest, sealed } = shared;
  const plain = await openChunk(manifest, sealed.key, 2, sealed.chunks[2].ciphertext);
  const copy = sealed.chunks[2].ciphertext.slice();
  assert.deepEqual(await openChunk(manifest, sealed.key, 2, copy.buffer), plain);
  assert.deepEqual(await openChunk(manifest, sealed.key, 2, new DataView(copy.buffer)), plain);
  assert.equal(await codeOf(() => openChunk(manifest, sealed.key, 2, "not bytes")), "bad_chunk");
  assert.equal(await codeOf(() => decryptChunk(sealed.key, manifest.fileId, 2, [1, 2, 3])), "bad_chunk");
});

const MANIFEST_CODES = new Set(["bad_envelope", "bad_signature", "bad_manifest", "peer_mismatch"]);

test("any altered byte of a manifest is refused", async () => {
  const { manifest } = shared;
  const text = new TextEncoder().encode(JSON.stringify(manifest.envelope));
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let checked = 0;
  for (let i = 0; i < text.length; i++) {
    for (const replacement of [text[i] ^ 0x01, 0x41]) {
      if (replacement === text[i]) continue;
      const altered = text.slice();
      altered[i] = replacement;
      let parsed;
      try {
        parsed = JSON.parse(decoder.decode(altered));
      } catch {
        continue; // not JSON any more: refused by the frame parser
      }
      if (JSON.stringify(parsed) === JSON.stringify(manifest.envelope)) continue;
      const code = await codeOf(() => verifyManifest(parsed));
      assert.ok(MANIFEST_CODES.has(code), `byte ${i}: ${code}`);
      checked++;
    }
  }
  assert.ok(checked > text.length, `only ${checked} alterations were still JSON`);
});

test("any altered signature byte is bad_signature", async () => {
  const { manifest } = shared;
  const sig = b64urlDecode(manifest.envelope.sig, "sig");
  for (let i = 0; i < sig.length; i++) {
    const altered = sig.slice();
    altered[i] ^= 0x04;
    const envelope = { ...manifest.envelope, sig: b64urlEncode(altered) };
    assert.equal(await codeOf(() => verifyManifest(envelope)), "bad_signature", `sig byte ${i}`);
  }
});

test("a manifest asked for by id must have that id", async () => {
  const other = await share(new Uint8Array([1, 2, 3]));
  const code = await codeOf(() => verifyManifest(shared.manifest.envelope, { expectedId: other.manifest.id }));
  assert.equal(code, "manifest_mismatch");
});

test("makeManifest refuses what would not verify; mime from a browser is normalized", async () => {
  const sealed = await encryptFile(new Uint8Array([1]));
  for (const [name, mime] of [
    ["", "text/plain"],
    ["a/b", "text/plain"],
    ["ok", "Text/Plain"],
    ["x".repeat(256), "text/plain"],
  ]) {
    assert.equal(await codeOf(() => makeManifest(author, sealed, { name, mime, createdAt: NOW })), "bad_manifest");
  }
  assert.equal(normalizeMime(""), DEFAULT_MIME);
  assert.equal(normalizeMime(undefined), DEFAULT_MIME);
  assert.equal(normalizeMime("Text/HTML; charset=UTF-8"), "text/html");
  assert.equal(normalizeMime("image/svg+xml"), "image/svg+xml");
});

test("the share fragment carries the key", () => {
  const key = newFileKey();
  const fragment = shareFragment(key);
  assert.equal(fragment.length, 45);
  assert.deepEqual(parseShareFragment(fragment), key);
  assert.deepEqual(parseShareFragment(`#${fragment}`), key);
  for (const bad of [`##${fragment}`, null, "k=", fragment.slice(0, -1)]) {
    assert.throws(
      () => parseShareFragment(bad),
      (e) => e.code === "bad_key",
      String(bad),
    );
  }
});

test("a wrapped key round trips for its recipient only", async () => {
  const bob = await ed25519.signerFromSeed(new Uint8Array(32).fill(2));
  const bobId = await peerIdForKey(bob.publicKey);
  const bobX = await generateKeyAgreementPair();
  const carolX = await generateKeyAgreementPair();
  const carolId = await peerIdForKey(new Uint8Array(32));
  const announced = await verifyKeyAnnouncement(await makeKeyAnnouncement(bob, bobX, { createdAt: NOW }), { now: NOW });
  const { sealed, manifest } = shared;
  const wrapped = await wrapFileKey(sealed.key, {
    fileId: manifest.fileId,
    recipient: announced.peerId,
    recipientKey: announced.x25519,
  });
  const key = await unwrapFileKey(wrapped, { keyPair: bobX, peerId: bobId, fileId: manifest.fileId });
  assert.deepEqual(key, sealed.key);
  assert.deepEqual(
    await decryptFile(
      manifest,
      key,
      sealed.chunks.map((c) => c.ciphertext),
    ),
    await decryptFile(
      manifest,
      sealed.key,
      sealed.chunks.map((c) => c.ciphertext),
    ),
  );
  const again = await wrapFileKey(sealed.key, { fileId: manifest.fileId, recipient: bobId, recipientKey: bobX.publicKey });
  assert.notEqual(again.epk, wrapped.epk);

  assert.equal(await codeOf(() => unwrapFileKey(wrapped, { keyPair: carolX, peerId: carolId })), "wrong_recipient");
  assert.equal(await codeOf(() => unwrapFileKey(wrapped, { keyPair: carolX, peerId: bobId })), "decrypt_failed");
  const relabelled = { ...wrapped, to: carolId };
  assert.equal(await codeOf(() => unwrapFileKey(relabelled, { keyPair: bobX, peerId: carolId })), "decrypt_failed");
  assert.equal(await codeOf(() => unwrapFileKey(wrapped, { keyPair: bobX, peerId: bobId, fileId: newFileId() })), "wrong_file");
  const ct = b64urlDecode(wrapped.ct, "ct");
  for (let i = 0; i < ct.length; i++) {
    const altered = ct.slice();
    altered[i] ^= 0x01;
    const code = await codeOf(() => unwrapFileKey({ ...wrapped, ct: b64urlEncode(altered) }, { keyPair: bobX, peerId: bobId }));
    assert.equal(code, "decrypt_failed", `ct byte ${i}`);
  }
});
