// Repair by peers in the page (static/swarm/content/repair.js): the pure planner on a fake
// clock (warm-up, decisions, super-peer evidence, budget accounting of keyless copies,
// manifest learning and its bounds, fetch deadlines, announcements, stop), then the whole
// adapter over real file services wired in memory: volunteers learn a manifest from a `have`
// and a manifest request, fetch keyless copies, keep and advertise them as replicas, serve a
// new page after the sharer left, announce `spare 0, slots 0` once when they stop, and never
// fetch again a copy the person removed.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";

import { ContentStore } from "../../static/swarm/adapters/contentstore.js";
import { FileService } from "../../static/swarm/content/files.js";
import { keepPlan, storedSize, SWARM_ROLE } from "../../static/swarm/content/keeping.js";
import { ASK_TIMEOUT_MS, MAX_ASKING, RepairPlanner, RepairService, spareOf } from "../../static/swarm/content/repair.js";
import { digestId } from "../../static/swarm/protocol/chunks.js";
import * as ed25519 from "../../static/swarm/protocol/ed25519.js";
import { peerIdForKey } from "../../static/swarm/protocol/encoding.js";
import { decodeFrame, encodeFrame } from "../../static/swarm/protocol/wire.js";

const T0 = 1_800_000_000_000;
const CONFIG = { tickMs: 1_000, announceMs: 10_000, warmupMs: 5_000, workerGraceMs: 60_000, fetchTimeoutMs: 120_000 };

async function signer(label) {
  return ed25519.signerFromSeed(createHash("sha256").update(label).digest());
}
async function peerIdOf(label) {
  return peerIdForKey((await signer(label)).publicKey);
}
const mid = (label) => digestId(new TextEncoder().encode(label));

const [SELF, A, B, C, SP] = await Promise.all(["self", "a", "b", "c", "sp"].map(peerIdOf));
const [M1, M2, M3, M4, M5, M6] = await Promise.all(["m1", "m2", "m3", "m4", "m5", "m6"].map(mid));

function planner(now = T0, config = CONFIG) {
  const p = new RepairPlanner({ selfId: SELF, config });
  p.start(now);
  p.setSelf(10_000_000);
  return p;
}

test("nothing is decided during the warm-up; then this volunteer fetches an under-target manifest once", () => {
  const p = planner();
  p.manifest(M1, 4, 1_000, T0);
  p.adverts(A, [{ id: M1, chunks: 4 }], T0);
  assert.deepEqual(p.tick(T0 + 1_000).fetch, []);
  assert.deepEqual(p.tick(T0 + CONFIG.warmupMs - 1).fetch, []);
  const d = p.tick(T0 + CONFIG.warmupMs);
  assert.deepEqual(d.fetch, [M1]);
  assert.equal(d.workerLive, false);
  assert.deepEqual([...p.fetching.keys()], [M1]);
  assert.deepEqual(p.tick(T0 + CONFIG.warmupMs + 1_000).fetch, [], "not twice");
  // Another peer's partial copy is not a source, a cached one (keep false) is not a replica.
  const q = planner();
  q.manifest(M2, 4, 1_000, T0);
  q.adverts(A, [{ id: M2, chunks: 3 }], T0);
  assert.deepEqual(q.tick(T0 + CONFIG.warmupMs).fetch, [], "no complete copy to copy from");
  q.adverts(B, [{ id: M2, chunks: 4, keep: false }], T0);
  assert.deepEqual(q.tick(T0 + CONFIG.warmupMs + 1).fetch, [M2]);
});

test("at target nothing is fetched, and an own fetch is cancelled when others reach it", () => {
  const p = planner();
  p.manifest(M1, 2, 1_000, T0);
  p.adverts(A, [{ id: M1, chunks: 2 }], T0);
  const now = T0 + CONFIG.warmupMs;
  assert.deepEqual(p.tick(now).fetch, [M1]);
  p.adverts(B, [{ id: M1, chunks: 2 }], now);
  p.adverts(C, [{ id: M1, chunks: 2 }], now);
  const d = p.tick(now + 1_000);
  assert.deepEqual(d.cancel, [M1]);
  assert.equal(p.fetching.size, 0);
});

test("a super-peer's recent backfill holds the volunteers back; anyone else's claim does not", () => {
  const p = planner();
  p.manifest(M1, 2, 1_000, T0);
  p.adverts(A, [{ id: M1, chunks: 2 }], T0);
  const now = T0 + CONFIG.warmupMs;
  p.announcement(B, { spare: 0, slots: 0, backfill_at: now - 1_000 }, now, now, false);
  const q = planner();
  q.manifest(M1, 2, 1_000, T0);
  q.adverts(A, [{ id: M1, chunks: 2 }], T0);
  q.announcement(SP, { spare: 0, slots: 0, backfill_at: now - 1_000 }, now, now, true);
  assert.deepEqual(p.tick(now).fetch, [M1], "a page's claim is no evidence");
  const held = q.tick(now);
  assert.equal(held.workerLive, true);
  assert.deepEqual(held.fetch, []);
  // The worker grace (from the page config) passes: the volunteers act.
  assert.deepEqual(q.tick(now - 1_000 + CONFIG.workerGraceMs).fetch, [M1]);
  // A bad announcement has its code and changes nothing.
  assert.throws(() => q.announcement(B, { spare: -1, slots: 0, backfill_at: 0 }, now, now, false), { code: "bad_body" });
});

test("keyless copies count against the keep budget; fetches in flight are reserved in the announcement", () => {
  const keyless = { id: M1, role: SWARM_ROLE, state: "complete", envelope: {}, size: 100_000, chunkCount: 2, addedAt: 1 };
  const download = { id: M2, role: "download", state: "complete", envelope: {}, size: 50_000, chunkCount: 1, addedAt: 2 };
  const plan = keepPlan([keyless, download], { keep: true, budget: 1_000_000 });
  assert.ok(plan.kept.has(M1));
  assert.equal(plan.used, storedSize(keyless) + storedSize(download));
  assert.equal(spareOf(plan), 1_000_000 - plan.used);
  assert.equal(spareOf(keepPlan([keyless], { keep: false, budget: 1_000_000 })), 0, "opted out: no spare");
  // The oldest first: a keyless copy older than a download keeps its place in the budget.
  const tight = keepPlan([keyless, download], { keep: true, budget: storedSize(keyless) + 10 });
  assert.ok(tight.kept.has(M1) && tight.refused.has(M2));

  const p = planner();
  p.setSelf(250_000);
  for (const [id, size] of [
    [M3, 200_000],
    [M4, 100_000],
  ]) {
    p.manifest(id, 2, size, T0);
    p.adverts(A, [{ id, chunks: 2 }], T0);
  }
  const now = T0 + CONFIG.warmupMs;
  assert.deepEqual(p.tick(now).fetch, [M3], "M4 does not fit beside M3");
  assert.deepEqual(p.announcementDue(now), { spare: 50_000, slots: 1, backfill_at: 0 });
  // M3 completes: it is now in the plan's used bytes, so the spare the page gives is smaller.
  p.fetchEnded(M3, true, now + 1);
  p.setSelf(50_000);
  p.adverts(SELF, [{ id: M3, chunks: 2 }], now + 1);
  assert.deepEqual(p.tick(now + 2).fetch, [], "no room for M4");
  p.setSelf(150_000);
  assert.deepEqual(p.tick(now + 3).fetch, [M4]);
});

test("manifests are learned from connected holders, a few at a time, another holder after a timeout", () => {
  const p = planner();
  const ids = [M1, M2, M3, M4, M5, M6];
  for (const id of ids) p.adverts(A, [{ id, chunks: 3 }], T0);
  p.adverts(B, [{ id: M1, chunks: 5 }], T0);
  assert.deepEqual(p.toAsk(new Set(), T0), [], "nobody connected to ask");
  const asked = p.toAsk(new Set([A, B]), T0);
  assert.equal(asked.length, MAX_ASKING);
  assert.deepEqual(asked[0], [M1, B], "the most complete holder first");
  assert.deepEqual(p.toAsk(new Set([A, B]), T0 + 1_000), [], "at most MAX_ASKING in flight");
  // B had no manifest: A is asked the next time round... after the re-ask gap.
  assert.equal(p.awaits(M1, B), true);
  p.notGiven(M1, B);
  assert.equal(p.awaits(M1, B), false);
  const next = p.toAsk(new Set([A, B]), T0 + 2_000);
  assert.deepEqual(
    next.map(([id]) => id),
    [M1],
  );
  assert.equal(next[0][1], A);
  // No answers at all: after the timeout the rest are asked.
  const later = p.toAsk(new Set([A, B]), T0 + 2_000 + ASK_TIMEOUT_MS);
  assert.ok(later.some(([id]) => id === M6));
  // Learning replays the adverts heard before: the replica count is there at once.
  p.manifest(M2, 3, 1_000, T0 + 3_000);
  assert.equal(p.knows(M2), true);
  assert.equal(p.core.view(M2, T0 + 3_000).replicas, 1);
  assert.equal(p.awaits(M2, A), false);
});

test("a fetch that does not complete in time is given up (failed) and retried later", () => {
  const p = planner();
  p.manifest(M1, 2, 1_000, T0);
  p.adverts(A, [{ id: M1, chunks: 2 }], T0);
  const now = T0 + CONFIG.warmupMs;
  assert.deepEqual(p.tick(now).fetch, [M1]);
  assert.deepEqual(p.tick(now + CONFIG.fetchTimeoutMs - 1).expired, []);
  const d = p.tick(now + CONFIG.fetchTimeoutMs);
  assert.deepEqual(d.expired, [M1]);
  assert.deepEqual(d.fetch, [], "out of the ranking for the retry period");
  assert.deepEqual(p.tick(now + CONFIG.fetchTimeoutMs + 120_000).fetch, [M1]);
});

test("announcements every period while opted in; stop says spare 0, slots 0 once and drops the fetches", () => {
  const p = planner();
  assert.deepEqual(p.announcementDue(T0), { spare: 10_000_000, slots: 2, backfill_at: 0 });
  assert.equal(p.announcementDue(T0 + CONFIG.announceMs - 1), null);
  assert.notEqual(p.announcementDue(T0 + CONFIG.announceMs), null);
  p.manifest(M1, 2, 1_000, T0);
  p.adverts(A, [{ id: M1, chunks: 2 }], T0);
  assert.deepEqual(p.tick(T0 + CONFIG.warmupMs).fetch, [M1]);
  const stop = p.stop();
  assert.deepEqual(stop, { announce: { spare: 0, slots: 0, backfill_at: 0 }, drop: [M1] });
  assert.equal(p.stop(), null, "once");
  assert.equal(p.announcementDue(T0 + 10 * CONFIG.announceMs), null);
  assert.deepEqual(p.tick(T0 + 10 * CONFIG.announceMs), { fetch: [], cancel: [], expired: [], workerLive: false });
  p.adverts(A, [{ id: M2, chunks: 2 }], T0);
  assert.equal(p.unknown.size, 0, "nothing is learned while stopped");
});

test("a declined manifest (the person removed its copy) is never fed again", () => {
  const p = planner();
  p.manifest(M1, 2, 1_000, T0);
  p.adverts(A, [{ id: M1, chunks: 2 }], T0);
  p.decline(M1);
  assert.equal(p.knows(M1), false);
  assert.equal(p.manifest(M1, 2, 1_000, T0), false);
  p.adverts(A, [{ id: M1, chunks: 2 }], T0);
  assert.equal(p.unknown.size, 0);
  assert.deepEqual(p.tick(T0 + CONFIG.warmupMs).fetch, []);
});

// --- the adapter over real file services ---

let now = T0;
const clock = () => now;
const settle = async (rounds = 20) => {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
};
// Real time passes (signatures are checked asynchronously) until `ready()`.
async function until(ready, what, ms = 5_000) {
  const end = Date.now() + ms;
  while (!ready()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

class MemoryPeer extends EventTarget {
  constructor(net, peerId, identitySigner) {
    super();
    this.net = net;
    this.peerId = peerId;
    this.identity = { signer: identitySigner };
    this.config = { repair: CONFIG, haveGossip: false };
    this.links = new Set();
    this.caps = [];
    this.published = [];
    this.logs = [];
    net.set(peerId, this);
  }
  log(level, source, code, message) {
    this.logs.push({ level, source, code, message });
  }
  connectedPeers() {
    return [...this.links].map((id) => ({ peerId: id, caps: this.net.get(id).caps }));
  }
  channel() {
    return { readyState: "open", bufferedAmount: 0, addEventListener() {}, removeEventListener() {} };
  }
  contentViolation() {}
  send(peerId, frame) {
    return this.sendEncoded(peerId, encodeFrame(frame));
  }
  sendEncoded(peerId, bytes) {
    if (!this.links.has(peerId)) return false;
    const target = this.net.get(peerId);
    const frame = decodeFrame(bytes.slice());
    setImmediate(() => target.links.has(this.peerId) && target.dispatchEvent(new CustomEvent("frame", { detail: { peerId: this.peerId, frame } })));
    return true;
  }
  async publish(topic, data) {
    this.published.push({ topic, data });
    const message = { topic, origin: this.peerId, data, issuedAt: clock() };
    for (const id of this.links) setImmediate(() => this.net.get(id).dispatchEvent(new CustomEvent("message", { detail: { ...message, from: this.peerId } })));
  }
}

function connect(a, b) {
  a.links.add(b.peerId);
  b.links.add(a.peerId);
  a.dispatchEvent(new CustomEvent("peer-open", { detail: { peerId: b.peerId, caps: b.caps } }));
  b.dispatchEvent(new CustomEvent("peer-open", { detail: { peerId: a.peerId, caps: a.caps } }));
}

function leave(a) {
  for (const id of [...a.links]) {
    const b = a.net.get(id);
    a.links.delete(id);
    b.links.delete(a.peerId);
    b.dispatchEvent(new CustomEvent("peer-close", { detail: { peerId: a.peerId, reason: "bye_leaving" } }));
  }
}

async function page(net, label, settings = {}) {
  const s = await signer(label);
  const peer = new MemoryPeer(net, await peerIdForKey(s.publicKey), s);
  const store = new ContentStore();
  const files = await new FileService({ peer, store, origin: "http://x" }).start(settings);
  const repair = new RepairService({ peer, files, clock }).start({ timers: false });
  return { peer, store, files, repair };
}

const event = (files, type, id) =>
  new Promise((resolve, reject) => {
    files.addEventListener(type, (e) => e.detail.id === id && resolve(e.detail));
    files.addEventListener("failed", (e) => e.detail.id === id && reject(new Error(`${e.detail.code}: ${e.detail.message}`)));
  });

const repairGossip = (p) => p.published.filter((m) => m.topic === "repair").map((m) => m.data);

test("volunteers keep keyless copies of a file short of replicas, and a new page downloads it from them", async () => {
  now = T0;
  const net = new Map();
  const keep = { keepForSwarm: { keep: true, budget: 10_000_000 } };
  const alice = await page(net, "alice");
  const bob = await page(net, "bob", keep);
  const carol = await page(net, "carol", keep);
  const bytes = Uint8Array.from({ length: 5 * 65536 + 321 }, (_, i) => (i * 13) % 251);
  const shared = await alice.files.share(new File([bytes], "notes.bin"));
  const id = shared.id;
  assert.equal(alice.repair.running, false, "not opted in: no core");
  assert.equal(bob.repair.running, true);

  connect(alice.peer, bob.peer);
  connect(alice.peer, carol.peer);
  connect(bob.peer, carol.peer);
  await settle();
  // Each volunteer learns the manifest from Alice (her `have`, then a manifest request).
  for (const v of [bob, carol]) v.repair.step();
  await until(() => bob.repair.view(id) && carol.repair.view(id), "the manifest learned");
  for (const v of [bob, carol]) {
    const view = v.repair.view(id);
    assert.ok(view, "manifest learned");
    assert.equal(view.replicas, 1, "Alice's own copy");
    assert.deepEqual(v.repair.last.fetch, [], "warm-up");
  }
  assert.deepEqual(repairGossip(bob.peer)[0], { spare: 10_000_000, slots: 2, backfill_at: 0 });

  now += CONFIG.warmupMs;
  const done = [event(bob.files, "kept", id), event(carol.files, "kept", id)];
  for (const v of [bob, carol]) v.repair.step();
  assert.deepEqual(bob.repair.last.fetch, [id]);
  assert.deepEqual(carol.repair.last.fetch, [id]);
  await Promise.all(done);
  await settle();

  const size = storedSize(shared);
  for (const v of [bob, carol]) {
    const record = v.files.files.get(id);
    assert.equal(record.role, SWARM_ROLE);
    assert.equal(record.state, "complete");
    assert.equal(record.key, null);
    assert.equal(record.sha256, null, "never assembled");
    assert.equal(record.name, "notes.bin", "from the signed manifest");
    assert.equal(v.files.opener.cached(id), undefined);
    await assert.rejects(v.files.open(id), { code: "no_key" });
    assert.deepEqual(
      v.files.list().map((r) => r.id),
      [],
      "not one of the person's files",
    );
    assert.deepEqual(
      v.files.swarmCopies().map((r) => r.id),
      [id],
    );
    assert.ok(v.files.plan.kept.has(id), "counted in the budget");
    assert.equal(v.files.plan.used, size);
    assert.deepEqual(v.files.keeper.advertFor(record), { id, chunks: shared.chunkCount }, "advertised as a replica");
    assert.equal(v.repair.planner.fetching.size, 0, "fetch_ended");
  }
  // Each hears the other's replica (its `have`): three now, nothing more to fetch.
  assert.equal(bob.repair.view(id).replicas, 3);
  assert.equal(carol.repair.view(id).replicas, 3);
  now += 1_000;
  bob.repair.step();
  assert.deepEqual(bob.repair.planner.core.ownAnnouncement(0), { spare: 10_000_000 - size, slots: 2, backfillAt: 0 });

  // Alice leaves for good; Dave opens the link (the key) and gets the file from Bob and Carol.
  leave(alice.peer);
  assert.equal(bob.repair.view(id).replicas, 2);
  const dave = await page(net, "dave");
  connect(dave.peer, bob.peer);
  connect(dave.peer, carol.peer);
  await settle();
  const got = event(dave.files, "complete", id);
  await dave.files.download(id, shared.key);
  const { sha256 } = await got;
  assert.equal(sha256, createHash("sha256").update(bytes).digest("hex"));
  const sources = Object.keys(dave.files.files.get(id).sources);
  assert.ok(sources.length > 0 && sources.every((p) => p === bob.peer.peerId || p === carol.peer.peerId), `sources ${sources}`);

  // Bob stops keeping copies: one last `spare 0, slots 0`, then silence.
  const before = repairGossip(bob.peer).length;
  await bob.files.setKeeping({ keep: false });
  assert.equal(bob.repair.running, false);
  assert.deepEqual(repairGossip(bob.peer).slice(before), [{ spare: 0, slots: 0, backfill_at: 0 }]);
  now += 10 * CONFIG.announceMs;
  bob.repair.step();
  assert.equal(repairGossip(bob.peer).length, before + 1);
  assert.equal(bob.files.keepStateOf(id).state, "cached", "no longer counted as a replica");

  // Carol's person removes her copy: it is gone, and not fetched again though under target.
  await carol.files.remove(id);
  assert.equal(carol.files.files.get(id), undefined);
  now += 300_000;
  carol.repair.step();
  await settle();
  assert.deepEqual(carol.repair.last.fetch, []);
  assert.equal(carol.files.files.get(id), undefined);
});

test("a share link for a copy kept without a key makes it an ordinary download that opens", async () => {
  now = T0;
  const net = new Map();
  const alice = await page(net, "alice2");
  const bob = await page(net, "bob2", { keepForSwarm: { keep: true, budget: 10_000_000 } });
  const bytes = Uint8Array.from({ length: 2 * 65536 + 5 }, (_, i) => (i * 7) % 253);
  const shared = await alice.files.share(new File([bytes], "two.bin"));
  connect(alice.peer, bob.peer);
  await settle();
  bob.repair.step();
  await until(() => bob.repair.view(shared.id), "the manifest learned");
  now += CONFIG.warmupMs;
  const kept = event(bob.files, "kept", shared.id);
  bob.repair.step();
  await kept;
  leave(alice.peer); // the chunks must come from Bob's own storage
  const got = event(bob.files, "complete", shared.id);
  await bob.files.download(shared.id, shared.key);
  const { sha256 } = await got;
  assert.equal(sha256, createHash("sha256").update(bytes).digest("hex"));
  const record = bob.files.files.get(shared.id);
  assert.equal(record.role, "download");
  assert.equal(record.state, "complete");
  assert.deepEqual(bob.files.swarmCopies(), []);
});

test("the page config carries the repair timings; bad ones are refused", async () => {
  const { parseConfig, REPAIR_DEFAULTS } = await import("../../static/swarm/adapters/config.js");
  const base = { community: "main", signaling: ["/signal/"] };
  assert.deepEqual(parseConfig(base, "http://x/").repair, REPAIR_DEFAULTS);
  const repair = { tick_ms: 500, announce_ms: 2_000, warmup_ms: 0, worker_grace_ms: 9_000, fetch_timeout_ms: 30_000 };
  assert.deepEqual(parseConfig({ ...base, repair }, "http://x/").repair, {
    tickMs: 500,
    announceMs: 2_000,
    warmupMs: 0,
    workerGraceMs: 9_000,
    fetchTimeoutMs: 30_000,
  });
  for (const bad of [{ tick_ms: 0 }, { announce_ms: -1 }, { warmup_ms: 1.5 }, { fetch_timeout_ms: "10" }]) {
    assert.throws(() => parseConfig({ ...base, repair: bad }, "http://x/"), { code: "bad_config" }, JSON.stringify(bad));
  }
});

test("opting in later starts from the adverts already heard (a kept copy and a cached one)", async () => {
  now = T0;
  const net = new Map();
  const alice = await page(net, "alice3");
  const carol = await page(net, "carol3");
  const bob = await page(net, "bob3");
  const shared = await alice.files.share(new File([new Uint8Array(3 * 65536)], "three.bin"));
  connect(alice.peer, carol.peer);
  const got = event(carol.files, "complete", shared.id);
  await carol.files.download(shared.id, shared.key);
  await got; // Carol's copy is cached (she keeps nothing for the swarm): a source, not a replica
  connect(alice.peer, bob.peer);
  connect(carol.peer, bob.peer);
  await until(() => bob.files.holders.get(shared.id)?.size === 2, "both adverts");
  assert.equal(bob.files.holders.keeps(shared.id, alice.peer.peerId), true);
  assert.equal(bob.files.holders.keeps(shared.id, carol.peer.peerId), false);
  assert.equal(bob.repair.running, false);
  await bob.files.setKeeping({ keep: true, budget: 10_000_000 });
  assert.equal(bob.repair.running, true);
  await until(() => bob.repair.view(shared.id), "the manifest learned from a holder");
  const view = bob.repair.view(shared.id);
  assert.equal(view.replicas, 1, "Alice's kept copy only");
  assert.equal(view.sources, 2, "Carol's cached copy is a source");
  // Carol's copy goes (she left without a word): the direct advert goes with the connection.
  carol.peer.links.delete(bob.peer.peerId);
  bob.peer.links.delete(carol.peer.peerId);
  bob.peer.dispatchEvent(new CustomEvent("peer-close", { detail: { peerId: carol.peer.peerId, reason: "timeout" } }));
  assert.equal(bob.files.holders.keeps(shared.id, carol.peer.peerId), true, "nothing known of it any more");
  assert.equal(bob.files.holders.get(shared.id).has(carol.peer.peerId), false);
});

test("only a peer whose hello said super-peer holds the page back with a recent backfill run", async () => {
  now = T0;
  const net = new Map();
  const alice = await page(net, "alice4");
  const bob = await page(net, "bob4", { keepForSwarm: { keep: true, budget: 10_000_000 } });
  const sp = await page(net, "sp4");
  const liar = await page(net, "liar4");
  sp.peer.caps = ["gossip", "superpeer"];
  const shared = await alice.files.share(new File([new Uint8Array(65536)], "one.bin"));
  for (const other of [alice, sp, liar]) connect(other.peer, bob.peer);
  await settle();
  bob.repair.step();
  await until(() => bob.repair.view(shared.id), "the manifest learned");
  now += CONFIG.warmupMs;
  // A page claims a backfill run a second ago: not believed.
  await liar.peer.publish("repair", { spare: 0, slots: 0, backfill_at: now - 1_000 });
  await settle();
  assert.equal(bob.repair.superpeers.has(liar.peer.peerId), false);
  assert.equal(bob.repair.planner.core.workerLive(now), false);
  // The super-peer says the same: the worker is live, nothing is fetched.
  await sp.peer.publish("repair", { spare: 0, slots: 0, backfill_at: now - 1_000 });
  await settle();
  assert.equal(bob.repair.superpeers.has(sp.peer.peerId), true);
  bob.repair.step();
  assert.equal(bob.repair.last.workerLive, true);
  assert.deepEqual(bob.repair.last.fetch, []);
  // Past the grace, with nothing newer heard, the volunteer repairs.
  now += CONFIG.workerGraceMs;
  const kept = event(bob.files, "kept", shared.id);
  bob.repair.step();
  assert.deepEqual(bob.repair.last.fetch, [shared.id]);
  await kept;
});

test("a copy the person removed stays declined after a reload (kept with the settings)", async () => {
  now = T0;
  const net = new Map();
  const alice = await page(net, "alice5");
  const bob = await page(net, "bob5", { keepForSwarm: { keep: true, budget: 10_000_000 } });
  const settings = { keepForSwarm: { keep: true, budget: 10_000_000 } };
  bob.peer.store = {
    async getSettings() {
      return structuredClone(settings);
    },
    async putSettings(next) {
      Object.assign(settings, structuredClone(next));
    },
  };
  const shared = await alice.files.share(new File([new Uint8Array(65536)], "one.bin"));
  connect(alice.peer, bob.peer);
  await settle();
  bob.repair.step();
  await until(() => bob.repair.view(shared.id), "the manifest learned");
  now += CONFIG.warmupMs;
  const kept = event(bob.files, "kept", shared.id);
  bob.repair.step();
  await kept;
  await bob.files.remove(shared.id);
  await until(() => settings.repairDeclined?.length === 1, "the removal saved");
  assert.deepEqual(settings.repairDeclined, [shared.id]);
  // The page again (same storage, same settings): a new service declines it from the start.
  const again = new RepairService({ peer: bob.peer, files: bob.files, clock }).start({ timers: false });
  await again.loaded;
  assert.equal(again.planner.declined.has(shared.id), true);
  now += 300_000;
  again.step();
  await settle();
  assert.deepEqual(again.last.fetch, []);
  assert.equal(again.view(shared.id), null);
  // Garbage in the settings is ignored.
  settings.repairDeclined = ["not an id", 7];
  const third = new RepairService({ peer: bob.peer, files: bob.files, clock }).start({ timers: false });
  await third.loaded;
  assert.equal(third.planner.declined.size, 0);
});
