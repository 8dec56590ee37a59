// Signaling through the mesh in the browser's protocol module (static/swarm/protocol/meshsignal.js)
// against tests/vectors/meshsig.json, which pytest checks for Python (tests/test_meshsignal.py),
// and fake-clock unit tests of what the scenarios do not cover.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import * as ed25519 from "../../static/swarm/protocol/ed25519.js";
import { fromHex } from "../../static/swarm/protocol/encoding.js";
import { ProtocolError } from "../../static/swarm/protocol/errors.js";
import {
  DOMAIN_MESHSIG,
  MAX_AGE_MS,
  MAX_SIGNAL_BYTES,
  MeshSignal,
  makeSignal,
  newSessionId,
  parseSignal,
  signalId,
  VIOLATIONS,
} from "../../static/swarm/protocol/meshsignal.js";
import { decodeFrame, encodeFrame, MAX_REACH_PEERS, MAX_SIGNAL_HOPS } from "../../static/swarm/protocol/wire.js";

const vectors = JSON.parse(readFileSync(new URL("../vectors/meshsig.json", import.meta.url), "utf8"));
const NOW = vectors.now;
const KEYS = vectors.keys;
const MESSAGES = vectors.messages;
const pid = (label) => KEYS[label].peer_id;
const labelOf = new Map(Object.keys(KEYS).map((label) => [pid(label), label]));
const signers = {};
for (const label of Object.keys(KEYS)) signers[label] = await ed25519.signerFromSeed(fromHex(KEYS[label].seed_hex));
const rejectsWith = (promise, code, message) => assert.rejects(promise, (e) => e instanceof ProtocolError && e.code === code, message);
const camel = (name) => name.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

test("the constants are the spec's", () => {
  assert.equal(DOMAIN_MESHSIG, "swarm/meshsig/v1");
  assert.deepEqual([MAX_SIGNAL_BYTES, MAX_AGE_MS, MAX_SIGNAL_HOPS, MAX_REACH_PEERS], [8192, 60_000, 6, 64]);
  const ids = new Set(Array.from({ length: 50 }, newSessionId));
  assert.equal(ids.size, 50);
  for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{21}[AQgw]$/);
});

const makeArgs = (make) => ({
  to: pid(make.to),
  sid: make.sid,
  kind: make.kind,
  payload: make.payload,
  createdAt: make.created_at,
  hops: make.hops,
});

test("valid vectors parse and are made again byte for byte", async () => {
  for (const c of vectors.valid) {
    const body = c.envelope.body;
    const m = await parseSignal(c.envelope, { now: NOW });
    assert.equal(m.id, c.id, c.name);
    assert.equal(await signalId(body), c.id, c.name);
    assert.deepEqual([m.kind, m.from, m.to, m.sid, m.createdAt, m.hops], [body.kind, body.from, body.to, body.sid, body.created_at, body.hops], c.name);
    assert.deepEqual(m.payload, body.payload, c.name);
    assert.deepEqual(await makeSignal(signers[c.make.signer], makeArgs(c.make)), c.envelope, c.name);
  }
});

test("invalid vectors fail with their code", async () => {
  for (const c of vectors.invalid) await rejectsWith(parseSignal(c.envelope, { now: NOW }), c.error, c.name);
});

test("making what receivers refuse fails with the same codes", async () => {
  for (const c of vectors.make_invalid) await rejectsWith(makeSignal(signers[c.make.signer], makeArgs(c.make)), c.error, c.name);
  for (const payload of [1.5, { x: Number.NaN }, 2 ** 60]) {
    await rejectsWith(makeSignal(signers.alice, { to: pid("bob"), sid: newSessionId(), kind: "offer", payload, createdAt: NOW }), "bad_signal");
  }
});

// --- scenarios ---

const ids = {};
for (const [label, value] of Object.entries(MESSAGES)) {
  if (value && typeof value === "object" && !Array.isArray(value) && value.body && typeof value.body === "object") ids[label] = await signalId(value.body);
}

function frameOf(value) {
  const frame = value.t === "reach" ? { t: "reach", peers: value.peers.map(pid) } : { t: "signal", hops: value.hops, msg: MESSAGES[value.msg] };
  return decodeFrame(encodeFrame(frame)); // through the codec, as frames arrive
}

function expected(entry) {
  if (entry[0] === "signal") return ["signal", entry[1], entry[2], ids[entry[3]]];
  if (entry[0] === "deliver") return ["deliver", ids[entry[1]], entry[2], entry[3]];
  if (entry[0] === "drop" && entry.length === 5) return [...entry.slice(0, 4), ids[entry[4]]]; // a drop naming its message
  return entry;
}

async function described(action) {
  if (action.type === "send") {
    if (action.frame.t === "reach") return ["reach", action.connId, action.frame.peers.map((p) => labelOf.get(p))];
    return ["signal", action.connId, action.frame.hops, await signalId(action.frame.msg.body)];
  }
  if (action.type === "deliver") return ["deliver", action.message.id, action.connId, action.traveled];
  return ["drop", action.code, action.violation, action.connId, action.id];
}

async function runScenario(scenario) {
  const limits = Object.fromEntries(Object.entries(scenario.limits).map(([k, v]) => [camel(k), v]));
  const node = new MeshSignal({ peerId: pid("alice"), signer: signers.alice, limits, now: NOW });
  for (const [index, step] of scenario.steps.entries()) {
    const { at, op } = step;
    if (op === "connected") node.connected(step.conn, pid(step.peer), step.caps, at);
    else if (op === "disconnected") node.disconnected(step.conn, at);
    else if (op === "receive") await node.receive(step.conn, frameOf(step.frame), at);
    else if (op === "tick") node.tick(at);
    else {
      const id = await node.send({ to: pid(step.to), sid: step.sid, kind: step.kind, payload: step.payload, now: at, hops: step.hops ?? undefined });
      assert.equal(id, ids[step.as], `${scenario.name} step ${index}: id`);
    }
    const want = step.expect.map(expected);
    const actions = [];
    for (const action of node.takeActions()) actions.push(await described(action));
    // Drops name their message only where the scenario says which it is.
    const got = actions.map((a, i) => (a[0] === "drop" && want[i]?.[0] === "drop" ? a.slice(0, want[i].length) : a));
    assert.deepEqual(got, want, `${scenario.name} step ${index} (${op})`);
  }
  return node;
}

test("scenarios give exactly the expected actions", async () => {
  for (const scenario of vectors.scenarios) await runScenario(scenario);
});

test("the bad input scenario names every violation code", () => {
  const steps = vectors.scenarios.find((s) => s.name === "bad_input").steps;
  const blamed = new Set(steps.flatMap((s) => s.expect.filter((e) => e[0] === "drop" && e[2]).map((e) => e[1])));
  assert.deepEqual([...blamed].sort(), [...VIOLATIONS].sort());
});

// --- fake-clock unit tests beyond the scenarios ---

// alice - bob - carol - ...: each connected to the next, reach adverts exchanged.
async function line(n) {
  const labels = Object.keys(KEYS).slice(0, n);
  const nodes = labels.map((label) => new MeshSignal({ peerId: pid(label), signer: signers[label], now: NOW }));
  for (let i = 0; i < n - 1; i++) {
    nodes[i].connected(`${i}>${i + 1}`, pid(labels[i + 1]), ["signal"], NOW);
    nodes[i + 1].connected(`${i + 1}>${i}`, pid(labels[i]), ["signal"], NOW);
  }
  await run(nodes, NOW);
  for (const node of nodes) node.tick(NOW + 5000);
  await run(nodes, NOW + 5000);
  return nodes;
}

// Carry frames until nothing moves; returns [node index, action] of what was not a send.
async function run(nodes, now) {
  const out = [];
  let moved = true;
  while (moved) {
    moved = false;
    for (const [i, node] of nodes.entries()) {
      for (const action of node.takeActions()) {
        if (action.type !== "send") {
          out.push([i, action]);
          continue;
        }
        const j = Number(action.connId.split(">")[1]);
        await nodes[j].receive(`${j}>${i}`, decodeFrame(encodeFrame(action.frame)), now);
        moved = true;
      }
    }
  }
  return out;
}

test("a session across four hops floods once, then goes unicast", async () => {
  const nodes = await line(5);
  const [alice, erin] = [nodes[0], nodes[4]];
  const sid = newSessionId();
  await alice.send({ to: erin.peerId, sid, kind: "offer", payload: { sdp: "o" }, now: NOW + 6000 });
  await alice.send({ to: erin.peerId, sid, kind: "candidate", payload: { c: 1 }, now: NOW + 6000 });
  let out = await run(nodes, NOW + 6000);
  assert.deepEqual(
    out.map(([i, a]) => [i, a.type, a.message?.kind, a.traveled]),
    [[4, "deliver", "offer", 4]],
  );
  assert.equal(alice.pending.get(erin.peerId).length, 1);
  await erin.send({ to: alice.peerId, sid, kind: "answer", payload: { sdp: "a" }, now: NOW + 6100 });
  out = await run(nodes, NOW + 6100);
  assert.deepEqual(
    out.map(([i, a]) => [i, a.message.kind]),
    [
      [0, "answer"],
      [4, "candidate"],
    ],
  );
  assert.equal(alice.pending.size, 0);
  assert.equal(
    nodes.reduce((n, x) => n + x.stats.relayed, 0),
    9,
  );
  assert.equal(
    nodes.reduce((n, x) => n + x.stats.flooded, 0),
    2,
  );
});

test("a learned route lives routeTtlMs after its last message", async () => {
  const nodes = await line(5);
  const [alice, bob, erin] = [nodes[0], nodes[1], nodes[4]];
  const sid = newSessionId();
  await erin.send({ to: alice.peerId, sid, kind: "offer", payload: 1, now: NOW + 6000 });
  await run(nodes, NOW + 6000);
  assert.deepEqual([alice.routes.get(erin.peerId).dist, bob.routes.get(erin.peerId).dist], [4, 3]);
  const ttl = bob.limits.routeTtlMs;
  await alice.send({ to: erin.peerId, sid, kind: "candidate", payload: 2, now: NOW + 6000 + ttl - 1 });
  let out = await run(nodes, NOW + 6000 + ttl - 1);
  assert.deepEqual(
    out.map(([, a]) => a.message?.payload),
    [2],
  );
  await alice.send({ to: erin.peerId, sid, kind: "candidate", payload: 3, now: NOW + 6000 + ttl });
  out = await run(nodes, NOW + 6000 + ttl);
  assert.deepEqual(
    out.map(([i, a]) => [i, a.code, a.connId]),
    [[0, "no_route", null]],
  );
});

test("hasRoute knows neighbours, their reach and learned routes", async () => {
  const nodes = await line(5);
  const [alice, bob, carol, dave, erin] = nodes;
  const now = NOW + 6000;
  assert.equal(alice.hasRoute(bob.peerId, now), true); // a neighbour
  assert.equal(alice.hasRoute(carol.peerId, now), true); // in bob's reach
  // Three and four hops: beyond anyone's reach adverts, only a flood would find them.
  assert.equal(alice.hasRoute(dave.peerId, now), false);
  assert.equal(alice.hasRoute(erin.peerId, now), false);
  await erin.send({ to: alice.peerId, sid: newSessionId(), kind: "offer", payload: 1, now });
  await run(nodes, now);
  assert.equal(alice.hasRoute(erin.peerId, now), true); // learned from erin's offer
  assert.equal(alice.hasRoute(erin.peerId, now + alice.limits.routeTtlMs), false);
  bob.disconnected("1>0", now);
  alice.disconnected("0>1", now);
  assert.equal(alice.hasRoute(carol.peerId, now), false);
});

test("the sender is held to its own rate and queue limits", async () => {
  const alice = new MeshSignal({ peerId: pid("alice"), signer: signers.alice, limits: { originBurst: 3, maxPending: 1, maxPendingPeers: 1 }, now: NOW });
  alice.connected("c", pid("bob"), ["signal"], NOW);
  alice.takeActions();
  const sid = newSessionId();
  await alice.send({ to: pid("erin"), sid, kind: "offer", payload: 1, now: NOW });
  for (const payload of [2, 3, 4]) await alice.send({ to: pid("erin"), sid, kind: "candidate", payload, now: NOW });
  const codes = () =>
    alice
      .takeActions()
      .filter((a) => a.type === "drop")
      .map((a) => a.code);
  assert.deepEqual(codes(), ["queue_full", "rate_limited"]);
  await alice.send({ to: pid("frank"), sid, kind: "offer", payload: 5, now: NOW + 1000 });
  await alice.send({ to: pid("frank"), sid, kind: "candidate", payload: 6, now: NOW + 1000 });
  assert.deepEqual(codes(), ["queue_full"]);
  assert.equal(alice.nextDeadline(NOW + 1000), NOW + alice.limits.discoveryMs);
});

test("an offer flooded with nothing held is due a tick when its discovery ends (no_route, its id)", async () => {
  const alice = new MeshSignal({ peerId: pid("alice"), signer: signers.alice, now: NOW });
  alice.connected("c", pid("bob"), ["signal"], NOW);
  alice.takeActions();
  const id = await alice.send({ to: pid("erin"), sid: newSessionId(), kind: "offer", payload: null, now: NOW });
  alice.takeActions();
  const due = alice.nextDeadline(NOW + 1);
  assert.equal(due, NOW + alice.limits.discoveryMs);
  alice.tick(due);
  assert.deepEqual(
    alice
      .takeActions()
      .filter((a) => a.type === "drop")
      .map((a) => [a.code, a.id]),
    [["no_route", id]],
  );
});

test("two copies taken at once are delivered once (the id is checked again after the signature)", async () => {
  const bob = new MeshSignal({ peerId: pid("bob"), signer: signers.bob, now: NOW });
  bob.connected("c1", pid("alice"), ["signal"], NOW);
  bob.connected("c2", pid("carol"), ["signal"], NOW);
  bob.takeActions();
  const msg = await makeSignal(signers.alice, { to: pid("bob"), sid: newSessionId(), kind: "offer", payload: null, createdAt: NOW });
  const frame = { t: "signal", hops: 2, msg };
  await Promise.all([bob.receive("c1", frame, NOW), bob.receive("c2", frame, NOW)]);
  assert.deepEqual(
    bob.takeActions().map((a) => a.code ?? a.type),
    ["deliver", "duplicate"],
  );
});
