// The mesh state machine through SwarmNode on an in-memory network, with a fake clock.
import assert from "node:assert/strict";
import { test } from "node:test";

import { makeTicket, verifyTicket } from "../../static/swarm/protocol/ticket.js";
import { encodeFrame } from "../../static/swarm/protocol/wire.js";
import { makeIdentity, Network, pair } from "./support/network.js";

const openPeers = (peer) => peer.node.connectedPeers(0).map((p) => p.peerId);
const connected = (x, y) => openPeers(x).includes(y.identity.peerId) && openPeers(y).includes(x.identity.peerId);

test("two peers dial, exchange hellos with verified tickets and become open", async () => {
  const { net, a, b } = await pair();
  net.start();
  assert.ok(await net.runUntil(() => connected(a, b), 5));
  assert.equal(net.rounds, 2, "dial+open in one hop, hellos in the next");
  assert.equal(a.node.stats.dialSuccesses, 1);
  assert.equal(b.node.stats.inbound, 1);
  assert.equal(a.node.stats.firstPeerAt, net.now);
  // b learned a's ticket from the hello
  assert.ok(b.node.book.get(a.identity.peerId).ticket);
  assert.deepEqual(a.node.status(net.now), { state: "online", reason: null, peers: 1 });
});

test("a peer whose hello ticket is not for its PeerJS id is dropped with peer_mismatch", async () => {
  const net = new Network();
  const a = await net.addPeer();
  const b = await net.addPeer();
  const other = await makeIdentity("main", net.now);
  b.node.setTicket(other.ticket); // b presents someone else's (valid) ticket
  a.node.addCandidates([b.identity.ticket], "beacon", net.now);
  net.start();
  await net.runUntil(() => false, 4);
  assert.deepEqual(openPeers(a), []);
  assert.ok(a.closes.includes("peer_mismatch"));
  assert.equal(a.node.stats.dropped.peer_mismatch, 1);
});

test("a hello for another community is refused with wrong_community", async () => {
  const net = new Network();
  const a = await net.addPeer();
  const b = await net.addPeer();
  const foreign = await makeIdentity("elsewhere", net.now);
  const bb = await net.addPeer({ identity: foreign });
  a.node.addCandidates([b.identity.ticket], "beacon", net.now);
  a.node.addSeeds([bb.identity.peerId], net.now);
  net.start();
  await net.runUntil(() => false, 4);
  assert.deepEqual(openPeers(a), [b.identity.peerId]);
  assert.ok(a.closes.includes("wrong_community"));
});

test("any frame before the hello closes the connection with unexpected_frame", async () => {
  const net = new Network();
  const a = await net.addPeer();
  a.node.opened("x1", `p${"a".repeat(32)}`, false, net.now);
  a.node.takeActions();
  await a.node.receive("x1", encodeFrame({ t: "ping", n: 1, ts: 1 }), net.now);
  const actions = a.node.takeActions();
  assert.deepEqual(
    actions.filter((x) => x.type === "close").map((x) => x.reason),
    ["unexpected_frame"],
  );
  assert.equal(a.node.mesh.conns.size, 0);
});

test("no hello within 10 s: hello_timeout", async () => {
  const net = new Network();
  const a = await net.addPeer();
  a.node.opened("x1", `p${"b".repeat(32)}`, true, net.now);
  a.node.tick(net.now + 9_999);
  assert.equal(a.node.mesh.conns.size, 1);
  a.node.tick(net.now + 10_000);
  assert.equal(a.node.mesh.conns.size, 0);
  assert.ok(a.node.takeActions().some((x) => x.type === "close" && x.reason === "hello_timeout"));
});

test("manual approval: the peer waits in the queue until approved; deny and always work", async () => {
  const { net, a, b } = await pair({ b: { mesh: { approval: "manual" } } });
  net.start();
  await net.runUntil(() => false, 3);
  assert.deepEqual(openPeers(b), []);
  assert.deepEqual(
    b.node.mesh.queue().map((c) => c.peerId),
    [a.identity.peerId],
  );
  // a considers itself connected, but b ignores its gossip until approved
  await a.node.publish("chat", "before approval", net.now);
  await net.runUntil(() => false, 2);
  assert.equal(b.delivered.size, 0);
  assert.equal(b.node.stats.dropped.awaiting_approval >= 1, true);
  b.node.approve(a.identity.peerId, net.now, { always: true });
  assert.deepEqual(openPeers(b), [a.identity.peerId]);
  assert.ok(b.node.mesh.allowed.has(a.identity.peerId));
  await a.node.publish("chat", "after approval", net.now);
  await net.runUntil(() => b.delivered.size > 0, 3);
  assert.equal([...b.delivered.values()][0].data, "after approval");
});

test("denied peers are disconnected and refused for a while", async () => {
  const { net, a, b } = await pair({ b: { mesh: { approval: "manual" } } });
  net.start();
  await net.runUntil(() => b.node.mesh.queue().length === 1, 4);
  b.node.deny(a.identity.peerId, net.now);
  await net.runUntil(() => false, 2);
  assert.deepEqual(openPeers(a), []);
  assert.ok(b.closes.includes("denied"));
  // a tries again right away (it would after its backoff): refused
  b.node.opened("again", a.identity.peerId, false, net.now);
  assert.ok(b.node.takeActions().some((x) => x.type === "close" && x.reason === "denied"));
});

test("approval times out after 120 s", async () => {
  const { net, b } = await pair({ b: { mesh: { approval: "manual" } } });
  net.start();
  await net.runUntil(() => b.node.mesh.queue().length === 1, 4);
  await net.advance(121_000);
  assert.equal(b.node.mesh.queue().length, 0);
  assert.ok(b.closes.includes("approval_timeout"));
});

test("blocking a peer drops it at once, forgets it and refuses it later", async () => {
  const { net, a, b } = await pair();
  net.start();
  await net.runUntil(() => connected(a, b), 4);
  a.node.block(b.identity.peerId, net.now);
  await net.runUntil(() => false, 2);
  assert.deepEqual(openPeers(a), []);
  assert.deepEqual(openPeers(b), []);
  assert.equal(a.node.book.has(b.identity.peerId), false);
  a.node.opened("z", b.identity.peerId, false, net.now);
  assert.ok(a.node.takeActions().some((x) => x.type === "close" && x.reason === "blocked"));
  // a blocked peer's tickets are not taken from rendezvous either
  a.node.addCandidates([b.identity.ticket], "beacon", net.now);
  assert.equal(a.node.book.has(b.identity.peerId), false);
  a.node.unblock(b.identity.peerId);
  a.node.addCandidates([b.identity.ticket], "beacon", net.now);
  assert.equal(a.node.book.has(b.identity.peerId), true);
});

test("pause closes every connection, sends nothing, accepts nothing; resume reconnects", async () => {
  const { net, a, b } = await pair();
  net.start();
  await net.runUntil(() => connected(a, b), 4);
  a.node.setPaused(true, net.now);
  await net.runUntil(() => false, 2);
  assert.deepEqual(openPeers(a), []);
  assert.equal(a.node.status(net.now).state, "offline");
  const sent = a.node.stats.framesOut;
  await net.advance(120_000);
  assert.equal(a.node.stats.framesOut, sent, "a paused node sends no frame");
  assert.deepEqual(openPeers(b), []);
  a.node.setPaused(false, net.now);
  await net.advance(70_000); // b's "paused" bye told a to wait a minute before redialing
  assert.ok(await net.runUntil(() => connected(a, b), 10));
});

test("isolation keeps only always-approved peers", async () => {
  const net = new Network();
  const a = await net.addPeer();
  const b = await net.addPeer();
  const c = await net.addPeer();
  a.node.addCandidates([b.identity.ticket, c.identity.ticket], "beacon", net.now);
  net.start();
  await net.runUntil(() => connected(a, b) && connected(a, c), 5);
  a.node.approve(c.identity.peerId, net.now, { always: true });
  a.node.setIsolated(true, net.now);
  await net.runUntil(() => false, 2);
  assert.deepEqual(openPeers(a), [c.identity.peerId]);
  assert.equal(a.node.status(net.now).state, "degraded");
  b.node.addCandidates([a.identity.ticket], "beacon", net.now);
  await net.advance(70_000);
  assert.deepEqual(openPeers(a), [c.identity.peerId], "b is refused while a is isolated");
});

test("inbound connections beyond the maximum get bye mesh_full", async () => {
  const net = new Network();
  const hub = await net.addPeer({ options: { mesh: { max: 2, target: 2 } } });
  const others = [];
  for (let i = 0; i < 4; i++) {
    const p = await net.addPeer();
    p.node.addCandidates([hub.identity.ticket], "beacon", net.now);
    others.push(p);
  }
  net.start();
  await net.runUntil(() => false, 4);
  assert.equal(openPeers(hub).length, 2);
  assert.equal(others.filter((p) => p.closes.includes("bye_mesh_full")).length, 2);
});

test("a peer always allowed is let in beyond the maximum; others still get mesh_full", async () => {
  const net = new Network();
  const hub = await net.addPeer({ options: { mesh: { max: 1, target: 1 } } });
  const others = [];
  for (let i = 0; i < 3; i++) {
    const p = await net.addPeer();
    p.node.addCandidates([hub.identity.ticket], "beacon", net.now);
    others.push(p);
  }
  hub.node.mesh.allowed.add(others[2].identity.peerId);
  net.start();
  await net.runUntil(() => false, 4);
  assert.ok(openPeers(hub).includes(others[2].identity.peerId), "the allowed peer is connected");
  assert.equal(openPeers(hub).length, 2);
  assert.equal(others.filter((p) => p.closes.includes("bye_mesh_full")).length, 1);
});

// A manifest id (a 43-character digest id).
const MANIFEST = `${"M".repeat(42)}A`;

// A hub at its maximum (1) with one member, and `n` more peers that dial it once for `errand`.
async function fullHub({ n, errand, admits = () => true, options = {} }) {
  const net = new Network();
  const hub = await net.addPeer({ options: { mesh: { max: 1, target: 1, ...options } } });
  hub.node.mesh.admits = admits;
  const member = await net.addPeer();
  member.node.addCandidates([hub.identity.ticket], "beacon", net.now);
  net.start();
  await net.runUntil(() => connected(hub, member), 5);
  const others = [];
  for (let i = 0; i < n; i++) {
    const p = await net.addPeer({ options: { mesh: { target: 0 } } });
    p.node.addCandidates([hub.identity.ticket], "beacon", net.now);
    assert.ok(p.node.mesh.dialNow(hub.identity.peerId, net.now, errand));
    net.collect(p.identity.peerId);
    others.push(p);
  }
  await net.runUntil(() => false, 4);
  return { net, hub, member, others };
}

test("a full node takes errands it admits, up to its spare; beyond that mesh_full", async () => {
  const { hub, member, others } = await fullHub({ n: 4, errand: { errand: "dht" }, options: { spare: 2 } });
  assert.ok(openPeers(hub).includes(member.identity.peerId));
  assert.equal(openPeers(hub).length, 3, "the member and two errands");
  assert.equal(hub.node.mesh.errands(), 2);
  assert.equal(others.filter((p) => p.closes.includes("bye_mesh_full")).length, 2);
  assert.equal(hub.events.filter((e) => e.code === "errand_taken").length, 2);
});

test("a full node refuses an errand it does not admit, and a dial that names none", async () => {
  const wanted = [];
  const notHeld = await fullHub({
    n: 2,
    errand: { errand: "content", manifest: MANIFEST },
    admits: (errand) => {
      wanted.push(errand);
      return false;
    },
  });
  assert.deepEqual(wanted, [
    { errand: "content", manifest: MANIFEST },
    { errand: "content", manifest: MANIFEST },
  ]);
  assert.equal(openPeers(notHeld.hub).length, 1);
  assert.equal(notHeld.others.filter((p) => p.closes.includes("bye_mesh_full")).length, 2);
  const plain = await fullHub({ n: 2, errand: null });
  assert.equal(openPeers(plain.hub).length, 1);
  assert.equal(plain.others.filter((p) => p.closes.includes("bye_mesh_full")).length, 2);
});

test("an errand connection left idle is closed (bye idle) while the node is beyond its maximum; use keeps it", async () => {
  const { net, hub, others } = await fullHub({ n: 2, errand: { errand: "dht" }, options: { errandIdleMs: 30_000 } });
  const [busy, idle] = others;
  assert.equal(hub.node.mesh.errands(), 2);
  // `busy` asks a DHT request every 10 s (nobody answers it: the hub runs no DHT; the frame counts all the same).
  const conn = hub.node.mesh.connsOf(busy.identity.peerId)[0];
  for (let t = 0; t < 4; t++) {
    busy.node.sendTo(hub.identity.peerId, { t: "dht_find_node", id: t + 1, ticket: busy.identity.ticket.envelope, target: new Uint8Array(32) });
    net.collect(busy.identity.peerId);
    await net.advance(10_000);
  }
  assert.ok(hub.node.mesh.conns.has(conn.id), "in use: kept");
  assert.ok(idle.closes.includes("bye_idle"), "idle for 30 s: closed");
  assert.ok(!openPeers(hub).includes(idle.identity.peerId));
  await net.advance(40_000);
  assert.ok(busy.closes.includes("bye_idle"), "and once its use stops, the busy one too");
  assert.equal(hub.node.mesh.errands(), 0);
});

test("an errand connection becomes a member once the node is back within its maximum", async () => {
  const { net, hub, member, others } = await fullHub({ n: 1, errand: { errand: "dht" } });
  const [guest] = others;
  net.disconnect(member.identity.peerId);
  await net.advance(31_000);
  assert.ok(openPeers(hub).includes(guest.identity.peerId), "kept: the node is within its maximum");
  assert.equal(hub.node.mesh.errands(), 0, "no longer an errand: a member like any other");
  assert.ok(!guest.closes.includes("bye_idle"));
});

test("a hint's errand goes with the mesh's own dial of it", async () => {
  const net = new Network();
  const hub = await net.addPeer({ options: { mesh: { max: 1, target: 1 } } });
  hub.node.mesh.admits = (errand) => errand.errand === "content" && errand.manifest === MANIFEST;
  const member = await net.addPeer();
  member.node.addCandidates([hub.identity.ticket], "beacon", net.now);
  const late = await net.addPeer();
  net.start();
  await net.runUntil(() => connected(hub, member), 5);
  late.node.addHints([hub.identity.peerId], net.now, { errand: "content", manifest: MANIFEST });
  await net.runUntil(() => connected(hub, late), 6);
  assert.ok(connected(hub, late), "the full holder took the download");
  assert.equal(hub.node.mesh.errands(), 1);
});

test("a peer signaling calls absent on another part's dial is not dialed by the mesh for that ticket", async () => {
  const { net, a, b } = await pair();
  // The DHT (not the mesh) dialed b and signaling answered peer_unavailable.
  a.node.dialFailed(b.identity.peerId, net.now, "peer_unavailable");
  net.start();
  await net.runUntil(() => false, 4);
  assert.equal(a.node.mesh.conns.size, 0, "b's ticket is known stale: not dialed");
  assert.equal(a.node.mesh.dialing.size, 0);
  // A newer ticket of b (its page reopened) is dialed.
  const env = await makeTicket(b.identity.signer, { peerId: b.identity.peerId, community: "main", now: net.now + 1 });
  const newer = await verifyTicket(env, { now: net.now + 1, community: "main" });
  b.node.setTicket(newer);
  a.node.book.addTicket(newer, "beacon", net.now + 1);
  assert.ok(await net.runUntil(() => connected(a, b), 4));
});

test("simultaneous dials leave exactly one connection, the same on both sides", async () => {
  const { net, a, b } = await pair();
  b.node.addCandidates([a.identity.ticket], "beacon", net.now);
  net.start(); // both dial at once
  await net.runUntil(() => false, 4);
  assert.equal(a.node.mesh.conns.size, 1);
  assert.equal(b.node.mesh.conns.size, 1);
  assert.ok(connected(a, b));
  const kept = [...a.node.mesh.conns.values()][0];
  const dialer = kept.outbound ? a.identity.peerId : b.identity.peerId;
  assert.equal(dialer, [a.identity.peerId, b.identity.peerId].sort()[0], "the smaller id's dial stays");
});

test("a peer that comes back with a new ticket replaces its old connection", async () => {
  const { net, a, b } = await pair();
  net.start();
  await net.runUntil(() => connected(a, b), 4);
  // b restarts: new session and ticket, same key; a has not noticed the old link died
  const fresh = await makeIdentity("main", net.now + 1); // new ticket needs b's key: re-sign
  assert.ok(fresh);
  const { makeTicket, verifyTicket } = await import("../../static/swarm/protocol/ticket.js");
  const env = await makeTicket(b.identity.signer, { peerId: b.identity.peerId, community: "main", now: net.now + 1 });
  b.node.setTicket(await verifyTicket(env, { now: net.now + 1, community: "main" }));
  b.node.mesh.conns.clear(); // b forgot the old connection (page reload)
  b.node.book.addTicket(a.identity.ticket, "cache", net.now);
  b.node.book.recordSuccess(a.identity.peerId, net.now);
  await net.runUntil(() => false, 4);
  assert.equal(a.node.mesh.conns.size, 1);
  const kept = [...a.node.mesh.conns.values()][0];
  assert.equal(kept.ticket.nonce, b.node.mesh.ticket.body.nonce);
  assert.ok(a.closes.includes("duplicate"));
});

test("a connection silent for 90 s is degraded, for 180 s stale: closed and redialed", async () => {
  const { net, a, b } = await pair();
  net.start();
  await net.runUntil(() => connected(a, b), 4);
  net.peer(b.identity.peerId).online = false; // b freezes: no frames, no close
  await net.advance(95_000);
  assert.equal(a.node.connectedPeers(net.now)[0].health, "degraded");
  assert.equal(a.node.status(net.now).state, "degraded");
  assert.match(a.node.status(net.now).reason, /not responding/);
  await net.advance(90_000);
  assert.ok(a.closes.includes("stale"));
  net.peer(b.identity.peerId).online = true;
  b.node.mesh.conns.clear();
  assert.ok(await net.runUntil(() => openPeers(a).includes(b.identity.peerId), 100), "a redials b");
});

test("ping/pong measures round-trip time on the pinger's clock", async () => {
  const { net, a, b } = await pair({ net: { roundMs: 40 } });
  net.start();
  await net.runUntil(() => connected(a, b), 4);
  await net.advance(30_000, 40);
  const view = a.node.connectedPeers(net.now)[0];
  assert.equal(view.rtt, 80, "one round each way");
  assert.equal(view.loss, 0);
});

test("garbage from a peer is dropped and counted; too much of it disconnects the peer", async () => {
  const { net, a, b } = await pair();
  net.start();
  await net.runUntil(() => connected(a, b), 4);
  const conn = [...a.node.mesh.conns.values()][0];
  for (let i = 0; i < 10; i++) await a.node.receive(conn.id, new Uint8Array([0xc1]), net.now);
  assert.equal(a.node.stats.dropped.bad_msgpack, 10);
  assert.equal(a.node.mesh.conns.size, 1, "ten bad frames are tolerated");
  await a.node.receive(conn.id, new Uint8Array([0x92, 1, 2]), net.now);
  assert.equal(a.node.stats.dropped.bad_frame, 1);
  assert.equal(a.node.mesh.conns.size, 0, "the eleventh within a minute disconnects");
  assert.ok(a.node.takeActions().some((x) => x.type === "close" && x.reason === "misbehaving"));
  assert.ok(a.node.book.get(b.identity.peerId).nextDialAt >= net.now + 30 * 60_000);
});

test("a second pex_req within a minute is rate limited; an unsolicited pex is a violation", async () => {
  const { net, a, b } = await pair();
  net.start();
  await net.runUntil(() => connected(a, b), 4);
  await net.runUntil(() => false, 2); // the automatic pex exchange
  const conn = [...a.node.mesh.conns.values()][0];
  a.node.takeActions();
  await a.node.receive(conn.id, encodeFrame({ t: "pex_req", max: 5 }), net.now);
  assert.equal(a.node.stats.dropped.rate_limited, 1);
  await a.node.receive(conn.id, encodeFrame({ t: "pex", peers: [] }), net.now);
  assert.equal(a.node.stats.dropped.unexpected_frame, 1);
  // after a minute, a new request is answered
  await a.node.receive(conn.id, encodeFrame({ t: "pex_req", max: 5 }), net.now + 60_000);
  assert.ok(a.node.takeActions().some((x) => x.type === "send" && x.t === "pex"));
});

test("reserved frame types are dropped as unsupported_frame", async () => {
  const { net, a, b } = await pair();
  net.start();
  await net.runUntil(() => connected(a, b), 4);
  const conn = [...a.node.mesh.conns.values()][0];
  const { Encoder } = await import("@msgpack/msgpack");
  for (let i = 0; i < 20; i++) {
    await a.node.receive(conn.id, new Encoder().encode({ t: "dht_later", target: i }), net.now);
  }
  assert.equal(a.node.stats.dropped.unsupported_frame, 20);
  // Not held against the sender: twenty of them do not get it disconnected as misbehaving.
  assert.deepEqual(openPeers(a), [b.identity.peerId]);
});

test("content frames pass through to the content layer in both directions", async () => {
  const { net, a, b } = await pair();
  net.start();
  await net.runUntil(() => connected(a, b), 4);
  const frame = { t: "manifest_req", id: "A".repeat(43) };
  assert.equal(a.node.sendTo(b.identity.peerId, frame), true);
  assert.equal(a.node.sendTo(`p${"z".repeat(32)}`, frame), false);
  assert.throws(
    () => a.node.sendTo(b.identity.peerId, { t: "manifest_req", id: "short" }),
    (e) => e.code === "bad_frame",
  );
  const got = [];
  const actions = b.node.takeActions.bind(b.node);
  b.node.takeActions = () => {
    const out = actions();
    got.push(...out.filter((x) => x.type === "frame"));
    return out;
  };
  net.collect(a.identity.peerId);
  await net.round();
  assert.deepEqual(
    got.map((x) => [x.peerId, x.frame]),
    [[a.identity.peerId, frame]],
  );
});

test("without signaling the mesh keeps pinging its peers but dials nobody", async () => {
  const net = new Network();
  const a = await net.addPeer();
  const b = await net.addPeer();
  const c = await net.addPeer();
  a.node.addCandidates([b.identity.ticket], "beacon", net.now);
  net.start();
  await net.runUntil(() => connected(a, b), 4);
  a.node.mesh.canDial = false;
  a.node.addCandidates([c.identity.ticket], "beacon", net.now);
  const dials = a.node.stats.dials;
  await net.advance(200_000);
  assert.ok(connected(a, b), "still connected after 200 s: pings flowed");
  assert.equal(a.node.stats.dials, dials, "no dial while signaling is down");
  assert.equal(a.node.book.get(c.identity.peerId).failures, 0, "c was not penalized");
  a.node.mesh.canDial = true;
  assert.ok(await net.runUntil(() => connected(a, c), 4));
});

test("a peer that says bye leaving is not redialed until it has a newer ticket", async () => {
  const { net, a, b } = await pair();
  net.start();
  assert.ok(await net.runUntil(() => connected(a, b), 5));
  b.node.leave(net.now);
  await net.runUntil(() => openPeers(a).length === 0, 5);
  const entry = a.node.book.get(b.identity.peerId);
  assert.equal(entry.nextDialAt, 0, "no back-off: a reloaded page may be dialed at once");
  assert.ok(!a.node.book.dialCandidates(net.now + 1_000).some((e) => e.peerId === b.identity.peerId));
  const { makeTicket, verifyTicket } = await import("../../static/swarm/protocol/ticket.js");
  const newer = await verifyTicket(await makeTicket(b.identity.signer, { peerId: b.identity.peerId, community: "main", now: net.now + 1 }), {
    now: net.now + 1,
    community: "main",
  });
  a.node.book.addTicket(newer, "pex", net.now);
  assert.ok(a.node.book.dialCandidates(net.now + 1).some((e) => e.peerId === b.identity.peerId));
});
