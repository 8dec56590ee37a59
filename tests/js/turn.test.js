// TURN credentials in the page (static/swarm/adapters/turn.js): the page config's turn block,
// when a refresh is due, the refresh against scripted answers (fake clock and timers).
import assert from "node:assert/strict";
import { test } from "node:test";

import { ConfigError, parseConfig } from "../../static/swarm/adapters/config.js";
import { MIN_DELAY_MS, parseCredentials, RETRY_MS, refreshDelayMs, TurnRefresher } from "../../static/swarm/adapters/turn.js";

const PAGE = "http://127.0.0.1:8000/";
const PEER = "pabcdefghijklmnopqrstuvwxyz234567";
const base = { community: "main", signaling: ["/signal/"] };

test("config: turn block, transport policy, defaults", () => {
  const plain = parseConfig(base, PAGE);
  assert.equal(plain.turn, null);
  assert.equal(plain.iceTransportPolicy, "all");
  const config = parseConfig({ ...base, ice_transport_policy: "relay", turn: { url: "/turn/credentials", expires: 1_700_003_600, ttl_s: 3600 } }, PAGE);
  assert.equal(config.iceTransportPolicy, "relay");
  assert.deepEqual(config.turn, { url: "http://127.0.0.1:8000/turn/credentials", expires: 1_700_003_600, ttlS: 3600 });
  assert.throws(() => parseConfig({ ...base, ice_transport_policy: "none" }, PAGE), ConfigError);
  assert.throws(() => parseConfig({ ...base, turn: { url: "/t", expires: -1 } }, PAGE), ConfigError);
  assert.throws(() => parseConfig({ ...base, turn: "yes" }, PAGE), ConfigError);
});

test("refresh is due when 80 % of the lifetime has passed, never sooner than MIN_DELAY_MS", () => {
  const now = 1_700_000_000_000;
  assert.equal(refreshDelayMs(1_700_003_600, 3600, now), 2880_000);
  assert.equal(refreshDelayMs(1_700_000_001, 3600, now), MIN_DELAY_MS);
});

test("parseCredentials refuses malformed answers with a stable code", () => {
  for (const body of [null, {}, { ice_servers: [1], expires: 5 }, { ice_servers: [], expires: "soon" }]) {
    assert.throws(
      () => parseCredentials(body),
      (e) => e.code === "bad_turn_answer",
    );
  }
});

function harness(answers) {
  let now = 1_700_000_000_000;
  const timers = [];
  const logs = [];
  const asked = [];
  const rtc = { iceServers: [{ urls: ["turn:old"], username: "old", credential: "x" }], iceTransportPolicy: "relay" };
  const fetchImpl = async (url) => {
    asked.push(url);
    const [status, body, headers = {}] = answers.shift();
    return { ok: status === 200, status, headers: new Headers(headers), json: async () => body };
  };
  const refresher = new TurnRefresher({
    turn: { url: `${PAGE}turn/credentials`, expires: 1_700_003_600, ttlS: 3600 },
    rtc,
    peerId: PEER,
    fetchImpl,
    clock: () => now,
    log: (level, code, message) => logs.push({ level, code, message }),
    setTimer: (fn, ms) => timers.push({ fn, ms }) - 1,
    clearTimer: () => {},
  });
  return { refresher, rtc, logs, asked, timers, advance: (ms) => (now += ms) };
}

test("a refresh replaces the shared iceServers and schedules the next one", async () => {
  const fresh = [{ urls: ["turn:new"], username: `1700006480:${PEER}`, credential: "y" }];
  const h = harness([[200, { ice_servers: fresh, expires: 1_700_006_480, ttl_s: 3600 }]]);
  h.refresher.start();
  assert.equal(h.timers[0].ms, 2880_000);
  h.advance(2880_000);
  assert.equal(await h.refresher.refresh(), true);
  assert.equal(h.asked[0], `${PAGE}turn/credentials?peer=${PEER}`);
  assert.deepEqual(h.rtc.iceServers, fresh);
  assert.equal(h.rtc.iceTransportPolicy, "relay");
  assert.equal(h.timers.at(-1).ms, 2880_000);
  assert.deepEqual(
    h.logs.map((l) => l.code),
    ["turn_refreshed"],
  );
});

test("a failed refresh keeps the old servers, retries, and says when they expired", async () => {
  const h = harness([
    [429, { error: "rate_limited", message: "too many" }, { "Retry-After": "12" }],
    [503, null],
  ]);
  const old = h.rtc.iceServers;
  assert.equal(await h.refresher.refresh(), false);
  assert.equal(h.rtc.iceServers, old);
  assert.equal(h.timers.at(-1).ms, 12_000);
  assert.match(h.logs[0].message, /^rate_limited:/);
  h.advance(3600_000);
  assert.equal(h.refresher.expired, true);
  assert.equal(await h.refresher.refresh(), false);
  assert.equal(h.timers.at(-1).ms, RETRY_MS);
  assert.deepEqual(
    h.logs.map((l) => l.code),
    ["turn_refresh_failed", "turn_refresh_failed", "turn_expired"],
  );
  assert.match(h.logs[1].message, /^http_503:/);
});
