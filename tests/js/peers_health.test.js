// The Peers card's known-but-not-connected rows (adapters/knownpeers.js) and the hour/day
// health window (adapters/healthwindow.js, fed through adapters/metrics.js), with explicit clocks.
import assert from "node:assert/strict";
import { test } from "node:test";

import { BUCKET_MS, DAY_MS, HealthWindow, HOUR_MS, WINDOW_KEY } from "../../static/swarm/adapters/healthwindow.js";
import { knownPeerRows, MAX_ROWS, whyNotConnected } from "../../static/swarm/adapters/knownpeers.js";
import { Metrics } from "../../static/swarm/adapters/metrics.js";
import { Mesh } from "../../static/swarm/protocol/mesh.js";
import { PeerBook } from "../../static/swarm/protocol/peerbook.js";
import { makeIdentity, T0 } from "./support/network.js";

async function setup(n) {
  const ids = [];
  for (let i = 0; i < n; i++) ids.push(await makeIdentity("main", T0));
  const book = new PeerBook({ selfId: "pself", random: () => 0 });
  const actions = [];
  const mesh = new Mesh({ selfId: "pself", book, emit: (a) => actions.push(a), options: { target: 6 } });
  for (const id of ids) book.addTicket(id.ticket, "beacon", T0);
  return { ids, book, mesh, actions };
}

const byId = (rows) => Object.fromEntries(rows.map((r) => [r.peerId, r]));

test("known peers: each row says why it is not connected, in a code and in words", async () => {
  const { ids, book, mesh } = await setup(7);
  const [fresh, failing, held, dialing, denied, gone, open] = ids.map((i) => i.peerId);
  const now = T0 + 1_000;
  book.recordFailure(failing, now - 500);
  book.recordFailure(failing, now - 400);
  book.deferDial(held, now + 60_000);
  mesh.dialing.set(dialing, now + 15_000);
  mesh.deny(denied, now);
  book.recordGone(gone);
  // an open connection is not a "known but not connected" row
  const conn = mesh.opened("c1", open, true, now);
  conn.state = "open";
  const rows = byId(knownPeerRows({ book, mesh, now, canDial: true }));
  assert.equal(rows[open], undefined);
  assert.equal(rows[fresh].why, "never_tried");
  assert.equal(rows[fresh].whyText, "never tried");
  assert.equal(rows[failing].why, "backoff");
  assert.equal(rows[failing].whyText, "backing off after failure 2, retry in 10 s");
  assert.equal(rows[held].why, "held");
  assert.match(rows[held].whyText, /retry in 60 s$/);
  assert.equal(rows[dialing].why, "dialing");
  assert.equal(rows[denied].why, "denied");
  assert.equal(rows[gone].why, "left");
  assert.equal(rows[fresh].lastSeen, T0);
  assert.ok(rows[fresh].score > 1, "a live ticket counts in the score");
  assert.equal(rows[fresh].source, "beacon");
});

test("known peers: limit, signaling, pause, isolation, blocks and the allow list", async () => {
  const { ids, book, mesh } = await setup(3);
  const [a, b, c] = ids.map((i) => i.peerId);
  const now = T0 + 1_000;
  mesh.options.target = 1;
  mesh.dialing.set(a, now + 15_000);
  let rows = byId(knownPeerRows({ book, mesh, now, canDial: true }));
  assert.equal(rows[b].why, "at_limit");
  assert.equal(rows[b].whyText, "at connection limit (1 of 1)");
  assert.equal(byId(knownPeerRows({ book, mesh, now, canDial: false }))[b].why, "signaling_down");
  mesh.allowed.add(c);
  mesh.isolated = true;
  rows = byId(knownPeerRows({ book, mesh, now, canDial: true }));
  assert.equal(rows[b].why, "isolated");
  assert.equal(rows[c].allowed, true);
  assert.notEqual(rows[c].why, "isolated", "an always-allowed peer is dialed when isolated");
  mesh.setPaused(true, now);
  assert.equal(byId(knownPeerRows({ book, mesh, now, canDial: true }))[b].why, "paused");
  mesh.setPause("inbound", null, now);
  assert.notEqual(byId(knownPeerRows({ book, mesh, now, canDial: true }))[b].why, "paused", "inbound only: this page still dials");
  // Blocking removes a peer from the book; an allowed peer the book forgot is still listed.
  mesh.setPaused(false, now);
  mesh.isolated = false;
  book.remove(c);
  rows = byId(knownPeerRows({ book, mesh, now, canDial: true }));
  assert.equal(rows[c].why, "no_ticket");
  assert.equal(rows[c].score, null);
  mesh.blocked.add(b, { direction: "inbound" }, now);
  assert.notEqual(byId(knownPeerRows({ book, mesh, now, canDial: true }))[b].why, "blocked", "inbound only: this page may dial it");
  mesh.blocked.add(b, { direction: "outbound" }, now);
  assert.equal(byId(knownPeerRows({ book, mesh, now, canDial: true }))[b].why, "blocked");
});

test("known peers: a ticket expired on a peer never reached; best score first; at most MAX_ROWS", async () => {
  const { ids, book, mesh } = await setup(2);
  const [a, b] = ids.map((i) => i.peerId);
  book.recordSuccess(b, T0 + 10);
  const late = book.get(a).expiresAt + 1;
  const rows = knownPeerRows({ book, mesh, now: late, canDial: true });
  assert.deepEqual(
    rows.map((r) => [r.peerId, r.why]),
    [
      [b, "not_yet"],
      [a, "expired"],
    ],
  );
  const many = { peerId: "px", consecutiveFailures: 0, nextDialAt: 0, successes: 0, failures: 0 };
  assert.equal(
    whyNotConnected(
      many,
      {
        paused: false,
        isolated: false,
        canDial: true,
        blocked: new Set(),
        allowed: new Set(),
        denied: new Map(),
        dialing: new Set(),
        connecting: new Set(),
        conns: 0,
        target: 6,
        live: true,
      },
      0,
    ).code,
    "never_tried",
  );
  assert.equal(knownPeerRows({ book, mesh, now: late, canDial: true, limit: 1 }).length, 1);
  assert.equal(MAX_ROWS, 50);
});

test("health window: ratios and latency over the last hour and the last day", () => {
  const w = new HealthWindow();
  const now = 10 * DAY_MS;
  // Two hours ago: 4 attempts, 1 success; within the hour: 2 attempts, 2 successes.
  w.add("conn_attempts", 4, now - 2 * HOUR_MS);
  w.add("conn_successes", 1, now - 2 * HOUR_MS);
  w.add("conn_attempts", 2, now - 10 * 60_000);
  w.add("conn_successes", 2, now - 10 * 60_000);
  w.add("rendezvous_attempts", 3, now - 5 * 60_000);
  w.add("rendezvous_successes", 1, now - 5 * 60_000);
  w.beacon(100, now - 30 * 60_000);
  w.beacon(300, now - 3 * HOUR_MS);
  w.add("uptime_ms", 30 * 60_000, now - 60_000);
  w.add("bytes_up", 5, now); // not a health counter: ignored
  const hour = w.hour(now);
  assert.deepEqual([hour.connRatio, hour.rendezvousRatio, hour.beaconLatencyMs, hour.uptimeMs, hour.uptimeRatio], [1, 1 / 3, 100, 30 * 60_000, 0.5]);
  const day = w.day(now);
  assert.deepEqual([day.connAttempts, day.connSuccesses, day.connRatio, day.beaconLatencyMs], [6, 3, 0.5, 200]);
  // Nothing counted: no ratio rather than 0 % or 100 %.
  assert.deepEqual([new HealthWindow().hour(now).connRatio, new HealthWindow().hour(now).beaconLatencyMs], [null, null]);
  // A day later the old buckets are gone, and the next bucket forgets them.
  w.add("conn_attempts", 1, now + DAY_MS);
  assert.equal(w.day(now + DAY_MS).connAttempts, 1);
  assert.ok([...w.buckets.keys()].every((start) => start > now));
});

test("health window: saved with the metrics, read back, damaged buckets skipped", () => {
  const now = 10 * DAY_MS + 123;
  const m = new Metrics({ now: now - 60_000 });
  m.syncNode({ dials: 3, dialSuccesses: 2 }, now);
  m.add("rendezvous_attempts", 1, now);
  m.add("rendezvous_successes", 1, now);
  m.beacon("http://b1/", 40, true, now);
  m.beacon("http://b2/", 9_000, false, now);
  const record = m.takeWindow();
  assert.equal(record.day, WINDOW_KEY);
  assert.equal(m.takeWindow(), null, "unchanged: nothing to save");
  assert.deepEqual(
    m.takeDirty().map((r) => r.day),
    ["1970-01-11"],
    "the daily buckets are saved as before, without the window",
  );
  const damaged = { day: WINDOW_KEY, buckets: [...record.buckets, { start: 7 }, { start: now - 2 * DAY_MS - (now % BUCKET_MS) }, null] };
  const back = new Metrics({ now });
  back.load([damaged, { day: "1970-01-11", counters: { conn_attempts: 3 } }], now);
  const hour = back.window.hour(now);
  assert.deepEqual([hour.connAttempts, hour.connRatio, hour.rendezvousRatio, hour.beaconLatencyMs, hour.uptimeMs], [3, 2 / 3, 1, 40, 60_000]);
  assert.equal(back.window.buckets.size, 1);
  assert.equal(back.days.size, 1, "the window record is not a day");
  assert.equal(back.total().conn_attempts, 3);
});
