// The DHT in the browser's protocol module (static/swarm/protocol/dht.js) against
// tests/vectors/dht.json, which pytest checks for Python (tests/test_dht.py), and fake-clock
// unit tests of the core: bucket eviction, lookups, timeouts, bad answers, limits.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  bucketIndex,
  DHT_LIMITS,
  DOMAIN_PROVIDE,
  Dht,
  distance,
  makeProviderRecord,
  nodeId,
  providerKey,
  RecordStore,
  RoutingTable,
  verifyContact,
  verifyRecord,
} from "../../static/swarm/protocol/dht.js";
import * as ed25519 from "../../static/swarm/protocol/ed25519.js";
import { b64urlEncode, fromHex, hex, peerIdForKey, sha256, utf8 } from "../../static/swarm/protocol/encoding.js";
import { ProtocolError } from "../../static/swarm/protocol/errors.js";
import { makeTicket } from "../../static/swarm/protocol/ticket.js";
import { decodeFrame, encodeFrame } from "../../static/swarm/protocol/wire.js";

const vectors = JSON.parse(readFileSync(new URL("../vectors/dht.json", import.meta.url), "utf8"));
const NOW = vectors.now;
const signers = {};
for (const [label, k] of Object.entries(vectors.keys)) signers[label] = await ed25519.signerFromSeed(fromHex(k.seed_hex));
const rejectsWith = (promise, code, message) => assert.rejects(promise, (e) => e instanceof ProtocolError && e.code === code, message);
const toBig = (bytes) => BigInt(`0x${hex(bytes) || "0"}`);

test("node ids, distances, buckets and provider keys are the vectors'", async () => {
  const ids = vectors.ids;
  for (const c of ids.node_ids) assert.equal(hex(await nodeId(c.peer_id)), c.node_id);
  for (const c of ids.distances) {
    const [a, b] = [fromHex(c.a), fromHex(c.b)];
    assert.equal(hex(distance(a, b)), c.distance);
    assert.equal(bucketIndex(a, b), c.bucket);
    assert.equal(bucketIndex(b, a), c.bucket);
  }
  for (const c of ids.provider_keys) assert.equal(hex(providerKey(c.manifest)), c.key);
  await rejectsWith(nodeId("alice"), "bad_body");
  assert.equal(DOMAIN_PROVIDE, "swarm/provide/v1");
  assert.deepEqual([DHT_LIMITS.k, DHT_LIMITS.alpha, DHT_LIMITS.replicas, DHT_LIMITS.valueWindow, DHT_LIMITS.paths], [20, 3, 20, 40, 3]);
});

test("a routing table gives the closest contacts to a target, nearest first", async () => {
  const c = vectors.ids.closest;
  const table = new RoutingTable(await nodeId(c.own), { k: 20, spare: 8 });
  for (const peerId of c.peers) {
    const id = await nodeId(peerId);
    table.heard({ peerId, id, n: toBig(id), ticket: {}, issuedAt: NOW, expiresAt: NOW + 1, failures: 0 });
  }
  assert.deepEqual(
    table.closest(toBig(fromHex(c.target)), 20).map((x) => x.peerId),
    c.closest_20,
  );
});

test("valid records verify and are made again byte for byte", async () => {
  for (const c of vectors.records.valid) {
    const record = await verifyRecord(c.kind, c.envelope, { now: NOW, community: "main" });
    assert.equal(hex(record.key), c.key, c.name);
    if (c.kind === "provider") {
      const m = c.make;
      const again = await makeProviderRecord(signers[m.signer], {
        peerId: vectors.keys[m.signer].peer_id,
        community: "main",
        manifest: m.manifest,
        chunks: m.chunks,
        now: m.now,
        ttlMs: m.ttl_ms,
      });
      assert.deepEqual(again, c.envelope, c.name);
    }
  }
});

test("invalid records are refused with their code", async () => {
  for (const c of vectors.records.invalid) {
    await rejectsWith(verifyRecord(c.kind, c.envelope, { now: c.now, community: "main" }), c.error, c.name);
  }
});

test("contacts: a ticket proves the peer id and community for an hour", async () => {
  for (const c of vectors.contacts) {
    if (c.error === null) {
      const contact = await verifyContact(c.envelope, { now: c.now, community: "main" });
      assert.equal(contact.peerId, c.envelope.body.peer_id, c.name);
    } else await rejectsWith(verifyContact(c.envelope, { now: c.now, community: "main" }), c.error, c.name);
  }
});

// --- the core on a fake clock ---

let made = 0;
async function peer(limits = {}) {
  const seed = await sha256(utf8.encode(`dht js ${made++}`));
  const signer = await ed25519.signerFromSeed(seed);
  const peerId = await peerIdForKey(signer.publicKey);
  const ticket = await makeTicket(signer, { peerId, community: "main", now: NOW, ttlMs: 600_000 });
  return { peerId, signer, ticket, dht: await Dht.create({ peerId, community: "main", signer, ticket, limits, now: NOW }) };
}

function network(peers) {
  const byId = new Map(peers.map((p) => [p.peerId, p]));
  const net = { down: new Set(), done: [], drops: [] };
  net.pump = async (now) => {
    for (let moved = true; moved; ) {
      moved = false;
      for (const p of peers) {
        for (const action of p.dht.takeActions()) {
          moved = true;
          if (action.type === "send") {
            const frame = decodeFrame(encodeFrame(action.frame));
            if (!net.down.has(action.peerId)) await byId.get(action.peerId).dht.receive(p.peerId, frame, now);
          } else if (action.type === "done") net.done.push(action);
          else net.drops.push(action);
        }
      }
    }
  };
  return net;
}

async function swarm(n, limits = {}) {
  const peers = [];
  for (let i = 0; i < n; i++) peers.push(await peer(limits));
  const net = network(peers);
  for (let i = 1; i < n; i++) {
    await peers[i].dht.seen(peers[i - 1].ticket, NOW);
    await peers[i].dht.findNode(peers[i].dht.id, NOW);
    await net.pump(NOW);
  }
  return { net, peers };
}

test("lookups converge: peers, providers and the k closest", async () => {
  const { net, peers } = await swarm(30);
  for (const p of peers) await p.dht.setTicket(p.ticket, NOW + 10);
  await net.pump(NOW + 10);
  net.done.length = 0;
  for (let i = 0; i < 30; i += 4) await peers[i].dht.findPeer(peers[(i * 7 + 5) % 30].peerId, NOW + 20);
  await net.pump(NOW + 20);
  assert.ok(net.done.length > 0);
  net.done.forEach((d, j) => {
    assert.equal(d.ok, true);
    assert.equal(d.records[0].peerId, peers[(j * 4 * 7 + 5) % 30].peerId);
    assert.ok(d.hops <= 3);
  });
  const manifest = b64urlEncode(await sha256(utf8.encode("file")));
  await peers[3].dht.provide(manifest, 7, NOW + 30);
  await net.pump(NOW + 30);
  net.done.length = 0;
  await peers[25].dht.findProviders(manifest, NOW + 40);
  await net.pump(NOW + 40);
  assert.deepEqual(
    net.done.map((d) => [d.ok, d.records.map((r) => [r.peerId, r.chunks])]),
    [[true, [[peers[3].peerId, 7]]]],
  );
  net.done.length = 0;
  const target = await sha256(utf8.encode("anywhere"));
  await peers[0].dht.findNode(target, NOW + 50);
  await net.pump(NOW + 50);
  const ranked = peers.slice(1).sort((a, b) => ((toBig(a.dht.id) ^ toBig(target)) < (toBig(b.dht.id) ^ toBig(target)) ? -1 : 1));
  assert.deepEqual(
    net.done[0].contacts.map((t) => t.body.peer_id),
    ranked.slice(0, 20).map((p) => p.peerId),
  );
  assert.equal(net.drops.filter((d) => d.violation).length, 0);
});

test("a lookup ends not_found, times out its requests, stops at its deadline", async () => {
  const { net, peers } = await swarm(6, { requestTimeoutMs: 60_000 });
  net.done.length = 0;
  const missing = b64urlEncode(await sha256(utf8.encode("nobody")));
  await peers[0].dht.findProviders(missing, NOW + 1);
  await net.pump(NOW + 1);
  assert.deepEqual(
    net.done.map((d) => [d.ok, d.code]),
    [[false, "not_found"]],
  );
  net.done.length = 0;
  net.down = new Set(peers.slice(1).map((p) => p.peerId));
  await peers[0].dht.findPeer(peers[3].peerId, NOW + 2);
  await net.pump(NOW + 2);
  assert.ok(peers[0].dht.nextDeadline(NOW + 2) <= NOW + 2 + 30_000);
  await peers[0].dht.tick(NOW + 2 + 29_999);
  assert.deepEqual(net.done, []);
  await peers[0].dht.tick(NOW + 2 + 30_000);
  await net.pump(NOW + 2 + 30_000);
  assert.deepEqual(
    net.done.map((d) => [d.ok, d.code]),
    [[false, "timeout"]],
  );
  // unreachable fails a request at once
  const [a, b] = [await peer(), await peer()];
  await a.dht.seen(b.ticket, NOW);
  await a.dht.findPeer(b.peerId, NOW);
  const [send] = a.dht.takeActions();
  assert.deepEqual([send.type, send.peerId, send.ticket], ["send", b.peerId, b.ticket]);
  a.dht.unreachable(b.peerId, NOW + 1);
  assert.deepEqual(
    a.dht.takeActions().map((x) => [x.type, x.code, x.violation ?? null]),
    [
      ["drop", "unreachable", false],
      ["done", "not_found", null],
    ],
  );
});

test("a full bucket checks its least recently seen contact before evicting it", async () => {
  const me = await peer({ k: 2, spare: 1 });
  const mates = [];
  while (mates.length < 3) {
    const p = await peer();
    if (bucketIndex(me.dht.id, p.dht.id) === 255) mates.push(p);
  }
  const [first, second, third] = mates;
  await me.dht.seen(first.ticket, NOW);
  await me.dht.seen(second.ticket, NOW);
  assert.deepEqual(me.dht.takeActions(), []);
  await me.dht.seen(third.ticket, NOW + 1);
  let [probe] = me.dht.takeActions();
  assert.deepEqual([probe.peerId, probe.frame.t, hex(probe.frame.target)], [first.peerId, "dht_find_node", hex(me.dht.id)]);
  await first.dht.receive(me.peerId, probe.frame, NOW + 2);
  const [answer] = first.dht.takeActions().filter((x) => x.type === "send");
  await me.dht.receive(first.peerId, answer.frame, NOW + 3);
  assert.deepEqual(
    me.dht.table.buckets.get(255).map((c) => c.peerId),
    [second.peerId, first.peerId],
  );
  await me.dht.seen(third.ticket, NOW + 4);
  [probe] = me.dht.takeActions().filter((x) => x.type === "send");
  assert.equal(probe.peerId, second.peerId);
  await me.dht.tick(NOW + 4 + 5_000);
  assert.deepEqual(
    me.dht.table.buckets.get(255).map((c) => c.peerId),
    [first.peerId, third.peerId],
  );
});

test("bad answers are dropped and blamed; bad senders too", async () => {
  const [a, b, c] = [await peer(), await peer(), await peer()];
  await a.dht.seen(b.ticket, NOW);
  await a.dht.findPeer(c.peerId, NOW);
  const [send] = a.dht.takeActions();
  const forged = structuredClone(c.ticket);
  forged.body.nonce = "forgedforged";
  const other = await makeTicket(c.signer, { peerId: c.peerId, community: "other", now: NOW });
  const provider = await makeProviderRecord(c.signer, { peerId: c.peerId, community: "main", manifest: b64urlEncode(new Uint8Array(32)), chunks: 1, now: NOW });
  const answer = { t: "dht_value", id: send.frame.id, ticket: b.ticket, records: [forged, b.ticket, provider], nodes: [forged, other] };
  await a.dht.receive(b.peerId, answer, NOW + 1);
  const actions = a.dht.takeActions();
  assert.deepEqual(
    actions.filter((x) => x.type === "drop").map((x) => [x.code, x.violation]),
    [
      ["bad_signature", true],
      ["wrong_key", true],
      ["bad_signature", true],
      ["bad_signature", true],
      ["wrong_community", true],
    ],
  );
  assert.deepEqual(
    actions.filter((x) => x.type === "done").map((d) => [d.ok, d.code, d.messages]),
    [[false, "not_found", 1]],
  );
  assert.equal(a.dht.table.get(b.peerId), undefined, "a peer caught lying leaves the table");
  await a.dht.receive(b.peerId, answer, NOW + 2);
  await a.dht.receive(c.peerId, { t: "dht_nodes", id: 9, ticket: b.ticket, nodes: [] }, NOW + 2);
  await a.dht.receive(b.peerId, { t: "dht_nodes", id: 9, ticket: forged, nodes: [] }, NOW + 2);
  await a.dht.receive(b.peerId, { t: "dht_nodes", id: 9, ticket: { v: 1 }, nodes: [] }, NOW + 2);
  assert.deepEqual(
    a.dht.takeActions().map((x) => [x.code, x.violation]),
    [
      ["unexpected_frame", true],
      ["peer_mismatch", true],
      ["bad_signature", true],
      ["bad_envelope", true],
    ],
  );
  // A wrong answer type for the lookup.
  await a.dht.seen(b.ticket, NOW + 3);
  await a.dht.findNode(c.dht.id, NOW + 3);
  const [find] = a.dht.takeActions();
  await a.dht.receive(b.peerId, { t: "dht_stored", id: find.frame.id, ticket: b.ticket, codes: [] }, NOW + 4);
  assert.deepEqual(
    a.dht
      .takeActions()
      .filter((x) => x.type === "drop")
      .map((x) => [x.code, x.violation]),
    [["unexpected_frame", true]],
  );
  assert.equal(a.dht.table.get(b.peerId), undefined);
});

test("a value lookup asks on past the k closest while they have no record", async () => {
  const a = await peer({ k: 2, valueWindow: 3 });
  const target = await peer();
  const three = [await peer(), await peer(), await peer()];
  const dist = (p) => {
    let d = 0n;
    for (let i = 0; i < 32; i++) d = (d << 8n) | BigInt(p.dht.id[i] ^ target.dht.id[i]);
    return d;
  };
  const [x, y, z] = three.sort((p, q) => (dist(p) < dist(q) ? -1 : 1));
  await a.dht.seen(x.ticket, NOW);
  await a.dht.seen(y.ticket, NOW);
  await a.dht.findPeer(target.peerId, NOW);
  const asked = a.dht.takeActions().filter((s) => s.type === "send");
  assert.deepEqual(asked.map((s) => s.peerId).sort(), [x.peerId, y.peerId].sort());
  // Both answer with no record and z, farther than both: past the k = 2 closest.
  const later = [];
  for (const send of asked) {
    const o = send.peerId === x.peerId ? x : y;
    await a.dht.receive(o.peerId, { t: "dht_value", id: send.frame.id, ticket: o.ticket, records: [], nodes: [z.ticket] }, NOW + 1);
    later.push(...a.dht.takeActions().filter((s) => s.type === "send"));
  }
  assert.deepEqual(
    later.map((s) => s.peerId),
    [z.peerId],
  );
  await a.dht.receive(z.peerId, { t: "dht_value", id: later[0].frame.id, ticket: z.ticket, records: [], nodes: [] }, NOW + 2);
  assert.deepEqual(
    a.dht
      .takeActions()
      .filter((d) => d.type === "done")
      .map((d) => [d.ok, d.code, d.messages]),
    [[false, "not_found", 3]],
  );
});

// A scripted eclipse: `a` knows an honest contact and a colluder; colluders answer first, with
// the two colluders closest to the target (no record); the honest contact names the record's
// holder (farther than the colluders). Returns the lookup's done action.
async function eclipse(paths) {
  const limits = { k: 2, alpha: 2, valueWindow: 2, paths };
  const a = await peer(limits);
  const target = await peer();
  const others = [];
  for (let i = 0; i < 8; i++) others.push(await peer());
  const dist = (p) => {
    let d = 0n;
    for (let i = 0; i < 32; i++) d = (d << 8n) | BigInt(p.dht.id[i] ^ target.dht.id[i]);
    return d;
  };
  others.sort((p, q) => (dist(p) < dist(q) ? -1 : 1));
  const [c1, c2, holder, honest, colluder] = others;
  const colluders = new Set([c1.peerId, c2.peerId, colluder.peerId]);
  const byId = new Map(others.map((p) => [p.peerId, p]));
  await a.dht.seen(honest.ticket, NOW);
  await a.dht.seen(colluder.ticket, NOW);
  await a.dht.findPeer(target.peerId, NOW);
  for (let round = 1; round < 10; round++) {
    const actions = a.dht.takeActions();
    const done = actions.find((x) => x.type === "done");
    if (done) return done;
    // The colluders answer first (they are quick to, in this scenario).
    const sends = actions.filter((x) => x.type === "send");
    sends.sort((x, y) => Number(colluders.has(y.peerId)) - Number(colluders.has(x.peerId)));
    for (const send of sends) {
      const o = byId.get(send.peerId);
      const base = { t: "dht_value", id: send.frame.id, ticket: o.ticket };
      let answer = { ...base, records: [], nodes: [c1.ticket, c2.ticket] };
      if (o === honest) answer = { ...base, records: [], nodes: [holder.ticket] };
      else if (o === holder) answer = { ...base, records: [target.ticket], nodes: [] };
      else assert.ok(colluders.has(o.peerId));
      await a.dht.receive(o.peerId, answer, NOW + round);
    }
  }
  throw new Error("the lookup did not end");
}

test("disjoint paths: colluders that capture one path of a value lookup do not steer the other", async () => {
  const single = await eclipse(1);
  assert.deepEqual([single.ok, single.code], [false, "not_found"], "one path: the colluders crowd the holder out");
  const disjoint = await eclipse(2);
  assert.equal(disjoint.ok, true, "two paths: the honest one reaches the holder");
  assert.equal(disjoint.records.length, 1);
});

test("requests and stores are rate limited per peer; stores answer a code per record", async () => {
  const a = await peer({ requestBurst: 3, requestIntervalMs: 100, storeBurst: 1, storeIntervalMs: 1000 });
  const b = await peer();
  for (let i = 0; i < 4; i++) await a.dht.receive(b.peerId, { t: "dht_find_node", id: i, ticket: b.ticket, target: b.dht.id }, NOW);
  assert.deepEqual(
    a.dht
      .takeActions()
      .filter((x) => x.type === "drop")
      .map((x) => [x.code, x.violation]),
    [["rate_limited", true]],
  );
  const good = await makeProviderRecord(b.signer, { peerId: b.peerId, community: "main", manifest: b64urlEncode(new Uint8Array(32)), chunks: 1, now: NOW });
  const expired = await makeProviderRecord(b.signer, {
    peerId: b.peerId,
    community: "main",
    manifest: b64urlEncode(new Uint8Array(32)),
    chunks: 1,
    now: NOW - 1_800_000,
  });
  const forged = structuredClone(good);
  forged.body.chunks = 2;
  await a.dht.receive(b.peerId, { t: "dht_store", id: 5, ticket: b.ticket, kind: "provider", records: [good, good, expired, forged, b.ticket] }, NOW + 1000);
  const [sent] = a.dht.takeActions().filter((x) => x.type === "send");
  assert.deepEqual(sent.frame.codes, ["stored", "replay", "expired", "bad_signature", "bad_signature"]);
  await a.dht.receive(b.peerId, { t: "dht_store", id: 6, ticket: b.ticket, kind: "peer", records: [] }, NOW + 1100);
  assert.deepEqual(
    a.dht.takeActions().map((x) => x.code),
    ["rate_limited"],
  );
});

test("the record store is bounded per publisher, per key and in all", async () => {
  const store = new RecordStore(new Uint8Array(32), { ...DHT_LIMITS, maxRecords: 4, maxPerPublisher: 2, maxPerKey: 2 });
  const [p1, p2, p3, p4] = [await peer(), await peer(), await peer(), await peer()];
  const rec = async (p, key, now = NOW) =>
    verifyRecord("provider", await makeProviderRecord(p.signer, { peerId: p.peerId, community: "main", manifest: b64urlEncode(key), chunks: 1, now }), {
      now,
      community: "main",
    });
  const k = (b) => new Uint8Array(32).fill(b);
  const low = (b) => Object.assign(new Uint8Array(32), { 31: b });
  assert.equal(store.put(await rec(p1, k(1))), "stored");
  assert.equal(store.put(await rec(p1, k(2))), "stored");
  assert.equal(store.put(await rec(p1, k(3))), "store_full");
  assert.equal(store.put(await rec(p2, k(1))), "stored");
  assert.equal(store.put(await rec(p3, k(1))), "store_full");
  assert.equal(store.put(await rec(p3, k(1), NOW + 1)), "stored");
  assert.equal(store.put(await rec(p2, k(1), NOW + 2)), "stored");
  assert.equal(store.put(await rec(p2, k(1), NOW + 2)), "replay");
  assert.equal(store.put(await rec(p3, low(1))), "stored");
  assert.equal(store.size, 4);
  assert.equal(store.put(await rec(p4, k(255))), "store_full");
  assert.equal(store.put(await rec(p2, low(2))), "stored");
  assert.equal(store.size, 4);
  assert.equal(store.put(await rec(p2, low(3))), "store_full");
  store.prune(NOW + 1_800_000 + 10);
  assert.equal(store.size, 0);
});
