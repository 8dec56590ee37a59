// Identity storage and backup, metrics buckets, the diagnostics ring (MemoryStore stands in
// for IndexedDB, which node lacks; the browser tests use the real one).
import assert from "node:assert/strict";
import { test } from "node:test";

import { Diagnostics } from "../../static/swarm/adapters/diagnostics.js";
import * as ed25519 from "../../static/swarm/protocol/ed25519.js";
import { exportIdentity, importIdentity, loadOrCreateIdentity } from "../../static/swarm/adapters/identity.js";
import { dayOf, Metrics } from "../../static/swarm/adapters/metrics.js";
import { MemoryStore } from "../../static/swarm/adapters/store.js";

test("identity: created once, then loaded; the signing key is not extractable", async () => {
  const store = new MemoryStore();
  const first = await loadOrCreateIdentity(store, 1000);
  assert.equal(first.created, true);
  assert.match(first.peerId, /^p[a-z2-7]{32}$/);
  assert.equal(first.record.kind, "webcrypto");
  assert.equal(first.signer.privateKey.extractable, false);
  await assert.rejects(crypto.subtle.exportKey("pkcs8", first.signer.privateKey));
  assert.equal(first.record.wrapKey.extractable, false);
  const again = await loadOrCreateIdentity(store, 2000);
  assert.equal(again.created, false);
  assert.equal(again.peerId, first.peerId);
  const message = new Uint8Array([1, 2, 3]);
  const sig = await ed25519.sign(again.signer, message);
  assert.ok(await ed25519.verify(first.signer.publicKey, sig, message));
});

test("identity: an exported backup restores the same peer id elsewhere; wrong passphrase fails", async () => {
  const home = new MemoryStore();
  const me = await loadOrCreateIdentity(home);
  const backup = await exportIdentity(me.record, "correct horse battery", { iterations: 1000 });
  assert.equal(backup.peer_id, me.peerId);
  assert.equal(JSON.stringify(backup).includes("seed"), false);
  const away = new MemoryStore();
  await assert.rejects(importIdentity(away, backup, "wrong passphrase"), (e) => e.code === "bad_passphrase");
  const restored = await importIdentity(away, backup, "correct horse battery");
  assert.equal(restored.peerId, me.peerId);
  assert.equal((await loadOrCreateIdentity(away)).peerId, me.peerId);
  await assert.rejects(exportIdentity(me.record, "short"), (e) => e.code === "weak_passphrase");
  const swapped = { ...backup, peer_id: `p${"a".repeat(32)}` };
  await assert.rejects(importIdentity(away, swapped, "correct horse battery"), (e) => e.code === "key_mismatch");
  await assert.rejects(importIdentity(away, { kind: "other" }, "x"), (e) => e.code === "bad_backup");
});

test("metrics: node stats become daily deltas; buckets roll over at UTC midnight", () => {
  const day1 = Date.UTC(2027, 0, 1, 23, 59, 0);
  const m = new Metrics({ now: day1 - 60_000 });
  m.syncNode({ bytesIn: 100, bytesOut: 50, dials: 2, dialSuccesses: 1, dropped: { bad_frame: 2 } }, day1);
  m.syncNode({ bytesIn: 150, bytesOut: 50, dials: 3, dialSuccesses: 1, dropped: { bad_frame: 2, bad_msgpack: 1 } }, day1 + 120_000);
  const d1 = m.days.get(dayOf(day1));
  const d2 = m.days.get(dayOf(day1 + 120_000));
  assert.deepEqual([d1.bytes_down, d1.conn_attempts, d1.frames_dropped, d1.uptime_ms], [100, 2, 2, 60_000]);
  assert.deepEqual([d2.bytes_down, d2.conn_attempts, d2.frames_dropped, d2.uptime_ms], [50, 1, 1, 120_000]);
  assert.equal(m.total().bytes_down, 150);
  const dirty = m.takeDirty();
  assert.deepEqual(dirty.map((r) => r.day).sort(), ["2027-01-01", "2027-01-02"]);
  assert.deepEqual(m.takeDirty(), []);
  const reloaded = new Metrics({ now: day1 });
  reloaded.load(dirty, day1 + 120_000);
  assert.equal(reloaded.total().bytes_down, 150);
  assert.deepEqual(reloaded.expiredDays(day1 + 40 * 86_400_000).sort(), ["2027-01-01", "2027-01-02"]);
  assert.throws(() => m.add("nope", 1, day1), /unknown counter/);
});

test("metrics: time to first peer, beacon latency series aligned with time", () => {
  const m = new Metrics({ now: 10_000 });
  m.firstPeer(11_234);
  m.firstPeer(20_000);
  assert.equal(m.timeToFirstPeerMs, 1_234);
  m.sample(15_000, 0);
  m.beacon("http://b1/", 12, true, 16_000);
  m.beacon("http://b2/", 8000, false, 16_000);
  m.sample(20_000, 2);
  assert.deepEqual(m.series.peers, [0, 2]);
  assert.deepEqual(m.series.latency.get("http://b1/"), [null, 12]);
  assert.deepEqual(m.series.latency.get("http://b2/"), [null, null]);
  assert.equal(m.today(16_000).beacon_failures, 1);
});

test("diagnostics keep the last 200 events, newest first, filterable by level", () => {
  let t = 0;
  const d = new Diagnostics({ clock: () => ++t });
  const heard = [];
  d.subscribe((e) => heard.push(e.code));
  for (let i = 0; i < 250; i++) d.add({ level: i % 50 === 0 ? "warn" : "info", source: "test", code: `e${i}`, message: "m" });
  assert.equal(d.events.length, 200);
  assert.equal(d.list()[0].code, "e249");
  assert.equal(d.list().at(-1).code, "e50");
  assert.deepEqual(
    d.list("warn").map((e) => e.code),
    ["e200", "e150", "e100", "e50"],
  );
  assert.equal(heard.length, 250);
  assert.equal(d.add({ level: "shout", source: "x", code: "y" }).level, "info");
});
