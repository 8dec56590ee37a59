// The content vectors (chunks, manifests, wrapped keys, posts) hold for the browser modules;
// objects made in JS for the same inputs are byte-identical to the Python-made vectors.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import {
  chunkAad,
  chunkNonce,
  decryptChunk,
  digestId,
  encryptChunk,
  encryptFile,
  parseShareFragment,
  parseShareHints,
  shareFragment,
} from "../../static/swarm/protocol/chunks.js";
import * as ed25519 from "../../static/swarm/protocol/ed25519.js";
import { fromHex, hex } from "../../static/swarm/protocol/encoding.js";
import { ProtocolError } from "../../static/swarm/protocol/errors.js";
import {
  checkX25519Public,
  keyAgreementPairFromSeed,
  makeKeyAnnouncement,
  unwrapFileKey,
  verifyKeyAnnouncement,
  wrapFileKey,
} from "../../static/swarm/protocol/keywrap.js";
import { decryptFile, makeManifest, verifyManifest } from "../../static/swarm/protocol/manifest.js";
import { ForkError, parseSummary, reconcile, verifyLog } from "../../static/swarm/protocol/postlog.js";
import { verifyPost } from "../../static/swarm/protocol/posts.js";

const load = (name) => JSON.parse(readFileSync(new URL(`../vectors/${name}`, import.meta.url), "utf8"));
const pattern = (size) => Uint8Array.from({ length: size }, (_, i) => i % 251);
const seedOf = (label) => fromHex(load("keys.json").keys.find((k) => k.label === label).seed_hex);
const rejectsWith = (promise, code, message) => assert.rejects(promise, (e) => e instanceof ProtocolError && e.code === code, message);

const chunks = load("chunks.json");
const manifests = load("manifests.json");
const keywrap = load("keywrap.json");
const posts = load("posts.json");
const KEY = fromHex(chunks.key_hex);

test("chunk vectors: nonce, aad, ciphertext and id match Python", async () => {
  for (const c of chunks.cases) {
    const plain = fromHex(c.plaintext_hex);
    assert.equal(hex(chunkNonce(c.index)), c.nonce_hex, c.name);
    assert.equal(hex(chunkAad(chunks.file_id, c.index)), c.aad_hex, c.name);
    const sealed = await encryptChunk(KEY, chunks.file_id, c.index, plain);
    assert.equal(hex(sealed), c.ciphertext_hex, c.name);
    assert.equal(await digestId(sealed), c.id, c.name);
    assert.deepEqual(await decryptChunk(KEY, chunks.file_id, c.index, sealed), plain, c.name);
  }
});

test("file vectors: the same chunk ids for pattern files of every shape", async () => {
  for (const f of chunks.files) {
    const sealed = await encryptFile(pattern(f.size), { key: KEY, fileId: chunks.file_id });
    assert.deepEqual(sealed.chunkIds, f.chunk_ids, f.name);
  }
});

test("bad chunk vectors fail with their code", async () => {
  for (const c of chunks.bad) {
    const key = fromHex(c.key_hex ?? chunks.key_hex);
    const work = (async () => decryptChunk(key, c.file_id ?? chunks.file_id, c.index, fromHex(c.ciphertext_hex)))();
    await rejectsWith(work, c.error, c.name);
  }
});

test("share fragment vectors", () => {
  assert.equal(shareFragment(KEY), chunks.share.fragment);
  assert.deepEqual(parseShareFragment(`#${chunks.share.fragment}`), KEY);
  for (const c of chunks.bad_fragments) {
    assert.throws(
      () => parseShareFragment(c.fragment),
      (e) => e.code === c.error,
      c.fragment,
    );
  }
});

test("share hint vectors: holder peer ids after &h=, the key unchanged", () => {
  for (const c of chunks.share_hints) {
    assert.deepEqual(parseShareHints(`#${c.fragment}`), c.hints, c.name);
    assert.deepEqual(parseShareFragment(c.fragment), KEY, c.name);
    if (c.name === "two hints") assert.equal(shareFragment(KEY, c.hints), c.fragment);
  }
});

test("valid manifest vectors verify, have their id and decrypt", async () => {
  for (const c of manifests.valid) {
    const m = await verifyManifest(c.manifest, { now: manifests.now, expectedId: c.id });
    assert.equal(m.id, c.id);
    const sealed = await encryptFile(pattern(m.size), { key: KEY, fileId: m.fileId });
    assert.deepEqual(m.chunks, sealed.chunkIds);
    const plain = await decryptFile(
      m,
      KEY,
      sealed.chunks.map((x) => x.ciphertext),
    );
    assert.deepEqual(plain, pattern(m.size), c.name);
  }
});

test("a manifest signed in JS is byte-identical to the Python vector", async () => {
  const alice = await ed25519.signerFromSeed(seedOf("alice"));
  for (const c of manifests.valid) {
    const body = c.manifest.body;
    const sealed = await encryptFile(pattern(body.size), { key: KEY, fileId: body.file_id });
    const made = await makeManifest(alice, sealed, { name: body.name, mime: body.mime, createdAt: body.created_at });
    assert.deepEqual(made, c.manifest, c.name);
  }
});

test("invalid manifest vectors fail with their code", async () => {
  for (const c of manifests.invalid) {
    const options = { now: manifests.now, expectedId: c.expected_id ?? null };
    await rejectsWith(verifyManifest(c.manifest, options), c.error, `${c.name} should fail with ${c.error}`);
  }
});

const recipient = await keyAgreementPairFromSeed(fromHex(keywrap.recipient.x25519_seed_hex));

test("wrapped key vector: JS makes the same object and unwraps it", async () => {
  assert.equal(hex(recipient.publicKey), hex(fromHex(hexOfB64(keywrap.recipient.x25519))));
  const made = await wrapFileKey(fromHex(keywrap.file_key_hex), {
    fileId: keywrap.file_id,
    recipient: keywrap.recipient.peer_id,
    recipientKey: recipient.publicKey,
    ephemeral: await keyAgreementPairFromSeed(fromHex(keywrap.ephemeral_seed_hex)),
  });
  assert.deepEqual(made, keywrap.wrapped);
  const key = await unwrapFileKey(keywrap.wrapped, {
    keyPair: recipient,
    peerId: keywrap.recipient.peer_id,
    fileId: keywrap.file_id,
  });
  assert.equal(hex(key), keywrap.file_key_hex);
});

test("invalid wrapped key vectors fail with their code", async () => {
  for (const c of keywrap.invalid) {
    const work = unwrapFileKey(c.wrapped, {
      keyPair: recipient,
      peerId: c.peer_id ?? keywrap.recipient.peer_id,
      fileId: c.file_id ?? null,
    });
    await rejectsWith(work, c.error, `${c.name} should fail with ${c.error}`);
  }
});

test("key announcement vectors", async () => {
  const announced = await verifyKeyAnnouncement(keywrap.announcement, { now: keywrap.now });
  assert.deepEqual(announced.x25519, recipient.publicKey);
  const bob = await ed25519.signerFromSeed(seedOf("bob"));
  const made = await makeKeyAnnouncement(bob, recipient, { createdAt: keywrap.announcement.body.created_at });
  assert.deepEqual(made, keywrap.announcement);
  for (const c of keywrap.bad_announcements) {
    await rejectsWith(verifyKeyAnnouncement(c.announcement, { now: keywrap.now }), c.error, c.name);
  }
  for (const raw of keywrap.small_order_keys_hex) {
    await rejectsWith(checkX25519Public(fromHex(raw)), "bad_key", raw);
  }
});

test("invalid and valid single post vectors", async () => {
  for (const c of posts.invalid) {
    await rejectsWith(verifyPost(c.entry, { now: posts.now }), c.error, `${c.name} should fail with ${c.error}`);
  }
  for (const c of posts.valid_single) {
    assert.equal((await verifyPost(c.entry, { now: posts.now })).hash, c.hash, c.name);
  }
});

test("log vectors: valid logs, forks, broken chains and gaps", async () => {
  for (const c of posts.logs) {
    if (c.error === null) {
      const log = await verifyLog(c.entries, { now: posts.now });
      if (c.head) {
        assert.deepEqual(log.head, c.head);
        const shown = log.posts().map((v) => ({
          id: v.id,
          seq: v.seq,
          created_at: v.createdAt,
          edited_at: v.editedAt,
          text: v.text,
          attachments: v.attachments,
          name: v.name,
        }));
        assert.deepEqual(shown, c.posts);
      }
      continue;
    }
    await assert.rejects(verifyLog(c.entries, { now: posts.now }), (e) => {
      assert.equal(e.code, c.error, c.name);
      if (c.fork) {
        assert.ok(e instanceof ForkError);
        assert.deepEqual({ seq: e.fork.seq, hashes: e.fork.hashes }, c.fork);
        assert.equal(e.fork.evidence.length, 2);
      }
      return true;
    });
  }
});

test("reconcile vectors", async () => {
  const byName = Object.fromEntries(posts.logs.map((c) => [c.name, c]));
  const mine = new Map([
    [posts.authors.alice, await verifyLog(byName.alice_full.entries)],
    [posts.authors.bob, await verifyLog(byName.bob_full.entries)],
  ]);
  for (const c of posts.reconcile) {
    const result = reconcile(mine, parseSummary(c.theirs), { limit: c.limit });
    const sent = await Promise.all(result.send.map(async (e) => (await verifyPost(e)).hash));
    assert.deepEqual(sent, c.send, c.name);
    assert.deepEqual(
      result.forks.map(({ author, seq, hashes }) => ({ author, seq, hashes })),
      c.forks,
      c.name,
    );
    assert.deepEqual(result.want, c.want, c.name);
    assert.equal(result.complete, c.complete, c.name);
  }
  for (const c of posts.bad_summaries) {
    assert.throws(
      () => parseSummary(c.summary),
      (e) => e.code === "bad_sync",
      c.name,
    );
  }
});

test("content_js.json is what scripts/content_vectors.mjs writes", () => {
  const script = fileURLToPath(new URL("../../scripts/content_vectors.mjs", import.meta.url));
  execFileSync(process.execPath, [script, "--check"], { stdio: "pipe" });
});

function hexOfB64(text) {
  return Buffer.from(text, "base64url").toString("hex");
}
