// The node's seams for the content layer: gossip checked before delivery and relay
// (gossipChecks), content frames (sync included) handed out as "frame" actions, bad content
// counted against its sender (contentViolation), pre-encoded frames (sendEncoded).
import assert from "node:assert/strict";
import { test } from "node:test";

import { BAD_SIGNATURE, ProtocolError } from "../../static/swarm/protocol/errors.js";
import { decodeFrame, encodeChunkFrame, encodeFrame } from "../../static/swarm/protocol/wire.js";
import { Network } from "./support/network.js";

const openPeers = (peer) => peer.node.connectedPeers(0).map((p) => p.peerId);

// a - b - c in a line: c hears a only through b.
async function line() {
  const net = new Network();
  const [a, b, c] = [await net.addPeer(), await net.addPeer(), await net.addPeer()];
  a.node.addCandidates([b.identity.ticket], "beacon", net.now);
  c.node.addCandidates([b.identity.ticket], "beacon", net.now);
  for (const p of [a, c]) p.node.mesh.options.target = 1;
  net.start();
  const ok = await net.runUntil(() => openPeers(b).length === 2, 10);
  assert.ok(ok);
  assert.deepEqual(openPeers(a), [b.identity.peerId]);
  return { net, a, b, c };
}

test("gossip whose content fails its topic's check is neither delivered nor relayed", async () => {
  const { net, a, b, c } = await line();
  const check = async (data) => {
    if (data.forged) throw new ProtocolError(BAD_SIGNATURE, "signature does not verify");
  };
  b.node.gossipChecks.set("post", check);
  const bad = await a.node.publish("post", { forged: true }, net.now);
  const good = await a.node.publish("post", { forged: false }, net.now);
  const other = await a.node.publish("chat", { forged: true }, net.now); // no check for this topic
  await net.runUntil(() => c.delivered.has(good) && c.delivered.has(other), 6);
  await net.round();
  assert.ok(c.delivered.has(good));
  assert.ok(c.delivered.has(other));
  assert.ok(!b.delivered.has(bad), "not delivered where it failed");
  assert.ok(!c.delivered.has(bad), "not relayed beyond");
  assert.ok(!c.node.log.has(bad), "c never even saw it");
  assert.equal(b.node.stats.dropped.gossip_post_bad_signature, 1);
  assert.ok(b.events.some((e) => e.code === BAD_SIGNATURE && e.source === "gossip"));
  assert.ok(openPeers(b).includes(a.identity.peerId), "not held against the forwarder");
  // A second copy of the same message is a duplicate, not checked again.
  const before = b.node.stats.gossipDuplicates;
  await a.node.publish("post", { forged: true }, net.now); // new message, new id: checked
  assert.equal(b.node.stats.gossipDuplicates, before);
});

test("sync frames reach the content layer; bad content counts as a violation; encoded frames go out as is", async () => {
  const { net, a, b } = await line();
  const aId = a.identity.peerId;
  const bId = b.identity.peerId;
  const summary = { t: "sync_summary", heads: [], after: "", end: true };
  assert.equal(a.node.sendTo(bId, summary), true);
  const chunkId = Buffer.from(new Uint8Array(32).fill(3)).toString("base64url");
  const bytes = encodeChunkFrame(chunkId, 5, chunkId, [new Uint8Array([1, 2, 3])]);
  assert.equal(a.node.sendEncoded(bId, bytes, "chunk"), true);
  const frames = [];
  const collect = b.node.takeActions.bind(b.node);
  b.node.takeActions = () => {
    const out = collect();
    frames.push(...out.filter((x) => x.type === "frame"));
    return out;
  };
  net.collect(aId);
  await net.round();
  assert.deepEqual(
    frames.map((f) => [f.peerId, f.frame.t]),
    [
      [aId, "sync_summary"],
      [aId, "chunk"],
    ],
  );
  assert.deepEqual(frames[1].frame, decodeFrame(encodeFrame({ t: "chunk", manifest: chunkId, index: 5, chunk: chunkId, data: new Uint8Array([1, 2, 3]) })));
  for (let i = 0; i < 10; i++) b.node.contentViolation(aId, "chunk_mismatch", "bad bytes", net.now);
  assert.equal(b.node.stats.dropped.chunk_mismatch, 10);
  assert.ok(openPeers(b).includes(aId), "10 in a minute are tolerated");
  b.node.contentViolation(aId, "chunk_mismatch", "bad bytes", net.now);
  net.collect(bId);
  assert.ok(b.closes.includes("misbehaving"), "the 11th disconnects it");
  assert.equal(a.node.sendEncoded(`p${"z".repeat(32)}`, bytes, "chunk"), false);
});
