// Two file services (the page's files.js + downloads.js + uploader.js) wired frame to frame in
// memory, each on its own memory store: what a download does when its storage loses chunks
// it was given (a write lost with a reload, found by bench/soak.py as "chunk N is not
// stored"). A lost chunk is fetched again; the download completes with the right bytes.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";

import { ContentStore } from "../../static/swarm/adapters/contentstore.js";
import * as ed25519 from "../../static/swarm/protocol/ed25519.js";
import { peerIdForKey } from "../../static/swarm/protocol/encoding.js";
import { FileService } from "../../static/swarm/content/files.js";
import { decodeFrame, encodeFrame } from "../../static/swarm/protocol/wire.js";

class MemoryPeer extends EventTarget {
  constructor(peerId, signer) {
    super();
    this.peerId = peerId;
    this.identity = { signer };
    this.other = null;
    this.requests = []; // chunk_req frames this peer received
    this.logs = [];
  }

  log(level, source, code, message) {
    this.logs.push({ level, source, code, message });
  }
  connectedPeers() {
    return this.other ? [{ peerId: this.other.peerId }] : [];
  }
  channel() {
    return { readyState: "open", bufferedAmount: 0, addEventListener() {}, removeEventListener() {} };
  }
  contentViolation() {}
  send(peerId, frame) {
    return this.sendEncoded(peerId, encodeFrame(frame));
  }
  sendEncoded(peerId, bytes) {
    const target = this.other;
    if (!target || target.peerId !== peerId) return false;
    const frame = decodeFrame(bytes.slice());
    setImmediate(() => {
      if (frame.t === "chunk_req") target.requests.push(frame.index);
      target.dispatchEvent(new CustomEvent("frame", { detail: { peerId: this.peerId, frame } }));
    });
    return true;
  }
}

async function peer(label) {
  const signer = await ed25519.signerFromSeed(createHash("sha256").update(label).digest());
  return new MemoryPeer(await peerIdForKey(signer.publicKey), signer);
}

function connect(a, b) {
  a.other = b;
  b.other = a;
  for (const [p, q] of [[a, b], [b, a]]) p.dispatchEvent(new CustomEvent("peer-open", { detail: { peerId: q.peerId, caps: [] } }));
}

const waitFor = (files, id) =>
  new Promise((resolve, reject) => {
    files.addEventListener("complete", (e) => e.detail.id === id && resolve(e.detail));
    files.addEventListener("failed", (e) => e.detail.id === id && reject(new Error(`${e.detail.code}: ${e.detail.message}`)));
  });

test("chunks the store lost before the end are fetched again, and the download completes", async () => {
  const [alice, bob] = [await peer("alice"), await peer("bob")];
  const aliceFiles = await new FileService({ peer: alice, store: new ContentStore(), origin: "http://x" }).start();
  const bobStore = new ContentStore();
  // Bob's storage silently drops the first write of chunks 3 and 7 (a transaction lost in a
  // reload looks like this to the next page: counted, never stored).
  const lose = new Set();
  const put = bobStore.putChunks.bind(bobStore);
  bobStore.putChunks = (chunks) => put(chunks.filter(({ id }) => !lose.delete(id)));
  const bobFiles = await new FileService({ peer: bob, store: bobStore, origin: "http://x" }).start();
  const bytes = Uint8Array.from({ length: 10 * 65536 + 123 }, (_, i) => (i * 7) % 251);
  const record = await aliceFiles.share(new File([bytes], "notes.bin"));
  lose.add(record.envelope.body.chunks[3]);
  lose.add(record.envelope.body.chunks[7]);
  connect(alice, bob);
  const done = waitFor(bobFiles, record.id);
  await bobFiles.download(record.id, record.key);
  const { sha256 } = await done;
  assert.equal(sha256, createHash("sha256").update(bytes).digest("hex"));
  assert.equal(lose.size, 0, "both losses happened");
  assert.equal(alice.requests.filter((i) => i === 3).length, 2, "chunk 3 was asked for again");
  assert.equal(alice.requests.filter((i) => i === 7).length, 2, "chunk 7 was asked for again");
  const lost = bob.logs.filter((e) => e.code === "chunk_lost");
  assert.equal(lost.length, 1);
  assert.match(lost[0].message, /2 chunk\(s\) missing from storage at the end, fetching them again: 3 \(received by this page\), 7/);
  // The complete file opens from storage with every chunk in place.
  const reread = await bobStore.getChunks(record.envelope.body.chunks);
  assert.ok(reread.every((c) => c !== undefined));
});

test("a store that keeps losing what it is given fails the download with store_failed", async () => {
  const [alice, bob] = [await peer("alice2"), await peer("bob2")];
  const aliceFiles = await new FileService({ peer: alice, store: new ContentStore(), origin: "http://x" }).start();
  const bobStore = new ContentStore();
  let target = null;
  const put = bobStore.putChunks.bind(bobStore);
  bobStore.putChunks = (chunks) => put(chunks.filter(({ id }) => id !== target));
  const bobFiles = await new FileService({ peer: bob, store: bobStore, origin: "http://x" }).start();
  const record = await aliceFiles.share(new File([new Uint8Array(3 * 65536)], "zeros.bin"));
  target = record.envelope.body.chunks[1];
  connect(alice, bob);
  const done = waitFor(bobFiles, record.id);
  await bobFiles.download(record.id, record.key);
  await assert.rejects(done, /store_failed: browser storage lost 1 chunk\(s\) again after 3 re-fetches/);
  assert.equal(alice.requests.filter((i) => i === 1).length, 4, "asked once, then re-fetched three times");
});
