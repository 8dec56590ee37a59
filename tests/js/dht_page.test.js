// The page's DHT adapter, its pure parts (static/swarm/adapters/dht.js): the courier that
// holds requests for peers being dialed, and the choice of what to provide.
import assert from "node:assert/strict";
import { test } from "node:test";

import { MAX_PROVIDED, PageDht, providedSet } from "../../static/swarm/adapters/dht.js";
import { DhtCourier } from "../../static/swarm/adapters/dht_courier.js";
import { parseConfig } from "../../static/swarm/adapters/config.js";
import * as ed25519 from "../../static/swarm/protocol/ed25519.js";
import { b64urlEncode, peerIdForKey, sha256, utf8 } from "../../static/swarm/protocol/encoding.js";
import { makeTicket, verifyTicket } from "../../static/swarm/protocol/ticket.js";
import { decodeFrame, encodeFrame } from "../../static/swarm/protocol/wire.js";

const frame = (id) => ({ t: "dht_find_node", id });

test("a frame for a connected peer is sent; an answer for a peer gone is dropped", () => {
  const c = new DhtCourier();
  assert.equal(c.route("pA", frame(1), { connected: true, answer: false, now: 0 }), "send");
  assert.equal(c.route("pA", frame(2), { connected: false, answer: true, now: 0 }), "drop");
  assert.equal(c.queued.size, 0);
});

test("requests for a peer not connected wait for one dial and go out in order when it opens", () => {
  const c = new DhtCourier();
  assert.equal(c.route("pA", frame(1), { connected: false, answer: false, now: 0 }), "dial");
  assert.equal(c.route("pA", frame(2), { connected: false, answer: false, now: 10 }), "queued", "one dial per peer");
  assert.deepEqual(
    c.opened("pA", 100).map((f) => f.id),
    [1, 2],
  );
  assert.deepEqual(c.opened("pA", 100), [], "sent once");
  assert.deepEqual(c.idle(100 + 59_999), [], "a DHT connection is not idle before a minute");
  assert.equal(c.route("pA", frame(3), { connected: true, answer: false, now: 30_000 }), "send");
  assert.deepEqual(c.idle(89_999), []);
  assert.deepEqual(c.idle(90_000), ["pA"], "idle a minute after its last use");
  c.closed("pA");
  assert.deepEqual(c.idle(200_000), []);
});

test("a connection that opened without waiting frames is not the DHT's to close", () => {
  const c = new DhtCourier();
  assert.deepEqual(c.opened("pB", 0), []);
  assert.deepEqual(c.idle(1e9), []);
});

test("dials are bounded; queued peers get the freed slots; frames wait at most waitMs", () => {
  const c = new DhtCourier({ maxDials: 2, waitMs: 5_000 });
  assert.equal(c.route("p1", frame(1), { connected: false, answer: false, now: 0 }), "dial");
  assert.equal(c.route("p2", frame(2), { connected: false, answer: false, now: 0 }), "dial");
  assert.equal(c.route("p3", frame(3), { connected: false, answer: false, now: 1_000 }), "queued");
  assert.equal(c.failed("p1"), true, "a failed dial had frames waiting");
  assert.equal(c.failed("p1"), false);
  let swept = c.sweep(2_000);
  assert.deepEqual(swept, { expired: [], dial: ["p3"] });
  swept = c.sweep(5_000);
  assert.deepEqual(swept.expired, ["p2"], "p2's dial took the whole request timeout");
  swept = c.sweep(6_000);
  assert.deepEqual(swept.expired, ["p3"]);
  assert.equal(c.queued.size, 0);
  assert.equal(c.dialing.size, 0);
});

test("a peer's queue is bounded", () => {
  const c = new DhtCourier({ maxQueued: 2 });
  c.route("p1", frame(1), { connected: false, answer: false, now: 0 });
  c.route("p1", frame(2), { connected: false, answer: false, now: 0 });
  assert.equal(c.route("p1", frame(3), { connected: false, answer: false, now: 0 }), "drop");
});

test("what is provided: manifests with chunks, most first, at most the per-publisher bound", () => {
  const entries = [
    { id: "b", chunks: 3 },
    { id: "a", chunks: 3 },
    { id: "c", chunks: 0 },
    { id: "d", chunks: 9, keep: false },
  ];
  assert.deepEqual(
    [...providedSet(entries)],
    [
      ["d", 9],
      ["a", 3],
      ["b", 3],
    ],
  );
  const many = Array.from({ length: 100 }, (_, i) => ({ id: `m${String(i).padStart(3, "0")}`, chunks: 1 + i }));
  const chosen = providedSet(many);
  assert.equal(chosen.size, MAX_PROVIDED);
  assert.equal(MAX_PROVIDED, 64);
  assert.ok(chosen.has("m099") && !chosen.has("m000"));
});

test("the page config switches have gossip off, and only with a boolean", () => {
  const base = { community: "main", signaling: ["/signal/"] };
  assert.equal(parseConfig(base, "http://x/").haveGossip, true);
  assert.equal(parseConfig({ ...base, have_gossip: false }, "http://x/").haveGossip, false);
  assert.throws(() => parseConfig({ ...base, have_gossip: "no" }, "http://x/"), { code: "bad_config" });
});

// --- PageDht over fake pages: connections that must be dialed, frames through the codec ---

class FakePage extends EventTarget {
  constructor(world, signer, peerId, ticket) {
    super();
    Object.assign(this, { world, peerId, community: "main", identity: { signer }, config: {}, logs: [], violations: [], dials: [] });
    this.links = new Map(); // peer id -> verified ticket of the other side
    this.node = {
      mesh: {
        ticket: ticket.envelope,
        options: { target: 6 },
        open: () => [...this.links].map(([id, t]) => ({ peerId: id, ticket: t })),
      },
      candidates: [],
      addCandidates(tickets) {
        this.candidates.push(...tickets.map((t) => t.peerId));
      },
    };
    this.verified = ticket;
  }
  log(_level, _source, code) {
    this.logs.push(code);
  }
  contentViolation(peerId, code) {
    this.violations.push([peerId, code]);
  }
  send(peerId, frame) {
    if (!this.links.has(peerId)) return false;
    const bytes = encodeFrame(frame);
    setImmediate(() => this.world.get(peerId).dispatchEvent(new CustomEvent("frame", { detail: { peerId: this.peerId, frame: decodeFrame(bytes) } })));
    return true;
  }
  dial(peerId) {
    this.dials.push(peerId);
    const other = this.world.get(peerId);
    if (!other || other.down || other.absent) {
      const reason = other?.absent ? "peer_unavailable" : "unreachable";
      setImmediate(() => this.dispatchEvent(new CustomEvent("dial-failed", { detail: { peerId, reason } })));
      return true;
    }
    setTimeout(() => connect(this, other), 20);
    return true;
  }
  disconnect() {}
}

function connect(a, b) {
  a.links.set(b.peerId, b.verified);
  b.links.set(a.peerId, a.verified);
  a.dispatchEvent(new CustomEvent("peer-open", { detail: { peerId: b.peerId, caps: ["dht"] } }));
  b.dispatchEvent(new CustomEvent("peer-open", { detail: { peerId: a.peerId, caps: ["dht"] } }));
}

let pages = 0;
async function fakePage(world, files = null) {
  const signer = await ed25519.signerFromSeed(await sha256(utf8.encode(`page dht ${pages++}`)));
  const peerId = await peerIdForKey(signer.publicKey);
  const now = Date.now();
  const ticket = await verifyTicket(await makeTicket(signer, { peerId, community: "main", now, ttlMs: 180_000 }), { now, community: "main" });
  const page = new FakePage(world, signer, peerId, ticket);
  world.set(peerId, page);
  page.dht = await new PageDht({ peer: page, files }).start();
  return page;
}

const until = async (check, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
};

test("pages join through one peer, publish what they hold, and reach providers they are not connected to", async () => {
  const world = new Map();
  const manifest = b64urlEncode(await sha256(utf8.encode("a file")));
  const held = { advertiser: { holdings: () => [{ id: manifest, chunks: 5 }] }, downloads: { active: new Map() }, holders: new Map() };
  const a = await fakePage(world);
  const b = await fakePage(world);
  const c = await fakePage(world, held);
  try {
    connect(a, b);
    connect(b, c);
    await until(() => a.dht.joined && c.dht.joined && c.dht.provided.has(manifest));
    assert.ok(c.logs.includes("dht_provided"));
    // A is not connected to C: the lookup dials it (or B answers with C's record).
    const found = await a.dht.findProviders(manifest);
    assert.equal(found.ok, true);
    assert.deepEqual(found.providers, [{ peerId: c.peerId, chunks: 5 }]);
    const peer = await a.dht.findPeer(c.peerId);
    assert.equal(peer.ok, true);
    assert.equal(peer.ticket.body.peer_id, c.peerId);
    assert.deepEqual(a.violations, []);
    // A peer that cannot be dialed fails at once, not after the request timeout.
    const d = await fakePage(world);
    connect(d, b);
    await until(() => d.dht.joined && b.dht.core.table.get(d.peerId));
    d.down = true;
    for (const p of [a, b, c]) p.links.delete(d.peerId);
    const started = Date.now();
    await a.dht.core.findNode(d.dht.core.id, Date.now()); // B names D; A dials D; the dial fails
    await until(() => (a.dht.core.stats.dropped.unreachable ?? 0) >= 1, 4_000);
    assert.ok(a.dials.includes(d.peerId));
    assert.ok(Date.now() - started < 4_000, "the request failed at the dial, not at the 5 s timeout");
  } finally {
    for (const p of world.values()) p.dht.destroy();
  }
});

test("a peer signaling calls absent is dialed once: out of the table, its ticket not dialed again until a newer one", async () => {
  const world = new Map();
  const [a, b, d] = [await fakePage(world), await fakePage(world), await fakePage(world)];
  try {
    connect(a, b);
    connect(d, b);
    await until(() => a.dht.joined && d.dht.joined && b.dht.core.table.get(d.peerId));
    d.absent = true; // its page closed; B still names it
    for (const p of [a, b]) p.links.delete(d.peerId);
    for (let round = 0; round < 3; round++) {
      const before = a.dht.core.stats.dropped.unreachable ?? 0;
      await a.dht.core.findNode(d.dht.core.id, Date.now());
      await until(() => (a.dht.core.stats.dropped.unreachable ?? 0) > before, 4_000);
    }
    assert.equal(a.dials.filter((p) => p === d.peerId).length, 1, "dialed once");
    assert.ok(a.dht.goneSkipped >= 2, "the later lookups failed it at once");
    assert.equal(a.dht.core.table.get(d.peerId), undefined);
    assert.equal(a.dht.gone.get(d.peerId), d.verified.issuedAt);
    // D comes back: a newer ticket of it is dialed.
    const now = Date.now() + 1_000;
    const fresh = await verifyTicket(await makeTicket(d.identity.signer, { peerId: d.peerId, community: "main", now, ttlMs: 180_000 }), {
      now,
      community: "main",
    });
    d.verified = fresh;
    d.absent = false;
    await b.dht.core.seen(fresh.envelope, now);
    await a.dht.core.findNode(d.dht.core.id, Date.now());
    await until(() => a.dials.filter((p) => p === d.peerId).length === 2, 4_000);
  } finally {
    for (const p of world.values()) p.dht.destroy();
  }
});

test("a peer that says it is leaving leaves the table, so no answer names it to pages that would dial it", async () => {
  const world = new Map();
  const [a, b, d] = [await fakePage(world), await fakePage(world), await fakePage(world)];
  try {
    connect(d, b);
    await until(() => d.dht.joined && b.dht.core.table.get(d.peerId));
    b.links.delete(d.peerId);
    d.links.delete(b.peerId);
    b.dispatchEvent(new CustomEvent("peer-close", { detail: { peerId: d.peerId, reason: "bye_leaving" } }));
    assert.equal(b.dht.core.table.get(d.peerId), undefined);
    d.absent = true;
    // A joins through B and looks D's id up: B does not name D, so A dials nobody.
    connect(a, b);
    await until(() => a.dht.joined);
    const before = a.dht.core.stats.requestsOut ?? 0;
    await a.dht.core.findNode(d.dht.core.id, Date.now());
    await until(() => (a.dht.core.stats.requestsOut ?? 0) > before, 4_000);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(
      a.dials.filter((p) => p === d.peerId),
      [],
    );
  } finally {
    for (const p of world.values()) p.dht.destroy();
  }
});
