// What a connected peer can make the page's file service hold: its adverts (`have`) and its
// chunk requests name manifest ids of its choosing, so what is kept per id must be bounded.
// FileService runs here on a fake peer (frames in, frames out) and a fake store.
import assert from "node:assert/strict";
import { test } from "node:test";

import { FileService } from "../../static/swarm/content/files.js";
import { MAX_ADVERTS_PER_PEER } from "../../static/swarm/content/holders.js";
import { MAX_HAVE_MANIFESTS } from "../../static/swarm/protocol/wire.js";

const PEER_A = `p${"a".repeat(32)}`;
const PEER_B = `p${"b".repeat(32)}`;
const CHUNK = `${"C".repeat(42)}A`;

// A distinct valid manifest id per n (43 characters of base64url, the last one canonical).
const manifestId = (n) => `${n.toString(36).padStart(42, "x")}A`;

class FakePeer extends EventTarget {
  constructor() {
    super();
    this.sent = [];
  }

  log() {}
  send(peerId, frame) {
    this.sent.push({ peerId, frame });
    return true;
  }
  sendEncoded() {
    return true;
  }
  connectedPeers() {
    return [{ peerId: PEER_A }, { peerId: PEER_B }];
  }
  channel() {
    return { readyState: "open", bufferedAmount: 0, addEventListener() {}, removeEventListener() {} };
  }
  contentViolation() {}
  frame(peerId, frame) {
    this.dispatchEvent(new CustomEvent("frame", { detail: { peerId, frame } }));
  }
  closed(peerId) {
    this.dispatchEvent(new CustomEvent("peer-close", { detail: { peerId } }));
  }
}

const fakeStore = {
  listFiles: async () => [],
  getChunkParts: async (ids) => ids.map((id) => (id === CHUNK ? [new Uint8Array(100)] : undefined)),
};

async function service() {
  const peer = new FakePeer();
  const files = await new FileService({ peer, store: fakeStore, origin: "http://127.0.0.1" }).start();
  return { peer, files };
}

function advertise(peer, peerId, first, count, chunks = 1) {
  for (let start = first; start < first + count; start += MAX_HAVE_MANIFESTS) {
    const manifests = [];
    for (let n = start; n < Math.min(start + MAX_HAVE_MANIFESTS, first + count); n++) manifests.push({ id: manifestId(n), chunks });
    peer.frame(peerId, { t: "have", manifests });
  }
}

test("one peer's adverts are kept for at most MAX_ADVERTS_PER_PEER manifests", async () => {
  const { peer, files } = await service();
  advertise(peer, PEER_A, 0, MAX_ADVERTS_PER_PEER + 5 * MAX_HAVE_MANIFESTS);
  assert.equal(files.holders.size, MAX_ADVERTS_PER_PEER);
  // Another peer is not crowded out, and a withdrawal makes room again.
  advertise(peer, PEER_B, 0, 10);
  assert.equal(files.holders.get(manifestId(3)).size, 2);
  advertise(peer, PEER_A, 0, 1, 0);
  advertise(peer, PEER_A, 1_000_000, 2);
  assert.ok(files.holders.get(manifestId(1_000_000))?.has(PEER_A));
  assert.equal(files.holders.get(manifestId(1_000_001)), undefined);
  // Gone: every advert of the peer is forgotten, and its count with it.
  peer.closed(PEER_A);
  assert.equal(files.holders.size, 10);
  advertise(peer, PEER_A, 2_000_000, 3);
  assert.equal(files.holders.size, 13);
});

test("chunk requests naming manifests we do not hold add no upload records", async () => {
  const { peer, files } = await service();
  for (let n = 0; n < 300; n++) peer.frame(PEER_A, { t: "chunk_req", manifest: manifestId(n), index: 0, chunk: CHUNK });
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(files.uploader.stats.chunks, 300, "the chunk is held: it is served whatever manifest is named");
  assert.equal(files.uploads.byFile.size, 0);
  assert.equal(files.uploadOf(manifestId(0)), null);
});
