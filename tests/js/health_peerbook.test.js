// Connection health and the peer book, with explicit clocks.
import assert from "node:assert/strict";
import { test } from "node:test";

import { GossipLog } from "../../static/swarm/protocol/gossip.js";
import { DEGRADED_AFTER_MS, Health, PING_INTERVAL_MS, PONG_TIMEOUT_MS, STALE_AFTER_MS } from "../../static/swarm/protocol/health.js";
import { PeerBook } from "../../static/swarm/protocol/peerbook.js";
import { makeIdentity, T0 } from "./support/network.js";

test("health: pings every 15 s, RTT is smoothed, unanswered pings count as loss", () => {
  const h = new Health(0);
  const p1 = h.pingDue(0);
  assert.deepEqual(p1, { t: "ping", n: 1, ts: 0 });
  assert.equal(h.pong({ n: 1, ts: 0 }, 40), 40);
  assert.equal(h.pingDue(PING_INTERVAL_MS - 1), null);
  assert.equal(h.rtt, 40);
  assert.equal(h.pong({ n: 1, ts: 0 }, 50), null, "a pong answers a ping once");
  assert.equal(h.pong({ n: 9, ts: 0 }, 50), null, "unknown pongs are ignored");
  const p2 = h.pingDue(PING_INTERVAL_MS);
  h.pong(p2, PING_INTERVAL_MS + 80);
  assert.equal(h.rtt, 50, "EWMA 1/4: 40 + (80-40)/4");
  assert.equal(h.minRtt, 40, "the smallest sample");
  h.pingDue(2 * PING_INTERVAL_MS); // never answered
  h.pingDue(3 * PING_INTERVAL_MS);
  assert.equal(h.loss, 1 / 3, "the third ping expired after 10 s");
  assert.equal(h.pingsSent, 4);
});

test("health: degraded after 90 s without any frame, stale after 180 s", () => {
  const h = new Health(1000);
  assert.equal(h.state(1000 + DEGRADED_AFTER_MS - 1), "ok");
  assert.equal(h.state(1000 + DEGRADED_AFTER_MS), "degraded");
  assert.equal(h.state(1000 + STALE_AFTER_MS), "stale");
  h.received(1000 + STALE_AFTER_MS);
  assert.equal(h.state(1000 + STALE_AFTER_MS), "ok");
});

test("health: nextDeadline names the next ping, pong timeout or idle threshold, never the past", () => {
  const h = new Health(0);
  assert.equal(h.nextDeadline(0), 0, "the first ping is due at once");
  h.pingDue(0);
  assert.equal(h.nextDeadline(0), PONG_TIMEOUT_MS);
  h.pingDue(PONG_TIMEOUT_MS); // expires the first
  assert.equal(h.nextDeadline(PONG_TIMEOUT_MS), PING_INTERVAL_MS);
  const late = DEGRADED_AFTER_MS + 1;
  assert.ok(h.nextDeadline(late) >= Math.min(late, PING_INTERVAL_MS));
  assert.ok(new Health(0).nextDeadline(STALE_AFTER_MS + 1) <= STALE_AFTER_MS + 1);
});

test("peer book: newest ticket per peer wins, exact duplicates are recognized", async () => {
  const id = await makeIdentity("main", T0);
  const newer = await makeIdentity("main", T0 + 1000);
  const book = new PeerBook({ selfId: "pself" });
  assert.equal(book.addTicket(id.ticket, "beacon", T0), "added");
  assert.ok(book.hasTicket(id.ticket.envelope));
  assert.equal(book.addTicket(id.ticket, "pex", T0), "stale");
  // same key, later ticket
  const { makeTicket, verifyTicket } = await import("../../static/swarm/protocol/ticket.js");
  const later = await verifyTicket(await makeTicket(id.signer, { peerId: id.peerId, community: "main", now: T0 + 5000 }), {
    now: T0 + 5000,
    community: "main",
  });
  assert.equal(book.addTicket(later, "pex", T0 + 5000), "added");
  assert.equal(book.get(id.peerId).issuedAt, T0 + 5000);
  assert.equal(book.addTicket(id.ticket, "capsule", T0 + 6000), "stale", "an older ticket never replaces");
  assert.equal(book.addTicket({ ...newer.ticket, peerId: "pself" }, "pex", T0), "self");
});

test("peer book: failures back off exponentially, dial candidates skip them", async () => {
  const a = await makeIdentity("main", T0);
  const b = await makeIdentity("main", T0);
  const book = new PeerBook({ selfId: "pself", random: () => 0 });
  book.addTicket(a.ticket, "beacon", T0);
  book.addTicket(b.ticket, "beacon", T0);
  book.recordSuccess(a.peerId, T0);
  assert.deepEqual(
    book.dialCandidates(T0).map((e) => e.peerId),
    [a.peerId, b.peerId],
    "proven peers first",
  );
  book.recordFailure(a.peerId, T0);
  assert.deepEqual(
    book.dialCandidates(T0 + 4_999).map((e) => e.peerId),
    [b.peerId],
  );
  book.recordFailure(a.peerId, T0 + 5_000);
  assert.equal(book.get(a.peerId).nextDialAt, T0 + 15_000, "second failure: 10 s");
  assert.deepEqual(book.dialCandidates(T0, { exclude: new Set([b.peerId]) }), []);
});

test("peer book: a peer signaling called gone is skipped until a newer ticket arrives", async () => {
  const a = await makeIdentity("main", T0);
  const b = await makeIdentity("main", T0);
  const book = new PeerBook({ selfId: "pself", random: () => 0 });
  book.addTicket(a.ticket, "beacon", T0);
  book.addTicket(b.ticket, "beacon", T0);
  book.recordFailure(a.peerId, T0);
  book.recordGone(a.peerId);
  const later = T0 + 60_000; // long past the failure's back-off, the ticket still live
  assert.deepEqual(
    book.dialCandidates(later).map((e) => e.peerId),
    [b.peerId],
  );
  assert.deepEqual(
    book.sampleTickets(later).map((t) => t.body.peer_id),
    [b.peerId],
    "a ticket known stale is not passed on",
  );
  assert.equal(book.addTicket(a.ticket, "pex", later), "stale", "the same ticket again changes nothing");
  assert.deepEqual(
    book.dialCandidates(later).map((e) => e.peerId),
    [b.peerId],
  );
  const { makeTicket, verifyTicket } = await import("../../static/swarm/protocol/ticket.js");
  const fresh = await verifyTicket(await makeTicket(a.signer, { peerId: a.peerId, community: "main", now: later }), { now: later, community: "main" });
  assert.equal(book.addTicket(fresh, "beacon", later), "added");
  assert.ok(
    book.dialCandidates(later).some((e) => e.peerId === a.peerId),
    "back with a newer ticket",
  );
  book.recordGone(a.peerId);
  book.recordSuccess(a.peerId, later); // it reached us itself: not gone
  assert.ok(book.dialCandidates(later).some((e) => e.peerId === a.peerId));
});

test("peer book: expired tickets are dropped unless the peer ever answered; cache round trip", async () => {
  const a = await makeIdentity("main", T0, 180_000);
  const b = await makeIdentity("main", T0, 180_000);
  const book = new PeerBook({ selfId: "pself" });
  book.addTicket(a.ticket, "beacon", T0);
  book.addTicket(b.ticket, "beacon", T0);
  book.recordSuccess(a.peerId, T0);
  const later = T0 + 200_000;
  assert.equal(book.liveCount(later), 0);
  book.prune(later);
  assert.deepEqual([...book.entries.keys()], [a.peerId]);
  assert.deepEqual(
    book.dialCandidates(later).map((e) => e.peerId),
    [a.peerId],
    "a returning peer may be back",
  );
  const restored = new PeerBook({ selfId: "pself" });
  restored.loadRecords(book.toRecords(), later);
  assert.equal(restored.get(a.peerId).successes, 1);
  assert.equal(restored.get(a.peerId).source, "cache");
});

test("peer book: capacity evicts the lowest scores, never seeds", async () => {
  const book = new PeerBook({ selfId: "pself", capacity: 3 });
  book.addSeed(`p${"s".repeat(32)}`, T0);
  const ids = await Promise.all([0, 1, 2, 3].map(() => makeIdentity("main", T0)));
  for (const id of ids) book.addTicket(id.ticket, "beacon", T0);
  assert.equal(book.size, 3);
  assert.ok(book.has(`p${"s".repeat(32)}`));
});

test("gossip log forgets ids once their messages are too old to accept anyway", () => {
  const log = new GossipLog({ maxAgeMs: 1000, skewMs: 100 });
  log.add("aa", 5000);
  log.prune(6099);
  assert.ok(log.has("aa"));
  log.prune(6100);
  assert.equal(log.has("aa"), false);
  const small = new GossipLog({ maxSeen: 2 });
  for (const id of ["a", "b", "c"]) small.add(id, 0);
  assert.deepEqual([...small.seen.keys()], ["b", "c"]);
});

test("peer book: a hinted holder is dialed first even without a ticket, unless gone", async () => {
  const a = await makeIdentity("main", T0);
  const book = new PeerBook({ selfId: "pself", random: () => 0 });
  book.addTicket(a.ticket, "beacon", T0);
  book.recordSuccess(a.peerId, T0);
  book.addHint("pholder", T0);
  assert.deepEqual(
    book.dialCandidates(T0).map((e) => e.peerId),
    ["pholder", a.peerId],
  );
  book.recordGone("pholder");
  assert.deepEqual(
    book.dialCandidates(T0 + 3_600_000).map((e) => e.peerId),
    [a.peerId],
  );
  assert.ok(!book.toRecords().some((r) => r.peerId === "pholder"));
});
