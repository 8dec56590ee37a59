// An in-memory network for SwarmNodes: dials, DataConnections and frames are delivered in
// rounds (one round = one hop, `roundMs` of fake clock). Everything a node decides goes
// through takeActions(), exactly as in the browser adapter.
import * as ed25519 from "../../../static/swarm/protocol/ed25519.js";
import { peerIdForKey } from "../../../static/swarm/protocol/encoding.js";
import { SwarmNode } from "../../../static/swarm/protocol/node.js";
import { makeTicket, verifyTicket } from "../../../static/swarm/protocol/ticket.js";
import { prng } from "./sim.mjs";

export const T0 = 1_800_000_000_000;

// Deterministic PRNG (mulberry32) so simulations repeat exactly.
export { prng };

export async function makeIdentity(community, now, ttlMs = 600_000) {
  const signer = await ed25519.generateSigner();
  const peerId = await peerIdForKey(signer.publicKey);
  const envelope = await makeTicket(signer, { peerId, community, now, ttlMs });
  const ticket = await verifyTicket(envelope, { now, community });
  return { signer, peerId, ticket };
}

export class Network {
  constructor({ community = "main", roundMs = 100, seed = 1, now = T0 } = {}) {
    this.community = community;
    this.roundMs = roundMs;
    this.random = prng(seed);
    this.now = now;
    this.rounds = 0;
    this.peers = new Map(); // peer id -> { node, online, delivered: Map id -> message, events: [] }
    this.links = new Map(); // conn id -> { owner, remote, remoteConn, open }
    this.pending = []; // work for the next round: [kind, ...args]
    this.serial = 0;
    this.framesSent = 0;
    this.bytesSent = 0;
    this.sentByType = {};
  }

  async addPeer({ options = {}, identity } = {}) {
    const id = identity ?? (await makeIdentity(this.community, this.now));
    const node = new SwarmNode({
      peerId: id.peerId,
      community: this.community,
      signer: id.signer,
      ticket: id.ticket,
      options,
      random: this.random,
      now: this.now,
    });
    const peer = { node, identity: id, online: true, delivered: new Map(), events: [], closes: [] };
    this.peers.set(id.peerId, peer);
    return peer;
  }

  peer(peerId) {
    return this.peers.get(peerId);
  }

  /** Take a peer off the network: its links drop (the other side sees a close). */
  disconnect(peerId) {
    const peer = this.peers.get(peerId);
    peer.online = false;
    for (const [_connId, link] of this.links) {
      if (link.owner !== peerId || !link.open) continue;
      link.open = false;
      const remote = this.links.get(link.remoteConn);
      if (remote) remote.open = false;
      this.pending.push(["closed", link.remote, link.remoteConn]);
    }
  }

  collect(peerId) {
    const peer = this.peers.get(peerId);
    for (const action of peer.node.takeActions()) {
      if (action.type === "send") this.#send(peerId, action);
      else if (action.type === "close") this.#close(peerId, action);
      else if (action.type === "dial") this.#dial(peerId, action.peerId, action.errand ?? null);
      else if (action.type === "deliver") peer.delivered.set(action.message.id, action.message);
      else if (action.type === "event") peer.events.push(action);
    }
  }

  #send(_peerId, action) {
    const link = this.links.get(action.connId);
    if (!link?.open) return;
    this.framesSent += 1;
    this.bytesSent += action.bytes.length;
    this.sentByType[action.t] = (this.sentByType[action.t] ?? 0) + 1;
    this.pending.push(["data", link.remote, link.remoteConn, action.bytes]);
  }

  #close(peerId, action) {
    const link = this.links.get(action.connId);
    this.peers.get(peerId).closes.push(action.reason);
    if (!link?.open) return;
    link.open = false;
    const remote = this.links.get(link.remoteConn);
    if (remote?.open) {
      remote.open = false;
      this.pending.push(["closed", link.remote, link.remoteConn]);
    }
  }

  // `errand` travels with the dial as PeerJS metadata would: the answering side is told it.
  #dial(from, to, errand) {
    const target = this.peers.get(to);
    if (!target?.online) {
      this.pending.push(["dialFailed", from, to]);
      return;
    }
    const n = this.serial++;
    const [a, b] = [`c${n}a`, `c${n}b`];
    this.links.set(a, { owner: from, remote: to, remoteConn: b, open: true });
    this.links.set(b, { owner: to, remote: from, remoteConn: a, open: true });
    this.pending.push(["opened", to, b, from, false, errand], ["opened", from, a, to, true, null]);
  }

  /** Let nodes act on the current time before the first round (initial dials). */
  start() {
    for (const [peerId, peer] of this.peers) {
      peer.node.tick(this.now);
      this.collect(peerId);
    }
  }

  /** One hop: deliver what was sent last round, then every node ticks. */
  async round() {
    this.rounds += 1;
    this.now += this.roundMs;
    const work = this.pending;
    this.pending = [];
    const receives = [];
    for (const [kind, peerId, ...args] of work) {
      const peer = this.peers.get(peerId);
      if (!peer?.online) continue;
      if (kind === "data") receives.push(peer.node.receive(args[0], args[1], this.now));
      else if (kind === "opened") peer.node.opened(args[0], args[1], args[2], this.now, args[3] ?? null);
      else if (kind === "closed") receives.push(peer.node.closed(args[0], this.now));
      else if (kind === "dialFailed") peer.node.dialFailed(args[0], this.now, "unreachable");
    }
    await Promise.all(receives);
    for (const [peerId, peer] of this.peers) {
      if (!peer.online) continue;
      peer.node.tick(this.now);
      this.collect(peerId);
    }
  }

  async runUntil(predicate, maxRounds) {
    for (let i = 0; i < maxRounds; i++) {
      if (predicate()) return true;
      await this.round();
    }
    return predicate();
  }

  get idle() {
    return this.pending.length === 0;
  }

  /** Advance the clock without traffic (long idle periods), ticking every node. */
  async advance(ms, stepMs = 5_000) {
    const end = this.now + ms;
    while (this.now < end) {
      const step = Math.min(stepMs, end - this.now);
      this.now += step - this.roundMs;
      await this.round();
    }
  }
}

/** Two peers that know each other's tickets: the smallest useful network. */
export async function pair(options = {}) {
  const net = new Network(options.net);
  const a = await net.addPeer({ options: options.a });
  const b = await net.addPeer({ options: options.b });
  a.node.addCandidates([b.identity.ticket], "beacon", net.now);
  return { net, a, b };
}
