// Write tests/vectors/content_js.json: content made by the browser modules (in Node), which
// pytest verifies and remakes byte for byte in Python. Deterministic (fixed seeds and keys).
// Usage: node scripts/content_vectors.mjs [--check]
import { readFileSync, writeFileSync } from "node:fs";

import { encryptFile } from "../static/swarm/protocol/chunks.js";
import * as ed25519 from "../static/swarm/protocol/ed25519.js";
import { b64urlEncode, hex, peerIdForKey, sha256, utf8 } from "../static/swarm/protocol/encoding.js";
import { keyAgreementPairFromSeed, makeKeyAnnouncement, wrapFileKey } from "../static/swarm/protocol/keywrap.js";
import { DOMAIN_MANIFEST } from "../static/swarm/protocol/envelope.js";
import { makeManifest, objectId } from "../static/swarm/protocol/manifest.js";
import { AuthorLog, nextPost, reconcile } from "../static/swarm/protocol/postlog.js";
import { verifyPost } from "../static/swarm/protocol/posts.js";

const OUT = new URL("../tests/vectors/content_js.json", import.meta.url);
const NOW = 1_800_000_000_000;
const CREATED_AT = NOW - 60_000;
const SIZE = 70_000; // one full chunk and a partial one

const seed = (label) => sha256(utf8.encode(label));
const pattern = (size) => Uint8Array.from({ length: size }, (_, i) => i % 251);

async function build() {
  const bob = await ed25519.signerFromSeed(await seed("bob"));
  const alice = await ed25519.signerFromSeed(await seed("alice"));
  const aliceId = await peerIdForKey(alice.publicKey);
  const fileKey = await seed("js file key");
  const fileId = b64urlEncode((await seed("js file id")).subarray(0, 16));
  const sealed = await encryptFile(pattern(SIZE), { key: fileKey, fileId });
  const manifest = await makeManifest(bob, sealed, {
    name: "from-node ✓.bin",
    mime: "application/octet-stream",
    createdAt: CREATED_AT,
  });
  const manifestId = await objectId(DOMAIN_MANIFEST, manifest.body);

  const aliceX = await keyAgreementPairFromSeed(await seed("alice/x25519"));
  const ephemeralSeed = await seed("js ephemeral");
  const wrapped = await wrapFileKey(fileKey, {
    fileId,
    recipient: aliceId,
    recipientKey: aliceX.publicKey,
    ephemeral: await keyAgreementPairFromSeed(ephemeralSeed),
  });
  const bobX = await keyAgreementPairFromSeed(await seed("bob/x25519"));
  const announcement = await makeKeyAnnouncement(bob, bobX, { createdAt: CREATED_AT });

  const log = new AuthorLog(await peerIdForKey(bob.publicKey));
  const add = async (fields) => log.append(await verifyPost(await nextPost(log, bob, fields)));
  await add({ now: CREATED_AT, text: "posted from node", name: "Bob" });
  await add({ now: CREATED_AT + 5, attachments: [manifestId], name: "Bob" });
  // A clock that went back: nextPost keeps created_at at the previous entry's.
  await add({ now: CREATED_AT - 99, kind: "edit", text: "edited in node", target: log.entryAt(0).hash, name: "Bob" });
  const theirs = new Map([[log.author, { seq: 0, hash: log.entryAt(0).hash }]]);
  const sync = reconcile(new Map([[log.author, log]]), theirs);

  return {
    description:
      "Made by static/swarm/*.js in Node (scripts/content_vectors.mjs). Python verifies each object " +
      "and remakes it byte for byte from the same inputs: file = pattern(size) (byte i is i % 251), " +
      "key and file id from SHA-256 of labels, X25519 keys from SHA-256(label + '/x25519').",
    now: NOW,
    file: {
      size: SIZE,
      key_hex: hex(fileKey),
      file_id: fileId,
      chunk_ids: sealed.chunks.map((c) => c.id),
      name: manifest.body.name,
      mime: manifest.body.mime,
      created_at: CREATED_AT,
    },
    manifest,
    manifest_id: manifestId,
    wrapped: {
      recipient: "alice",
      recipient_x25519_seed_hex: hex(await seed("alice/x25519")),
      ephemeral_seed_hex: hex(ephemeralSeed),
      object: wrapped,
    },
    announcement,
    log: {
      author: log.author,
      entries: log.entries.map((e) => e.envelope),
      hashes: log.entries.map((e) => e.hash),
      posts: log.posts().map((p) => ({ id: p.id, text: p.text, edited_at: p.editedAt, attachments: p.attachments })),
      reconcile_from_seq_0: sync.send.map((e) => e.body.seq),
    },
  };
}

const text = `${JSON.stringify(await build(), null, 2)}\n`;
if (process.argv.includes("--check")) {
  let current = null;
  try {
    current = readFileSync(OUT, "utf8");
  } catch {
    // missing file: stale
  }
  if (current !== text) {
    console.log("stale vectors (run node scripts/content_vectors.mjs): content_js.json");
    process.exit(1);
  }
} else {
  writeFileSync(OUT, text);
}
