// Renewed tickets sent to neighbours (gossip topic `ticket`, ttl 0; docs/protocol.md "Renewed
// tickets") in the browser's node on the in-memory network with a fake clock, as
// tests/test_ticket_renewal.py checks the Python node: a neighbour takes the new ticket (neither
// delivered nor relayed), so its PEX answers stay fresh with no beacon around; a ticket that is
// not its signer's own, an expired one or garbage is dropped with its code.
import assert from "node:assert/strict";
import { test } from "node:test";

import { TICKET_TOPIC } from "../../static/swarm/protocol/node.js";
import { makeTicket, verifyTicket } from "../../static/swarm/protocol/ticket.js";
import { makeIdentity, Network } from "./support/network.js";

const TTL_MS = 180_000; // a page's ticket
const RENEW_MS = 150_000; // and how often it renews it

// a - s - b, a and b kept apart (each blocks the other).
async function line(net) {
  const a = await net.addPeer({ identity: await makeIdentity(net.community, net.now, TTL_MS) });
  const s = await net.addPeer();
  const b = await net.addPeer({ identity: await makeIdentity(net.community, net.now, TTL_MS) });
  for (const end of [a, b]) end.node.addCandidates([s.identity.ticket], "beacon", net.now);
  a.node.block(b.identity.peerId, net.now);
  b.node.block(a.identity.peerId, net.now);
  net.start();
  assert.ok(await net.runUntil(() => s.node.connectedPeers(net.now).length === 2, 10));
  return [a, s, b];
}

async function freshTicket(peer, now) {
  const { signer, peerId } = peer.identity;
  return verifyTicket(await makeTicket(signer, { peerId, community: "main", now, ttlMs: TTL_MS }), { now, community: "main" });
}

async function renew(net, peer) {
  const ticket = await freshTicket(peer, net.now);
  const sent = await peer.node.renewTicket(ticket, net.now);
  net.collect(peer.identity.peerId);
  await net.runUntil(() => net.idle, 5);
  return [sent, ticket];
}

test("a neighbour takes a renewed ticket and passes it on to nobody", async () => {
  const net = new Network();
  const [a, s, b] = await line(net);
  await net.advance(60_000);
  const [sent, ticket] = await renew(net, b);
  assert.ok(sent);
  const entry = s.node.book.get(b.identity.peerId);
  assert.deepEqual([entry.issuedAt, entry.ticket], [ticket.issuedAt, ticket.envelope]);
  assert.equal(s.node.stats.ticketsRenewed, 1);
  assert.deepEqual(
    [...s.delivered.values()].filter((m) => m.topic === TICKET_TOPIC),
    [],
    "not delivered",
  );
  assert.equal(a.node.log.has(sent), false, "never relayed");
  assert.deepEqual(
    Object.keys(s.node.stats.dropped).filter((code) => code.startsWith("gossip")),
    [],
  );
});

test("renewed tickets keep PEX answers fresh with no beacon", async () => {
  async function run(renewing) {
    const net = new Network();
    const [, s, b] = await line(net);
    const end = net.now + 12 * 60_000; // four lifetimes of a hello ticket
    while (net.now < end) {
      await net.advance(RENEW_MS);
      if (renewing) await renew(net, b);
    }
    assert.ok(s.node.connectedPeers(net.now).some((p) => p.peerId === b.identity.peerId));
    return [s.node.book.sampleTickets(net.now, { limit: 50 }), net.now, b.identity.peerId];
  }
  const [fresh, now, bId] = await run(true);
  assert.equal(fresh.length, 1, "b's ticket, live, for anyone who asks s");
  assert.equal((await verifyTicket(fresh[0], { now, community: "main" })).peerId, bId);
  const [stale] = await run(false);
  assert.deepEqual(stale, [], "without renewals, b's hello ticket expired long ago");
});

test("a ticket that is not its signer's own, expired or garbage is dropped", async () => {
  const net = new Network();
  const [, s, b] = await line(net);
  const other = await makeIdentity(net.community, net.now, TTL_MS);
  const { signer, peerId } = b.identity;
  const expired = await makeTicket(signer, { peerId, community: "main", now: net.now - TTL_MS - 60_000, ttlMs: TTL_MS });
  for (const data of [other.ticket.envelope, expired, { body: "nonsense" }]) {
    await b.node.publish(TICKET_TOPIC, data, net.now, { ttl: 0 });
    net.collect(peerId);
    await net.runUntil(() => net.idle, 5);
  }
  const dropped = s.node.stats.dropped;
  assert.equal(dropped.gossip_ticket_peer_mismatch, 1, JSON.stringify(dropped));
  assert.equal(dropped.gossip_ticket_expired, 1, JSON.stringify(dropped));
  assert.equal(dropped.gossip_ticket_bad_envelope, 1, JSON.stringify(dropped));
  assert.equal(s.node.stats.ticketsRenewed, 0);
  assert.equal(s.node.book.get(other.peerId), undefined, "another peer's ticket is not taken");
});

test("with nobody connected a renewal sends nothing", async () => {
  const net = new Network();
  const lone = await net.addPeer();
  const ticket = await freshTicket(lone, net.now + 1);
  assert.equal(await lone.node.renewTicket(ticket, net.now + 1), null);
  assert.equal(lone.node.mesh.ticket, ticket.envelope, "in its hellos all the same");
  assert.equal(lone.node.stats.gossipPublished, 0);
});
