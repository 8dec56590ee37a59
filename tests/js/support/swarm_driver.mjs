// Drives one browser SwarmNode (static/swarm/protocol/node.js) from another process: one JSON request
// per stdin line, one JSON answer per stdout line. Bytes travel as hex; the clock is whatever
// `now` the caller passes (tests/test_cross_language.py shares its fake clock this way).
//
//   {"op":"init","community":"main","now":T,"seed":7}      -> {"ok":true,"peerId","ticket"}
//   {"op":"receive","conn":"c1","hex":"81a174...","now":T} -> {"ok":true}
//   {"op":"take"}                                           -> {"ok":true,"actions":[...]}
//   {"op":"decode","hexes":[...]}                          -> {"ok":true,"results":[{hex}|{code}]}
// Errors answer {"ok":false,"error":"..."}; the driver keeps running.
import { createInterface } from "node:readline";

import * as ed25519 from "../../../static/swarm/protocol/ed25519.js";
import { fromHex, hex, peerIdForKey } from "../../../static/swarm/protocol/encoding.js";
import { SwarmNode } from "../../../static/swarm/protocol/node.js";
import { makeTicket, verifyTicket } from "../../../static/swarm/protocol/ticket.js";
import { decodeFrame, encodeFrame } from "../../../static/swarm/protocol/wire.js";
import { prng } from "./network.js";

let node = null;
let community = null;

function action(a) {
  switch (a.type) {
    case "send":
      return { type: "send", connId: a.connId, t: a.t, hex: hex(a.bytes) };
    case "frame":
      return { type: "frame", connId: a.connId, peerId: a.peerId, hex: hex(encodeFrame(a.frame)) };
    case "deliver": {
      const { id, origin, topic, issuedAt, data, ttl, payload } = a.message;
      return { type: "deliver", from: a.from, message: { id, origin, topic, issuedAt, data, ttl, payload } };
    }
    case "dial":
      return { type: "dial", peerId: a.peerId };
    default:
      return a; // close, opened, closed, event: plain data already
  }
}

const ops = {
  async init({ community: name = "main", now, seed = 1, ttlMs = 600_000, options = {} }) {
    community = name;
    const signer = await ed25519.generateSigner();
    const peerId = await peerIdForKey(signer.publicKey);
    const envelope = await makeTicket(signer, { peerId, community, now, ttlMs });
    const ticket = await verifyTicket(envelope, { now, community });
    node = new SwarmNode({ peerId, community, signer, ticket, options, random: prng(seed), now });
    return { peerId, ticket: envelope };
  },
  async add_candidates({ tickets, now, source = "beacon" }) {
    const verified = await Promise.all(tickets.map((t) => verifyTicket(t, { now, community })));
    node.addCandidates(verified, source, now);
    return {};
  },
  opened({ conn, peer, outbound, now }) {
    node.opened(conn, peer, outbound, now);
    return {};
  },
  async receive({ conn, hex: data, text, now }) {
    await node.receive(conn, text ?? fromHex(data), now);
    return {};
  },
  async closed({ conn, now }) {
    await node.closed(conn, now);
    return {};
  },
  dial_failed({ peer, now, reason }) {
    node.dialFailed(peer, now, reason);
    return {};
  },
  tick({ now }) {
    node.tick(now);
    return {};
  },
  block({ peer, now }) {
    node.block(peer, now);
    return {};
  },
  async publish({ topic, data, now }) {
    return { id: await node.publish(topic, data, now) };
  },
  take() {
    return { actions: node.takeActions().map(action) };
  },
  state({ now }) {
    return {
      stats: node.stats,
      live: node.book.liveCount(now),
      known: [...node.book.entries.keys()],
      peers: node.connectedPeers(now).map((p) => ({ peerId: p.peerId, connId: p.connId, caps: p.caps })),
      violations: Object.fromEntries([...node.mesh.conns.values()].map((c) => [c.id, c.violations.length])),
    };
  },
  decode({ hexes }) {
    const results = hexes.map((h) => {
      try {
        return { hex: hex(encodeFrame(decodeFrame(fromHex(h)))) };
      } catch (error) {
        if (error?.code === undefined) throw error;
        return { code: error.code };
      }
    });
    return { results };
  },
};

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  let answer;
  try {
    const request = JSON.parse(line);
    if (request.op === "quit") break;
    const op = ops[request.op];
    if (!op) throw new Error(`unknown op ${request.op}`);
    answer = { ok: true, ...(await op(request)) };
  } catch (error) {
    answer = { ok: false, error: String(error?.stack ?? error) };
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}
