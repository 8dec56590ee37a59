// Page config parsing and rendezvous: the schedule (pure, fake clock) and rounds against
// scripted HTTP answers (timeouts, 5xx, 429, capsules signed in Python).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { parseConfig, RENDEZVOUS_DEFAULTS } from "../../static/swarm/adapters/config.js";
import { announce, fetchCapsule, RendezvousSchedule, runRound } from "../../static/swarm/adapters/rendezvous.js";
import { makeIdentity } from "./support/network.js";

const capsules = JSON.parse(readFileSync(new URL("../vectors/capsules.json", import.meta.url), "utf8"));
const PAGE = "http://127.0.0.1:8000/";

function rawConfig(overrides = {}) {
  return {
    community: "main",
    beacons: ["/beacon/v1/", "http://other.example:9000/beacon/v1/"],
    capsules: ["/capsules/{community}.json"],
    capsule_keys: capsules.keys.keys,
    signaling: ["/signal/", "https://sig.example/signal"],
    signal_key: "peerjs",
    seeds: [],
    ice_servers: [{ urls: "stun:stun.example:3478" }],
    mesh: { target: 4, max: 8, approval: "manual" },
    rendezvous: { retries: 2, backoff_ms: 10, timeout_ms: 50 },
    ...overrides,
  };
}

test("config: relative URLs point at this server, signaling URLs become PeerJS options", () => {
  const c = parseConfig(rawConfig(), PAGE);
  assert.deepEqual(c.beacons, ["http://127.0.0.1:8000/beacon/v1/", "http://other.example:9000/beacon/v1/"]);
  assert.deepEqual(c.capsules, ["http://127.0.0.1:8000/capsules/main.json"]);
  assert.deepEqual(
    c.signaling.map(({ host, port, path, secure, key }) => ({ host, port, path, secure, key })),
    [
      { host: "127.0.0.1", port: 8000, path: "/signal/", secure: false, key: "peerjs" },
      { host: "sig.example", port: 443, path: "/signal/", secure: true, key: "peerjs" },
    ],
  );
  assert.deepEqual(c.mesh, { target: 4, max: 8, approval: "manual" });
  assert.deepEqual(c.doors, []);
  assert.deepEqual(parseConfig(rawConfig({ doors: ["ws://127.0.0.1:8001/", "wss://sp.example/"] }), PAGE).doors, ["ws://127.0.0.1:8001/", "wss://sp.example/"]);
  assert.equal(c.rendezvous.refreshMs, RENDEZVOUS_DEFAULTS.refreshMs);
  assert.equal(c.capsuleKeys.length, capsules.keys.keys.length);
});

test("config: bad values are refused with a clear message", () => {
  const bad = [
    [{ community: "Main!" }, /community/],
    [{ beacons: "x" }, /beacons must be a list/],
    [{ signaling: [] }, /signaling endpoint/],
    [{ seeds: ["alice"] }, /not a peer id/],
    [{ mesh: { target: 8, max: 4 } }, /mesh.max/],
    [{ mesh: { target: -1 } }, /positive integer/],
    [{ doors: "ws://x/" }, /doors must be a list/],
    [{ doors: ["https://sp.example/"] }, /doors\[0\] must be a ws: or wss: URL/],
  ];
  for (const [overrides, message] of bad) {
    assert.throws(() => parseConfig(rawConfig(overrides), PAGE), message);
  }
  assert.throws(
    () => parseConfig(rawConfig({ capsule_keys: [{ pk: "short" }] }), PAGE),
    (e) => e.code === "bad_body",
  );
});

test("schedule: fast rounds while alone, slow once connected, pause after three empty rounds", () => {
  const s = new RendezvousSchedule(RENDEZVOUS_DEFAULTS, 0);
  assert.ok(s.due(0));
  s.done({ found: 0, connected: 0 }, 0);
  assert.equal(s.nextRoundAt, 15_000);
  s.done({ found: 0, connected: 0 }, 15_000);
  assert.equal(s.state(15_000), "active");
  s.done({ found: 0, connected: 0 }, 30_000);
  assert.equal(s.state(30_000), "paused");
  assert.equal(s.nextRoundAt, 150_000);
  s.hurry(40_000);
  assert.equal(s.nextRoundAt, 150_000, "a paused rendezvous is not hurried");
  assert.equal(s.state(150_000), "active");
  s.done({ found: 3, connected: 1 }, 150_000);
  assert.equal(s.nextRoundAt, 210_000);
  assert.equal(s.successes, 1);
  s.done({ found: 0, connected: 1, retryAfterMs: 90_000 }, 210_000);
  assert.equal(s.nextRoundAt, 300_000, "Retry-After wins when longer");
  s.suspended = true;
  assert.equal(s.due(1e9), false);
});

// Scripted fetch: each URL has a queue of answers (a status + body, "timeout", or "refused").
function scripted(routes) {
  const calls = [];
  const fetchImpl = (url, init) => {
    calls.push({ url, method: init.method });
    const queue = routes[url];
    const answer = queue?.length > 1 ? queue.shift() : queue?.[0];
    if (!answer || answer === "refused") return Promise.reject(new TypeError("Failed to fetch"));
    if (answer === "timeout") {
      return new Promise((_, reject) => init.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))));
    }
    const headers = new Headers(answer.headers ?? {});
    return Promise.resolve({ ok: answer.status < 400, status: answer.status, headers, json: async () => answer.body });
  };
  return { fetchImpl, calls };
}

const noSleep = async () => {};

async function world() {
  const me = await makeIdentity("main", Date.now());
  const others = await Promise.all([1, 2, 3].map(() => makeIdentity("main", Date.now())));
  return { me, others, envelopes: others.map((o) => o.ticket.envelope) };
}

test("announce: retries a failing beacon twice with backoff, then reports the failure", async () => {
  const { me } = await world();
  const { fetchImpl, calls } = scripted({ "http://b/main/announce": ["refused"] });
  const slept = [];
  const report = await announce("http://b/", me.ticket.envelope, {
    community: "main",
    selfId: me.peerId,
    fetchImpl,
    options: { timeoutMs: 50, retries: 2, backoffMs: 100 },
    sleep: async (ms) => slept.push(ms),
    clock: Date.now,
  });
  assert.equal(report.ok, false);
  assert.equal(report.code, "network");
  assert.equal(calls.length, 3);
  assert.deepEqual(slept, [100, 200]);
});

test("announce: a beacon that does not answer in time is a timeout; a 4xx is not retried", async () => {
  const { me } = await world();
  const slow = scripted({ "http://slow/main/announce": ["timeout"] });
  const ctx = { community: "main", selfId: me.peerId, options: { timeoutMs: 30, retries: 1, backoffMs: 1 }, sleep: noSleep, clock: Date.now };
  const r1 = await announce("http://slow/", me.ticket.envelope, { ...ctx, fetchImpl: slow.fetchImpl });
  assert.equal(r1.code, "timeout");
  assert.equal(slow.calls.length, 2);
  const blocked = scripted({ "http://blk/main/announce": [{ status: 403, body: { ok: false, error: { code: "blocked", message: "no" } } }] });
  const r2 = await announce("http://blk/", me.ticket.envelope, { ...ctx, fetchImpl: blocked.fetchImpl });
  assert.deepEqual([r2.ok, r2.code, blocked.calls.length], [false, "blocked", 1]);
  const limited = scripted({
    "http://lim/main/announce": [{ status: 429, headers: { "Retry-After": "12" }, body: { ok: false, error: { code: "rate_limited", message: "slow down" } } }],
    "http://lim/main/peers": [{ status: 429, headers: { "Retry-After": "3" }, body: { ok: false, error: { code: "rate_limited", message: "slow down" } } }],
  });
  const r3 = await announce("http://lim/", me.ticket.envelope, { ...ctx, fetchImpl: limited.fetchImpl });
  assert.deepEqual([r3.code, r3.retryAfterMs], ["rate_limited", 3_000]);
  assert.deepEqual(
    limited.calls.map((c) => c.method),
    ["POST", "GET"],
  );
});

test("announce: after a replay answer (the POST was delivered twice) the peer list comes from GET /peers", async () => {
  const { me, others, envelopes } = await world();
  const { fetchImpl, calls } = scripted({
    "http://b/main/announce": [{ status: 422, body: { ok: false, error: { code: "replay", message: "stored already" } } }],
    "http://b/main/peers": [{ status: 200, body: { ok: true, peers: [envelopes[2]] } }],
  });
  const report = await announce("http://b/", me.ticket.envelope, {
    community: "main",
    selfId: me.peerId,
    fetchImpl,
    options: { timeoutMs: 50, retries: 2, backoffMs: 1 },
    sleep: noSleep,
    clock: Date.now,
  });
  assert.deepEqual([report.ok, report.via, report.attempts], [true, "replay", 2]);
  assert.deepEqual(
    report.tickets.map((t) => t.peerId),
    [others[2].peerId],
  );
  assert.deepEqual(
    calls.map((c) => c.method),
    ["POST", "GET"],
    "a 4xx is not retried",
  );
});

test("round: beacons in parallel, tickets verified, own ticket and bad ones dropped, newest per peer kept", async () => {
  const { me, others, envelopes } = await world();
  const forged = structuredClone(envelopes[0]);
  forged.body.nonce = "Zm9yZ2VkLW5vbmNl";
  const config = parseConfig(rawConfig({ beacons: ["http://b1/", "http://b2/"], capsules: [] }), PAGE);
  const { fetchImpl, calls } = scripted({
    "http://b1/main/announce": ["timeout", { status: 200, body: { ok: true, peers: [envelopes[0], me.ticket.envelope, forged] } }],
    "http://b2/main/announce": [{ status: 200, body: { ok: true, peers: [envelopes[1], envelopes[0]] } }],
  });
  const round = await runRound({ config, ticket: me.ticket.envelope, selfId: me.peerId, want: 1, fetchImpl, sleep: noSleep });
  assert.deepEqual(round.tickets.map((t) => t.peerId).sort(), [others[0].peerId, others[1].peerId].sort());
  const [b1, b2] = round.reports;
  assert.deepEqual([b1.ok, b1.attempts, b1.rejected], [true, 2, { bad_signature: 1 }]);
  assert.equal(b2.ok, true);
  assert.ok(b1.latencyMs >= 0);
  assert.equal(calls.filter((c) => c.url.includes("capsules")).length, 0, "enough peers: no capsule fetch");
});

test("round: with every beacon down, the capsule signed by a pinned key brings the peers", async () => {
  const { me } = await world();
  const valid = capsules.valid[0];
  const config = parseConfig(rawConfig({ beacons: ["http://down/"], capsules: ["http://c/{community}.json"] }), PAGE);
  const { fetchImpl } = scripted({ "http://c/main.json": [{ status: 200, body: valid.capsule }] });
  const now = capsules.now;
  const round = await runRound({ config, ticket: me.ticket.envelope, selfId: me.peerId, want: 4, fetchImpl, sleep: noSleep, clock: () => now });
  const capsule = round.reports.find((r) => r.source === "capsule");
  assert.equal(capsule.ok, true, capsule.message);
  assert.deepEqual(round.tickets.map((t) => t.peerId).sort(), [...valid.peer_ids].sort());
});

test("capsule: a tampered, expired or unpinned capsule is rejected with its code", async () => {
  const { me } = await world();
  const trusted = parseConfig(rawConfig(), PAGE).capsuleKeys;
  const ctx = { community: "main", selfId: me.peerId, options: { timeoutMs: 50, retries: 0, backoffMs: 1 }, sleep: noSleep, clock: () => capsules.now };
  const tampered = structuredClone(capsules.valid[0].capsule);
  tampered.body.issued_at += 1;
  const cases = [[tampered, "bad_signature"], ...capsules.invalid.filter((c) => !c.now).map((c) => [c.capsule, c.error])];
  for (const [body, code] of cases) {
    const { fetchImpl } = scripted({ "http://c/x.json": [{ status: 200, body }] });
    const report = await fetchCapsule("http://c/x.json", { ...ctx, trusted, fetchImpl });
    assert.equal(report.ok, false);
    assert.equal(report.code, code);
  }
  const { fetchImpl } = scripted({ "http://c/x.json": [{ status: 200, body: capsules.valid[0].capsule }] });
  const unpinned = await fetchCapsule("http://c/x.json", { ...ctx, trusted: [{ pk: me.ticket.envelope.pk }], fetchImpl });
  assert.equal(unpinned.code, "untrusted_key");
  const missing = scripted({ "http://c/x.json": [{ status: 404, body: { ok: false, error: { code: "no_capsule", message: "none" } } }] });
  assert.equal((await fetchCapsule("http://c/x.json", { ...ctx, trusted, fetchImpl: missing.fetchImpl })).code, "no_capsule");
});
