// Replica adverts by gossip (topic `have`): the data check before delivery and relay, the
// publisher's schedule (changes rate-limited, the full list every few minutes) and the
// receiver's TTL, over the in-memory network with its fake clock.
import assert from "node:assert/strict";
import { test } from "node:test";

import { BAD_BODY, ProtocolError } from "../../static/swarm/protocol/errors.js";
import {
  checkHaveGossip,
  GOSSIP_HOLDING_TTL_MS,
  HAVE_GOSSIP_EVERY_MS,
  HAVE_GOSSIP_MIN_GAP_MS,
  HaveGossip,
  TOPIC_HAVE,
} from "../../static/swarm/protocol/have_gossip.js";
import { MAX_HAVE_MANIFESTS } from "../../static/swarm/protocol/wire.js";
import { Network } from "./support/network.js";

const id = (n) => `${n.toString(36).padStart(42, "x")}A`;
const openPeers = (peer) => peer.node.connectedPeers(0).map((p) => p.peerId);
const isBadBody = (e) => e instanceof ProtocolError && e.code === BAD_BODY;

test("have gossip data is {manifests} with the have frame's entries and limits", () => {
  const good = {
    manifests: [
      { id: id(1), chunks: 3 },
      { id: id(2), chunks: 0 },
      { id: id(3), chunks: 9, keep: false },
    ],
  };
  assert.deepEqual(checkHaveGossip(good), good.manifests);
  assert.deepEqual(checkHaveGossip({ manifests: [{ id: id(1), chunks: 1, keep: true }] }), [{ id: id(1), chunks: 1 }]);
  const full = { manifests: Array.from({ length: MAX_HAVE_MANIFESTS }, (_, i) => ({ id: id(i), chunks: 1 })) };
  assert.equal(checkHaveGossip(full).length, MAX_HAVE_MANIFESTS);
  for (const bad of [
    null,
    [],
    "have",
    {},
    { manifests: [], holder: "someone" },
    { manifests: "all" },
    { manifests: [...full.manifests, { id: id(999), chunks: 1 }] },
    { manifests: [{ id: "not-a-digest", chunks: 1 }] },
    { manifests: [{ id: id(1), chunks: 4097 }] },
    { manifests: [{ id: id(1), chunks: -1 }] },
    { manifests: [{ id: id(1) }] },
    { manifests: [{ id: id(1), chunks: 1, keep: "no" }] },
    { manifests: [{ id: id(1), chunks: 1, holder: "x" }] },
  ]) {
    assert.throws(() => checkHaveGossip(bad), isBadBody, JSON.stringify(bad)?.slice(0, 80));
  }
});

// a - b - c in a line: c hears a only through b.
async function line() {
  const net = new Network();
  const [a, b, c] = [await net.addPeer(), await net.addPeer(), await net.addPeer()];
  a.node.addCandidates([b.identity.ticket], "beacon", net.now);
  c.node.addCandidates([b.identity.ticket], "beacon", net.now);
  for (const p of [a, c]) p.node.mesh.options.target = 1;
  for (const p of [a, b, c]) p.node.gossipChecks.set(TOPIC_HAVE, (data) => void checkHaveGossip(data));
  net.start();
  assert.ok(await net.runUntil(() => openPeers(b).length === 2, 10));
  assert.deepEqual(openPeers(a), [b.identity.peerId]);
  return { net, a, b, c };
}

// A peer's HaveGossip fed from what its node delivers (as FileService does).
function attach(net, peer, holdings = () => []) {
  peer.gossip = new HaveGossip({ selfId: peer.identity.peerId, holdings, publish: (topic, data) => peer.node.publish(topic, data, net.now) });
  peer.consumed = new Set();
  peer.hear = () => {
    for (const [mid, message] of peer.delivered) {
      if (peer.consumed.has(mid) || message.topic !== TOPIC_HAVE) continue;
      peer.consumed.add(mid);
      peer.gossip.receive(message.origin, message.data, message.issuedAt, net.now);
    }
  };
}

async function spread(net, peers, rounds = 6) {
  for (let i = 0; i < rounds; i++) {
    await net.round();
    for (const p of peers) p.hear?.();
  }
}

test("a bad have gossip is dropped and counted where it is checked; a good one is relayed beyond", async () => {
  const { net, a, b, c } = await line();
  const bad = await a.node.publish(TOPIC_HAVE, { manifests: [{ id: id(1), chunks: 1, holder: c.identity.peerId }] }, net.now);
  const good = await a.node.publish(TOPIC_HAVE, { manifests: [{ id: id(1), chunks: 1 }] }, net.now);
  net.collect(a.identity.peerId);
  await net.runUntil(() => c.delivered.has(good), 6);
  await net.round();
  assert.ok(c.delivered.has(good), "relayed through b");
  assert.ok(!b.delivered.has(bad) && !c.delivered.has(bad), "neither delivered nor relayed");
  assert.ok(!c.node.log.has(bad), "c never saw it");
  assert.equal(b.node.stats.dropped.gossip_have_bad_body, 1);
  assert.ok(openPeers(b).includes(a.identity.peerId), "not held against the forwarder");
});

test("a browser's have gossip reaches a peer it is not connected to, which records it until the TTL", async () => {
  const { net, a, b, c } = await line();
  let held = [
    { id: id(1), chunks: 4 },
    { id: id(2), chunks: 2, keep: false },
  ];
  attach(net, a, () => held);
  attach(net, b);
  attach(net, c);
  const aId = a.identity.peerId;

  // First tick: the full list, at once.
  assert.equal((await a.gossip.tick(net.now)).length, 1);
  net.collect(aId);
  await spread(net, [b, c]);
  assert.deepEqual([...c.gossip.holders(id(1), net.now).keys()], [aId], "the holder is the signing origin");
  assert.equal(c.gossip.holders(id(1), net.now).get(aId).chunks, 4);
  assert.equal(c.gossip.holders(id(2), net.now).get(aId).keep, false);
  assert.equal(c.gossip.holders(id(1), net.now).get(aId).keep, true);
  assert.equal(a.gossip.holders(id(1), net.now).size, 0, "its own gossip is not recorded");

  // A change is rate-limited: held back until HAVE_GOSSIP_MIN_GAP_MS after the last publish.
  held = [
    { id: id(1), chunks: 4 },
    { id: id(3), chunks: 7 },
  ];
  a.gossip.changed([
    { id: id(3), chunks: 7 },
    { id: id(2), chunks: 0 },
  ]);
  assert.deepEqual(await a.gossip.tick(net.now), [], "too soon after the last one");
  const sentAt = net.now;
  await net.advance(HAVE_GOSSIP_MIN_GAP_MS - 2_000, 1_000);
  assert.deepEqual(await a.gossip.tick(net.now), []);
  await net.advance(2_000 + net.roundMs, 1_000);
  assert.ok(net.now - sentAt >= HAVE_GOSSIP_MIN_GAP_MS);
  const [changes] = await a.gossip.tick(net.now);
  assert.deepEqual(
    changes.manifests,
    [
      { id: id(3), chunks: 7 },
      { id: id(2), chunks: 0 },
    ],
    "only the changes",
  );
  net.collect(aId);
  await spread(net, [b, c]);
  assert.equal(c.gossip.holders(id(3), net.now).get(aId).chunks, 7);
  assert.equal(c.gossip.holders(id(2), net.now).size, 0, "withdrawn");
  assert.equal(c.gossip.size, 2);

  // Not connected: nothing is published, the changes wait.
  a.gossip.changed([{ id: id(4), chunks: 1 }]);
  await net.advance(HAVE_GOSSIP_MIN_GAP_MS, 5_000);
  assert.deepEqual(await a.gossip.tick(net.now, { connected: false }), []);
  assert.equal((await a.gossip.tick(net.now))[0].manifests[0].id, id(4));
  net.collect(aId);

  // Without a refresh, c forgets a's holdings after the TTL (counted from when they were issued).
  const expiresAt = c.gossip.holders(id(1), net.now).get(aId).expiresAt;
  assert.ok(expiresAt <= net.now + GOSSIP_HOLDING_TTL_MS);
  await net.advance(expiresAt - net.now - 1_000, 5_000);
  assert.equal(c.gossip.holders(id(1), net.now).size, 1, "still valid just before the TTL");
  await net.advance(1_000, 1_000);
  assert.equal(c.gossip.holders(id(1), net.now).size, 0, "expired");
  c.gossip.prune(net.now);
  assert.ok(!c.gossip.heard.has(id(1)));
});

test("the full list is published again every few minutes and keeps the holdings alive", async () => {
  const { net, a, b, c } = await line();
  attach(net, a, () => [{ id: id(1), chunks: 4 }]);
  attach(net, b);
  attach(net, c);
  const aId = a.identity.peerId;
  let published = 0;
  const start = net.now;
  // Tick every 5 s for 25 minutes, as FileService does.
  while (net.now - start < 25 * 60_000) {
    published += (await a.gossip.tick(net.now)).length;
    net.collect(aId);
    await spread(net, [b, c], 2);
    assert.equal(c.gossip.holders(id(1), net.now).size, 1, `alive at +${net.now - start} ms`);
    await net.advance(5_000, 5_000);
  }
  const expected = Math.ceil((25 * 60_000) / HAVE_GOSSIP_EVERY_MS);
  assert.ok(published >= expected - 1 && published <= expected + 1, `${published} publishes in 25 min`);
  assert.ok(a.node.stats.gossipPublished === published);
});

test("the receiver keeps the newest advert per holder, bounds what one holder fills, splits long lists", async () => {
  const g = new HaveGossip({ selfId: "self", holdings: () => [], publish: () => {}, maxPerHolder: 3, maxTotal: 5 });
  assert.equal(g.receive("p1", { manifests: [{ id: id(1), chunks: 5 }] }, 2_000, 3_000), 1);
  assert.equal(g.receive("p1", { manifests: [{ id: id(1), chunks: 0 }] }, 1_000, 3_100), 0, "an older withdrawal is ignored");
  assert.equal(g.holders(id(1), 3_100).get("p1").chunks, 5);
  assert.equal(g.holders(id(1), 3_100).get("p1").expiresAt, 2_000 + GOSSIP_HOLDING_TTL_MS, "from the issue time");
  g.receive("p1", { manifests: [{ id: id(1), chunks: 6 }] }, 9_000, 4_000);
  assert.equal(g.holders(id(1), 4_000).get("p1").expiresAt, 4_000 + GOSSIP_HOLDING_TTL_MS, "never from the future");
  assert.equal(g.receive("self", { manifests: [{ id: id(9), chunks: 1 }] }, 4_000, 4_000), 0);
  g.receive("p1", { manifests: [2, 3, 4, 5].map((n) => ({ id: id(n), chunks: 1 })) }, 5_000, 5_000);
  assert.equal(g.perHolder.get("p1"), 3, "at most maxPerHolder per holder");
  g.receive("p2", { manifests: [6, 7, 8].map((n) => ({ id: id(n), chunks: 1 })) }, 5_000, 5_000);
  assert.equal(g.size, 5, "at most maxTotal");
  assert.throws(() => g.receive("p3", { manifests: [{ id: id(1), chunks: 1, extra: 1 }] }, 5_000, 5_000), isBadBody);

  const sent = [];
  const many = Array.from({ length: 600 }, (_, i) => ({ id: id(i), chunks: 1 }));
  const pub = new HaveGossip({ holdings: () => many, publish: (topic, data) => sent.push([topic, data]) });
  assert.equal((await pub.tick(0)).length, 3);
  assert.deepEqual(
    sent.map(([topic, d]) => [topic, d.manifests.length]),
    [
      ["have", 256],
      ["have", 256],
      ["have", 88],
    ],
  );
  for (const [, data] of sent) checkHaveGossip(data);
});
