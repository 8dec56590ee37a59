// #swarm-status's state and reason codes (static/swarm/adapters/reasons.js, DESIGN section 11).
import assert from "node:assert/strict";
import { test } from "node:test";

import { pageStatus } from "../../static/swarm/adapters/reasons.js";

const healthy = { online: true, signal: "open", paused: false, isolated: false, peers: 3, unresponsive: 0, rendezvousFailing: false };
const status = (change) => pageStatus({ ...healthy, ...change });

test("online: no reason", () => {
  assert.deepEqual(status({}), { state: "online", reason: null, reasons: [], text: null, texts: [], peers: 3 });
});

test("without a network the page is offline and says why, first", () => {
  const s = status({ online: false, signal: "reconnecting", peers: 0 });
  assert.equal(s.state, "offline");
  assert.deepEqual(s.reasons, ["network_offline", "signaling_down", "no_peers"]);
  assert.equal(s.reason, "no network");
  assert.equal(s.text, "no network · signaling unreachable · no peers connected");
  // Open connections can outlive the network: degraded, not offline.
  assert.equal(status({ online: false }).state, "degraded");
});

test("signaling down: degraded with peers, offline without; the texts the page showed before", () => {
  assert.deepEqual([status({ signal: "reconnecting" }).state, status({ signal: "reconnecting" }).reason], ["degraded", "signaling unreachable"]);
  const alone = status({ signal: "connecting", peers: 0 });
  assert.deepEqual([alone.state, alone.reasons], ["offline", ["signaling_down", "no_peers"]]);
  assert.equal(status({ signal: "failed", peers: 0 }).reason, "signaling refused this page");
});

test("paused, isolated, peers not answering, rendezvous failing", () => {
  const paused = status({ paused: true, isolated: true });
  assert.deepEqual([paused.state, paused.reason, paused.reasons, paused.peers], ["offline", "paused", ["paused"], 0]);
  assert.deepEqual(status({ isolated: true }).reasons, ["isolated"]);
  assert.equal(status({ isolated: true }).state, "degraded");
  const idle = status({ unresponsive: 2, isolated: true });
  assert.deepEqual([idle.state, idle.reason, idle.reasons], ["degraded", "2 peer(s) not responding", ["peers_unresponsive", "isolated"]]);
  assert.deepEqual(status({ peers: 0, rendezvousFailing: true }).reasons, ["no_peers", "rendezvous_failing"]);
  assert.deepEqual(status({ rendezvousFailing: true }).reasons, [], "connected: rendezvous is no reason to worry");
});

test("rendezvous failure streaks, slow beacons, blocked peers (a note: the state stays online)", () => {
  assert.deepEqual(status({ rendezvousFailing: true, rendezvousStreak: 2 }).reasons, [], "two failed rounds with peers: not yet");
  const streak = status({ rendezvousFailing: true, rendezvousStreak: 3 });
  assert.deepEqual([streak.state, streak.reasons, streak.reason], ["degraded", ["rendezvous_failing"], "beacons and capsules unreachable (3 rounds in a row)"]);
  assert.deepEqual(status({ rendezvousFailing: true, rendezvousStreak: 5, signal: "reconnecting" }).reasons, ["signaling_down"]);
  const slow = status({ slowBeacons: 1 });
  assert.deepEqual([slow.state, slow.reasons, slow.text], ["degraded", ["beacon_slow"], "beacon slow (over 3 s)"]);
  const blocked = status({ blocked: 2 });
  assert.deepEqual([blocked.state, blocked.reasons, blocked.text], ["online", ["peers_blocked"], "2 peers blocked"]);
  assert.equal(status({ blocked: 1, peers: 0 }).text, "no peers connected · 1 peer blocked");
  assert.deepEqual(status({ blocked: 1, peers: 0 }).texts, ["no peers connected", "1 peer blocked"]);
  assert.deepEqual(status({ blocked: 1, paused: true }).reasons, ["paused"]);
});

test("a pause says which way and until when; one way paused keeps the page's other connections", () => {
  const at = (ms) => `t${ms}`;
  const both = status({ paused: true, pause: { direction: "both", until: 5 }, formatTime: at });
  assert.deepEqual([both.state, both.reasons, both.reason, both.peers], ["offline", ["paused"], "paused until t5", 0]);
  const inbound = status({ pause: { direction: "inbound", until: null } });
  assert.deepEqual([inbound.state, inbound.reasons, inbound.text, inbound.peers], ["degraded", ["paused"], "paused inbound", 3]);
  const out = status({ pause: { direction: "outbound", until: 9 }, formatTime: at, peers: 0 });
  assert.deepEqual([out.state, out.reasons, out.reason], ["offline", ["paused", "no_peers"], "paused outbound until t9"]);
  assert.deepEqual(status({ pause: { direction: null, until: null } }).reasons, [], "not paused");
});
