// GuardianService (static/swarm/content/guardians.js) on fake pages: shard_msg frames between
// connected pages (and through a super-peer), recovery requests by gossip, a fake clock, real
// crypto and SLIP-39, ContentStore and MemoryStore in memory. Owner -> guardians -> new device.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { ContentStore } from "../../static/swarm/adapters/contentstore.js";
import { MemoryStore } from "../../static/swarm/adapters/store.js";
import { GuardianService, RELAY_CAP, REPUBLISH_MS, SHARD_CAP, TOPIC_SHARD_REQ } from "../../static/swarm/content/guardians.js";
import { signerFromSeed } from "../../static/swarm/protocol/ed25519.js";
import { peerIdForKey } from "../../static/swarm/protocol/encoding.js";
import { keyAgreementPairFromIdentitySeed } from "../../static/swarm/protocol/keywrap.js";
import { makeRelease, openShare } from "../../static/swarm/protocol/shard.js";

const T0 = Date.UTC(2026, 11, 6);
const running = []; // services whose timers end with the test

afterEach(() => {
  for (const service of running.splice(0)) service.destroy();
});

class Net {
  constructor() {
    this.pages = new Map();
    this.links = new Set(); // "a|b" sorted
    this.now = T0;
    this.frames = []; // every frame sent: { from, to, frame }
  }

  key(a, b) {
    return [a, b].sort().join("|");
  }

  connect(a, b) {
    if (this.links.has(this.key(a.peerId, b.peerId))) return;
    this.links.add(this.key(a.peerId, b.peerId));
    a.dispatchEvent(new CustomEvent("peer-open", { detail: { peerId: b.peerId, caps: b.caps } }));
    b.dispatchEvent(new CustomEvent("peer-open", { detail: { peerId: a.peerId, caps: a.caps } }));
  }

  disconnect(a) {
    for (const link of [...this.links]) {
      const [x, y] = link.split("|");
      if (x !== a.peerId && y !== a.peerId) continue;
      this.links.delete(link);
      const other = this.pages.get(x === a.peerId ? y : x);
      other.dispatchEvent(new CustomEvent("peer-close", { detail: { peerId: a.peerId } }));
      a.dispatchEvent(new CustomEvent("peer-close", { detail: { peerId: other.peerId } }));
    }
  }

  connected(a, b) {
    return this.links.has(this.key(a, b));
  }
}

class FakePeer extends EventTarget {
  constructor(net, identity, caps = ["gossip", SHARD_CAP]) {
    super();
    this.net = net;
    this.identity = identity;
    this.peerId = identity.peerId;
    this.caps = caps;
    this.store = new MemoryStore();
    this.node = { gossipChecks: new Map() };
    this.logs = [];
    this.violations = [];
    this.received = []; // frames that reached this page
    net.pages.set(this.peerId, this);
  }

  send(to, frame) {
    if (!this.net.connected(this.peerId, to)) return false;
    this.net.frames.push({ from: this.peerId, to, frame });
    const page = this.net.pages.get(to);
    page.received.push(frame);
    page.dispatchEvent(new CustomEvent("frame", { detail: { peerId: this.peerId, frame: structuredClone(frame) } }));
    return true;
  }

  // Gossip floods every page connected to the publisher, after its check (as SwarmNode does).
  async publish(topic, data) {
    for (const page of this.net.pages.values()) {
      if (page === this || !this.net.connected(this.peerId, page.peerId)) continue;
      const check = page.node.gossipChecks.get(topic);
      if (check) await check(data, this.net.now);
      page.dispatchEvent(new CustomEvent("message", { detail: { topic, data: structuredClone(data), origin: this.peerId, from: this.peerId } }));
    }
  }

  connectedPeers() {
    return [...this.net.pages.values()].filter((p) => this.net.connected(this.peerId, p.peerId)).map((p) => ({ peerId: p.peerId, caps: p.caps }));
  }

  contentViolation(peerId, code) {
    this.violations.push({ peerId, code });
  }

  log(level, area, code, message, peerId = null) {
    this.logs.push({ level, area, code, message, peerId });
  }
}

async function identity() {
  const seed = crypto.getRandomValues(new Uint8Array(32));
  const signer = await signerFromSeed(seed);
  const peerId = await peerIdForKey(signer.publicKey);
  const pair = await keyAgreementPairFromIdentitySeed(seed);
  return { peerId, signer, record: { kind: "noble", seed, publicKey: signer.publicKey }, pair };
}

// KeyShare's part: this page's X25519 pair and the keys of the pages it has met.
class FakeKeys {
  constructor(own, directory) {
    this.own = own;
    this.directory = directory;
    this.keys = directory;
  }

  knows(peerId) {
    return this.directory.has(peerId);
  }

  async keyOf(peerId) {
    const known = this.directory.get(peerId);
    if (!known) throw Object.assign(new Error("no key"), { code: "no_key" });
    return known;
  }
}

async function page(net, directory, { id = null, store = null, caps } = {}) {
  const ident = id ?? (await identity());
  const peer = new FakePeer(net, ident, caps);
  directory.set(ident.peerId, { x25519: ident.pair.publicKey });
  const recovered = [];
  const content = store ?? new ContentStore(null);
  const service = await new GuardianService({
    peer,
    store: content,
    keys: new FakeKeys(ident.pair, directory),
    clock: () => net.now,
    onRecovered: (peerId) => recovered.push(peerId),
  }).start();
  running.push(service);
  return { peer, service, id: ident, recovered, content };
}

const settle = async (...pages) => {
  // Let queued work (and what it sends) run to the end.
  for (let i = 0; i < 6; i++) {
    for (const p of pages) await p.service.inbox;
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
};

const states = (owner) => Object.fromEntries(owner.service.guardianList().map((g) => [g.peerId, g.state]));

test("shares reach connected guardians at once and an offline one when it connects; receipts make them held", async () => {
  const net = new Net();
  const dir = new Map();
  const [a, b, c, d] = [await page(net, dir), await page(net, dir), await page(net, dir), await page(net, dir)];
  net.connect(a.peer, b.peer);
  net.connect(a.peer, d.peer);
  const { paper } = await a.service.split({ guardians: [b.peer.peerId, c.peer.peerId, d.peer.peerId], k: 2 });
  assert.deepEqual(paper, []);
  await settle(a, b, c, d);
  assert.deepEqual(states(a), { [b.peer.peerId]: "held", [c.peer.peerId]: "sent", [d.peer.peerId]: "held" });
  assert.equal(b.service.holding()[0].owner, a.peer.peerId);
  // C comes online later: the share is sent again on connect, and C's receipt arrives.
  net.now += 60_000;
  net.connect(a.peer, c.peer);
  await settle(a, b, c, d);
  assert.equal(states(a)[c.peer.peerId], "held");
  assert.equal(a.service.guardianList().find((g) => g.peerId === c.peer.peerId).lastSeen, net.now);
  // The same share delivered twice (a relay and a direct copy) is harmless.
  const share = net.frames.find((f) => f.to === b.peer.peerId && f.frame.msg.body.kind === "share").frame;
  b.peer.dispatchEvent(new CustomEvent("frame", { detail: { peerId: a.peer.peerId, frame: share } }));
  await settle(a, b);
  assert.equal(b.service.holding().length, 1);
  assert.equal(states(a)[b.peer.peerId], "held");
  assert.deepEqual(b.peer.violations, []);
  // A new split revokes the old set: B (not chosen again) deletes its share.
  await a.service.split({ guardians: [c.peer.peerId, d.peer.peerId], k: 2 });
  await settle(a, b, c, d);
  assert.equal(b.service.holding().length, 0);
  assert.equal(states(a)[b.peer.peerId], "revoked");
  assert.equal(states(a)[c.peer.peerId], "held");
});

test("a split is refused with a stable code for bad k, n or guardians", async () => {
  const net = new Net();
  const dir = new Map();
  const a = await page(net, dir);
  const b = await page(net, dir);
  await assert.rejects(a.service.split({ guardians: [b.peer.peerId], k: 2 }), { code: "bad_threshold" });
  await assert.rejects(a.service.split({ guardians: [b.peer.peerId], paper: 1, k: 3 }), { code: "bad_threshold" });
  await assert.rejects(a.service.split({ guardians: [a.peer.peerId, b.peer.peerId], k: 2 }), { code: "bad_peer_id" });
  await assert.rejects(a.service.split({ guardians: ["nobody", b.peer.peerId], k: 2 }), { code: "bad_peer_id" });
  assert.deepEqual(a.service.guardianList(), []);
});

test("a new device recovers with two guardians' approvals; the third stays offline; the seed is installed as the old identity", async () => {
  const net = new Net();
  const dir = new Map();
  const [a, b, c, d] = [await page(net, dir), await page(net, dir), await page(net, dir), await page(net, dir)];
  for (const g of [b, c, d]) net.connect(a.peer, g.peer);
  await a.service.split({ guardians: [b.peer.peerId, c.peer.peerId, d.peer.peerId], k: 2 });
  await settle(a, b, c, d);
  net.disconnect(a.peer);
  net.disconnect(c.peer);
  const n = await page(net, dir);
  net.connect(n.peer, b.peer);
  net.connect(n.peer, d.peer);
  await settle(n, b, d);
  assert.equal(n.service.recoveryState().state, "idle");
  await n.service.startRecovery(a.peer.peerId);
  await settle(n, b, d);
  const mine = n.service.recoveryState();
  assert.equal(mine.state, "collecting");
  assert.match(mine.code, /^\d{8}$/);
  assert.equal(mine.need, null);
  for (const g of [b, d]) {
    const [request] = g.service.requests();
    assert.equal(request.forPeer, a.peer.peerId);
    assert.equal(request.code, mine.code, "the guardian sees the code the new device shows");
  }
  await b.service.approve(b.service.requests()[0].id);
  await settle(n, b, d);
  assert.deepEqual({ have: n.service.recoveryState().have, need: n.service.recoveryState().need }, { have: 1, need: 2 });
  // The same release again (a re-send on connect) does not count twice.
  const release = net.frames.find((f) => f.from === b.peer.peerId && f.frame.msg.body.kind === "release").frame;
  n.peer.dispatchEvent(new CustomEvent("frame", { detail: { peerId: b.peer.peerId, frame: release } }));
  await settle(n);
  assert.equal(n.service.recoveryState().have, 1);
  await d.service.approve(d.service.requests()[0].id);
  await settle(n, b, d);
  assert.deepEqual(n.recovered, [a.peer.peerId]);
  const stored = await n.peer.store.getIdentity();
  assert.equal(await peerIdForKey(stored.publicKey), a.peer.peerId);
  assert.equal(n.service.recoveryState().state, "recovered");
  assert.deepEqual((await n.content.getShardState("recovery")).forPeer, a.peer.peerId);
  // Heard again, an approved request is answered again with the same releases.
  const before = net.frames.length;
  await n.peer.publish(TOPIC_SHARD_REQ, n.service.recovery.envelope);
  await settle(n, b, d);
  assert.ok(net.frames.slice(before).some((f) => f.from === b.peer.peerId && f.frame.msg.body.kind === "release"));
});

test("a guardian whose share fails its checks is named and skipped; a typed paper share completes the recovery", async () => {
  const net = new Net();
  const dir = new Map();
  const [a, b, c] = [await page(net, dir), await page(net, dir), await page(net, dir)];
  net.connect(a.peer, b.peer);
  net.connect(a.peer, c.peer);
  const { paper } = await a.service.split({ guardians: [b.peer.peerId, c.peer.peerId], paper: 1, k: 2 });
  assert.equal(paper.length, 1);
  assert.equal(paper[0].index, 3);
  assert.equal(paper[0].mnemonic.split(" ").length, 33);
  await settle(a, b, c);
  net.disconnect(a.peer);
  const n = await page(net, dir);
  net.connect(n.peer, b.peer);
  net.connect(n.peer, c.peer);
  await n.service.startRecovery(a.peer.peerId);
  await settle(n, b, c);
  // B's page answers with its share altered: one word swapped, signed by B.
  const held = b.service.guardian.held()[0].share;
  const text = await openShare(held, { keyPair: b.id.pair, peerId: b.peer.peerId });
  const words = text.split(" ");
  words[10] = words[10] === "academic" ? "acid" : "academic";
  const incoming = b.service.guardian.requests()[0];
  const bad = await makeRelease(b.id.signer, incoming.request, { setId: held.set, index: held.index, k: held.k, n: held.n, share: words.join(" ") });
  b.peer.send(n.peer.peerId, { t: "shard_msg", to: n.peer.peerId, msg: bad });
  await settle(n);
  let s = n.service.recoveryState();
  assert.deepEqual(s.bad, { [b.peer.peerId]: "bad_share" });
  assert.equal(s.have, 0);
  // B's later real approval is dropped too: it was named.
  await b.service.approve(incoming.id);
  await c.service.approve(c.service.requests()[0].id);
  await settle(n, b, c);
  s = n.service.recoveryState();
  assert.deepEqual([s.state, s.have, s.need], ["collecting", 1, 2]);
  await assert.rejects(n.service.addTypedShare("not a share"), { code: "bad_share" });
  await n.service.addTypedShare(paper[0].mnemonic.toUpperCase());
  await settle(n);
  assert.deepEqual(n.recovered, [a.peer.peerId]);
  assert.equal(await peerIdForKey((await n.peer.store.getIdentity()).publicKey), a.peer.peerId);
});

test("a message for a peer not connected goes through connected super-peers; a page that is not `to` ignores it", async () => {
  const net = new Net();
  const dir = new Map();
  const a = await page(net, dir);
  const b = await page(net, dir);
  const relay = await page(net, dir, { caps: ["gossip", RELAY_CAP, SHARD_CAP] });
  const old = await page(net, dir, { caps: ["gossip", RELAY_CAP] }); // a super-peer without mailboxes
  net.connect(a.peer, old.peer);
  net.connect(a.peer, relay.peer);
  await a.service.split({ guardians: [b.peer.peerId, relay.peer.peerId], k: 2 });
  await settle(a, b, relay);
  const relayed = net.frames.filter((f) => f.to === relay.peer.peerId && f.frame.to === b.peer.peerId);
  assert.equal(relayed.length, 1, "B's share went to the super-peer, addressed to B");
  assert.equal(relayed[0].frame.msg.body.guardian, b.peer.peerId);
  // A page (the relay here runs the page code) does not act on a frame for someone else.
  // The relay (page code here) holds its own share, index 2, and did not act on B's.
  assert.deepEqual(
    relay.service.holding().map((h) => h.index),
    [2],
  );
  assert.equal(net.frames.filter((f) => f.to === old.peer.peerId).length, 0, "nothing to a super-peer without shard");
  const c = await page(net, dir);
  net.connect(a.peer, c.peer);
  c.peer.dispatchEvent(new CustomEvent("frame", { detail: { peerId: a.peer.peerId, frame: relayed[0].frame } }));
  await settle(c);
  assert.equal(c.service.holding().length, 0);
  assert.deepEqual(c.peer.violations, []);
  // Kept by the owner: sent directly when B connects.
  net.connect(a.peer, b.peer);
  await settle(a, b);
  assert.equal(states(a)[b.peer.peerId], "held");
});

test("held shares survive a reload; a recovery under way resumes and republishes every 5 minutes", async () => {
  const net = new Net();
  const dir = new Map();
  const a = await page(net, dir);
  const b = await page(net, dir);
  const c = await page(net, dir);
  net.connect(a.peer, b.peer);
  net.connect(a.peer, c.peer);
  await a.service.split({ guardians: [b.peer.peerId, c.peer.peerId], k: 2 });
  await settle(a, b, c);
  // B reloads: same identity, same content store.
  b.service.destroy();
  net.disconnect(b.peer);
  net.pages.delete(b.peer.peerId);
  const b2 = await page(net, dir, { id: b.id, store: b.content });
  assert.equal(b2.service.holding()[0].owner, a.peer.peerId);
  const n = await page(net, dir);
  net.connect(n.peer, b2.peer);
  await n.service.startRecovery(a.peer.peerId);
  await settle(n, b2);
  await b2.service.approve(b2.service.requests()[0].id);
  await settle(n, b2);
  assert.equal(n.service.recoveryState().have, 1);
  // The new device reloads: the request and the release taken are read back.
  n.service.destroy();
  net.disconnect(n.peer);
  net.pages.delete(n.peer.peerId);
  const n2 = await page(net, dir, { id: n.id, store: n.content });
  const s = n2.service.recoveryState();
  assert.deepEqual([s.state, s.have, s.need, s.code], ["collecting", 1, 2, n.service.recoveryState().code]);
  const heard = [];
  c.peer.addEventListener("message", (e) => heard.push(e.detail.topic));
  net.connect(n2.peer, c.peer);
  await settle(n2, c);
  assert.equal(c.service.requests().length, 1, "a peer that connects is asked directly");
  assert.deepEqual(heard, [TOPIC_SHARD_REQ], "and the request is published again after the reload");
  net.now += 60_000;
  await n2.service.tick();
  assert.deepEqual(heard, [TOPIC_SHARD_REQ], "not again within 5 minutes");
  net.now += REPUBLISH_MS;
  await n2.service.tick();
  assert.deepEqual(heard, [TOPIC_SHARD_REQ, TOPIC_SHARD_REQ]);
  await settle(n2, c);
  assert.equal(c.service.requests().length, 1, "the same request heard again is one request");
  await c.service.approve(c.service.requests()[0].id);
  await settle(n2, c);
  assert.deepEqual(n2.recovered, [a.peer.peerId]);
  n2.service.destroy();
});
