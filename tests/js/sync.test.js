// Post sync (static/swarm/content/sync.js): peers exchange what the other lacks on connect, in
// several rounds when it does not fit one frame; forged entries are rejected and counted
// against their sender; gossip gaps trigger a sync; forks are reported. Frames go through
// the real wire codec.
import assert from "node:assert/strict";
import { test } from "node:test";

import * as ed25519 from "../../static/swarm/protocol/ed25519.js";
import { peerIdForKey } from "../../static/swarm/protocol/encoding.js";
import { AuthorLog, nextPost } from "../../static/swarm/protocol/postlog.js";
import { verifyPost } from "../../static/swarm/protocol/posts.js";
import { ANSWER_BURST, PostSync, SYNC_CAP } from "../../static/swarm/content/sync.js";
import { decodeFrame, encodeFrame, MAX_FRAME_BYTES } from "../../static/swarm/protocol/wire.js";

const NOW = 1_800_000_000_000;

async function makePeer(seed) {
  const signer = await ed25519.signerFromSeed(new Uint8Array(32).fill(seed));
  const id = await peerIdForKey(signer.publicKey);
  return { id, signer, sync: new PostSync({ selfId: id }), frames: [], rejected: [], stored: [] };
}

async function write(peer, count, { text = (i) => `post ${i}`, start = 0 } = {}) {
  for (let i = 0; i < count; i++) await peer.sync.publish(peer.signer, { text: text(start + i), name: `n${peer.id.slice(1, 4)}` }, NOW + start + i);
  peer.sync.takeActions();
}

// Deliver every frame until nobody has anything left to say; records what crossed the wire.
async function settle(peers, now = NOW + 60_000) {
  const byId = new Map(peers.map((p) => [p.id, p]));
  for (let round = 0; round < 1000; round++) {
    let moved = false;
    for (const peer of peers) {
      for (const action of peer.sync.takeActions()) {
        if (action.type === "stored") peer.stored.push(action.entry);
        if (action.type === "rejected") peer.rejected.push(action);
        if (action.type !== "send") continue;
        const bytes = encodeFrame(action.frame);
        assert.ok(bytes.length <= MAX_FRAME_BYTES);
        peer.frames.push({ to: action.peerId, t: action.frame.t, bytes: bytes.length, frame: action.frame });
        const target = byId.get(action.peerId);
        if (target) await target.sync.receiveFrame(peer.id, decodeFrame(bytes), now);
        moved = true;
      }
    }
    if (!moved) return;
  }
  throw new Error("sync did not settle");
}

function connect(a, b, now = NOW + 60_000) {
  a.sync.peerOpened(b.id, [SYNC_CAP], now);
  b.sync.peerOpened(a.id, [SYNC_CAP], now);
}

const heads = (peer) => JSON.stringify(peer.sync.summaryFrames());

test("on connect each peer gets the entries it lacks, in both directions", async () => {
  const [a, b, c] = await Promise.all([1, 2, 3].map(makePeer));
  await write(a, 3);
  await write(b, 2);
  await write(c, 4);
  connect(b, c);
  await settle([b, c]);
  assert.equal(heads(b), heads(c));
  connect(a, b);
  await settle([a, b]);
  assert.equal(heads(a), heads(b), "a got c's posts from b too");
  assert.equal(a.sync.posts().length, 9);
  assert.deepEqual(
    a.sync
      .posts()
      .map((p) => p.text)
      .slice(0, 3),
    ["post 3", "post 2", "post 2"],
    "newest first",
  );
  // Connected again with nothing new: summaries only, no entries.
  const [na, nb] = [a.frames.length, b.frames.length];
  connect(a, b);
  await settle([a, b]);
  const after = [...a.frames.slice(na), ...b.frames.slice(nb)];
  assert.deepEqual(
    after.map((f) => f.t),
    ["sync_summary", "sync_summary"],
  );
});

test("a backlog larger than one answer arrives over several rounds, each frame under the limit", async () => {
  const [a, b] = await Promise.all([4, 5].map(makePeer));
  await write(a, 300, { text: (i) => `${i} ${"x".repeat(4000)}` }); // ~4 KB each: > 256 KiB in all
  connect(a, b);
  await settle([a, b]);
  assert.equal(heads(a), heads(b));
  const answers = a.frames.filter((f) => f.t === "sync_entries");
  assert.ok(answers.length >= 5, `${answers.length} answers`);
  assert.ok(answers.slice(0, -1).every((f) => f.frame.complete === false));
  assert.equal(answers.at(-1).frame.complete, true);
  assert.equal(
    answers.reduce((n, f) => n + f.frame.entries.length, 0),
    300,
    "nothing sent twice",
  );
  assert.equal(b.stored.length, 300);
});

test("edits and deletes travel as entries and change what the feed shows", async () => {
  const [a, b] = await Promise.all([6, 7].map(makePeer));
  const post = await a.sync.publish(a.signer, { text: "first draft", name: "Ann" }, NOW);
  const other = await a.sync.publish(a.signer, { text: "to be deleted", name: "Ann" }, NOW + 1);
  await a.sync.publish(a.signer, { kind: "edit", target: post.hash, text: "final", name: "Ann" }, NOW + 2);
  await a.sync.publish(a.signer, { kind: "delete", target: other.hash }, NOW + 3);
  a.sync.takeActions();
  connect(a, b);
  await settle([a, b]);
  const [shown, ...none] = b.sync.posts();
  assert.equal(none.length, 0);
  assert.deepEqual([shown.id, shown.text, shown.editedAt, shown.name], [post.hash, "final", NOW + 2, "Ann"]);
});

test("forged entries are never stored and count against the peer that sent them", async () => {
  const [a, b, mallory] = await Promise.all([8, 9, 10].map(makePeer));
  await write(a, 1);
  const real = a.sync.logs.get(a.id).entryAt(0).envelope;
  const alteredText = { ...real, body: { ...real.body, text: "altered after signing" } };
  // Mallory signs an entry that claims to be a's.
  const log = new AuthorLog(mallory.id);
  const own = await nextPost(log, mallory.signer, { now: NOW, text: "hi" });
  const claimsA = { ...own, body: { ...own.body, author: a.id } };
  b.sync.peerOpened(mallory.id, [SYNC_CAP], NOW);
  b.sync.takeActions();
  await b.sync.receiveFrame(mallory.id, decodeFrame(encodeFrame({ t: "sync_entries", entries: [alteredText, claimsA, own], complete: true })), NOW + 10);
  const actions = b.sync.takeActions();
  assert.deepEqual(
    actions.filter((x) => x.type === "rejected").map((x) => [x.code, x.violation, x.peerId]),
    [
      ["bad_signature", true, mallory.id],
      ["bad_signature", true, mallory.id],
    ],
  );
  assert.deepEqual(
    actions.filter((x) => x.type === "stored").map((x) => x.entry.author),
    [mallory.id],
    "the valid one is kept",
  );
  assert.equal(b.sync.logs.has(a.id), false);
  assert.equal(await b.sync.receiveGossip(mallory.id, alteredText, NOW + 11), "bad_signature");
  assert.equal(b.sync.posts().length, 1);
});

test("a gossiped entry beyond what we hold asks the forwarder for the rest", async () => {
  const [a, b, c] = await Promise.all([11, 12, 13].map(makePeer));
  connect(b, c);
  await settle([b, c]);
  await write(a, 3);
  connect(a, b);
  await settle([a, b]); // b holds a's three entries, c none
  const latest = await a.sync.publish(a.signer, { text: "live" }, NOW + 100);
  a.sync.takeActions();
  const later = NOW + 61_000;
  assert.equal(await b.sync.receiveGossip(a.id, latest.envelope, later), "stored");
  const result = await c.sync.receiveGossip(b.id, latest.envelope, later + 1);
  assert.equal(result, "gap");
  const asked = c.sync.takeActions();
  assert.deepEqual(
    asked.map((x) => [x.type, x.peerId, x.frame?.t]),
    [["send", b.id, "sync_summary"]],
  );
  await b.sync.receiveFrame(c.id, decodeFrame(encodeFrame(asked[0].frame)), later + 2);
  await settle([b, c]);
  assert.equal(c.sync.logs.get(a.id).length, 4);
  assert.equal(heads(b), heads(c));
});

test("a fork is reported with the other side's entry as evidence", async () => {
  const [a, b, c] = await Promise.all([14, 15, 16].map(makePeer));
  await write(a, 1);
  const first = a.sync.logs.get(a.id).entryAt(0);
  // a signs two different entries at seq 1 and gives one to b, the other to c.
  const branch = async (text, at) => verifyPost(await nextPost(a.sync.logs.get(a.id), a.signer, { now: at, text }));
  const one = await branch("left", NOW + 5);
  const two = await branch("right", NOW + 6);
  for (const [peer, entry] of [
    [b, one],
    [c, two],
  ]) {
    peer.sync.load([first, entry]);
  }
  connect(b, c);
  await settle([b, c]);
  const forks = [...b.sync.forks, ...c.sync.forks];
  assert.ok(forks.length >= 1);
  assert.deepEqual(new Set(forks[0].hashes), new Set([one.hash, two.hash]));
  assert.equal(b.sync.logs.get(a.id).entryAt(1).hash, one.hash, "first seen stays");
});

test("more than 1024 authors: the summary comes in ranges and each range is answered", async () => {
  const b = await makePeer(20);
  const a = await makePeer(21);
  const writers = [];
  for (let i = 0; i < 1030; i++) {
    const signer = await ed25519.signerFromSeed(new Uint8Array(32).fill(0).map((_, j) => (j === 0 ? i & 255 : j === 1 ? i >> 8 : 7)));
    writers.push(await verifyPost(await nextPost(new AuthorLog(await peerIdForKey(signer.publicKey)), signer, { now: NOW, text: "x" })));
  }
  a.sync.load(writers);
  b.sync.load(writers.slice(0, 1000));
  const frames = a.sync.summaryFrames();
  assert.deepEqual(
    frames.map((f) => [f.heads.length, f.end]),
    [
      [1024, false],
      [6, true],
    ],
  );
  assert.equal(frames[1].after, frames[0].heads.at(-1).author);
  connect(a, b);
  await settle([a, b]);
  assert.equal(heads(a), heads(b));
  assert.equal(b.stored.length, 30);
});

test("malformed summaries and summary floods are violations", async () => {
  const [a, b] = await Promise.all([22, 23].map(makePeer));
  await write(a, 1);
  a.sync.peerOpened(b.id, [SYNC_CAP], NOW);
  a.sync.takeActions();
  const head = a.sync.summaryFrames()[0].heads[0];
  await a.sync.receiveFrame(b.id, { t: "sync_summary", heads: [head, head], after: "", end: true }, NOW);
  await a.sync.receiveFrame(b.id, { t: "sync_summary", heads: [], after: "", end: false }, NOW);
  let rejected = a.sync.takeActions().filter((x) => x.type === "rejected");
  assert.deepEqual(
    rejected.map((x) => [x.code, x.violation]),
    [
      ["bad_sync", true],
      ["bad_sync", true],
    ],
  );
  for (let i = 0; i < ANSWER_BURST + 5; i++) {
    await a.sync.receiveFrame(b.id, { t: "sync_summary", heads: [], after: "", end: true }, NOW + 1);
  }
  const actions = a.sync.takeActions();
  rejected = actions.filter((x) => x.type === "rejected");
  assert.equal(actions.filter((x) => x.type === "send").length, ANSWER_BURST - 2, "two tokens went on the bad summaries");
  assert.ok(rejected.length >= 5 && rejected.every((x) => x.code === "rate_limited"));
});
