// Supernodes in the browser's protocol module (static/swarm/protocol/supernode.js) against
// tests/vectors/supernode.json, which pytest checks for Python (tests/test_supernode.py), and
// fake-clock unit tests of what the vectors do not cover.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import * as ed25519 from "../../static/swarm/protocol/ed25519.js";
import { fromHex } from "../../static/swarm/protocol/encoding.js";
import { ProtocolError } from "../../static/swarm/protocol/errors.js";
import {
  ADVERT_TTL_MS,
  advertBody,
  checkBody,
  DOMAIN_SUPERNODE,
  elect,
  MAX_ADVERT_BYTES,
  parseAdvert,
  REPUBLISH_MS,
  SupernodeView,
  seats,
  signAdvert,
  stagger,
  TOPIC_SUPERNODE,
  tiebreak,
} from "../../static/swarm/protocol/supernode.js";
import { prng } from "./support/sim.mjs";

const vectors = JSON.parse(readFileSync(new URL("../vectors/supernode.json", import.meta.url), "utf8"));
const NOW = vectors.now;
const COMMUNITY = vectors.community;
const KEYS = vectors.keys;
const pid = (label) => KEYS[label].peer_id;
const signers = {};
for (const label of Object.keys(KEYS)) signers[label] = await ed25519.signerFromSeed(fromHex(KEYS[label].seed_hex));
const codeOf = (fn) => {
  try {
    fn();
  } catch (error) {
    if (error instanceof ProtocolError) return error.code;
    throw error;
  }
  return "ok";
};
const rejectsWith = (promise, code, message) => assert.rejects(promise, (e) => e instanceof ProtocolError && e.code === code, message);

function shuffle(items, random) {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

test("the constants are the spec's", () => {
  assert.deepEqual([DOMAIN_SUPERNODE, TOPIC_SUPERNODE], ["swarm/supernode/v1", "supernode"]);
  assert.deepEqual([MAX_ADVERT_BYTES, ADVERT_TTL_MS, REPUBLISH_MS], [1024, 150_000, 60_000]);
});

test("valid adverts parse and are signed again byte for byte", async () => {
  for (const c of vectors.valid) {
    const body = c.envelope.body;
    const advert = await parseAdvert(c.envelope, { now: NOW, community: body.community });
    assert.deepEqual(advertBody(advert), body, c.name);
    assert.equal(advert.envelope, c.envelope, c.name);
    assert.deepEqual(await signAdvert(signers[c.signer], body), c.envelope, c.name);
  }
});

test("invalid adverts fail with their code", async () => {
  for (const c of vectors.invalid) await rejectsWith(parseAdvert(c.envelope, { now: NOW, community: COMMUNITY }), c.error, c.name);
});

test("signing what receivers refuse fails with the same code", async () => {
  for (const c of vectors.sign_invalid) await rejectsWith(signAdvert(signers[c.signer], c.body), c.error, c.name);
});

test("stagger lets the best speak first", () => {
  assert.deepEqual([0, 180, 880, 1000, 2000].map(stagger), [20_000, 16_400, 2400, 0, 0]);
});

test("seats and the tie-break are the vectors'", () => {
  for (const [n, k] of vectors.seats) assert.equal(seats(n), k, `n=${n}`);
  for (const c of vectors.tiebreak) assert.equal(tiebreak(c.peer_id, c.epoch), c.value);
});

test("elections are the vectors' whatever the order of the adverts", () => {
  const random = prng(3);
  for (const c of vectors.elections) {
    const adverts = c.adverts.map(checkBody);
    assert.deepEqual(elect(adverts, c.now), c.expect, c.name);
    for (let i = 0; i < 5; i++) assert.deepEqual(elect(shuffle(adverts, random), c.now), c.expect, c.name);
  }
});

function runStep(view, step) {
  switch (step.op) {
    case "receive": {
      const advert = checkBody(step.advert);
      assert.equal(
        codeOf(() => view.receive(advert, step.at)),
        step.expect,
      );
      break;
    }
    case "elected":
      assert.deepEqual(view.elected(step.at), step.expect);
      break;
    case "due": {
      const body = view.advertDue(step.at);
      assert.deepEqual(body, step.expect);
      if (body !== null) view.receive(checkBody(body), step.at);
      break;
    }
    case "local": {
      const s = step.state;
      view.setLocal({ uptime: s.uptime, upKbps: s.up_kbps, conns: s.conns, swarm: s.swarm, optIn: s.opt_in, superpeer: s.superpeer });
      break;
    }
    case "deadline":
      assert.equal(view.nextDeadline(step.at), step.expect);
      break;
    default:
      throw new Error(step.op);
  }
}

test("SupernodeView scenarios", () => {
  for (const c of vectors.scenarios) {
    const view = new SupernodeView({ community: COMMUNITY, now: c.view.now, selfId: c.view.self, maxAdverts: c.view.max_adverts });
    c.steps.forEach((step, i) => {
      try {
        runStep(view, step);
      } catch (error) {
        error.message = `${c.name}, step ${i} (${step.op} at ${step.at}): ${error.message}`;
        throw error;
      }
    });
  }
});

// --- fake-clock unit tests ---

const LABELS = Object.keys(KEYS).filter((label) => label.startsWith("n"));

function browser(label, at, fields = {}) {
  return {
    peerId: pid(label),
    community: COMMUNITY,
    issuedAt: at,
    expiresAt: at + ADVERT_TTL_MS,
    uptime: 3600,
    upKbps: 2000,
    conns: 8,
    swarm: 10,
    optIn: true,
    superpeer: false,
    elected: false,
    envelope: null,
    ...fields,
  };
}

test("accept parses then takes an advert, and refuses the same one twice", async () => {
  const view = new SupernodeView({ community: COMMUNITY, now: NOW });
  const envelope = vectors.valid[0].envelope;
  const advert = await view.accept(envelope, NOW);
  assert.equal(advert.peerId, pid("bob"));
  assert.deepEqual(view.adverts(NOW), [envelope]);
  await rejectsWith(view.accept(envelope, NOW), "replay");
  await rejectsWith(view.accept(vectors.invalid[2].envelope, NOW), "bad_signature");
  assert.deepEqual(view.adverts(NOW + ADVERT_TTL_MS), []);
});

test("seat holders stay while challengers come and go: no flap", () => {
  const view = new SupernodeView({ community: COMMUNITY, now: NOW });
  view.receive(browser("n00", NOW, { elected: true }), NOW);
  view.receive(browser("n01", NOW, { elected: true, uptime: 3660 }), NOW);
  const before = view.elected(NOW);
  for (let conns = 8; conns < 15; conns++) {
    const at = NOW + 5000 * (conns - 7);
    view.receive(browser("n02", at, { conns }), at); // 180 .. 240 points
    if (conns * 10 + 100 <= 225) assert.deepEqual(view.elected(at), before, `conns ${conns}`);
  }
  assert.deepEqual(view.elected(NOW + 35_000), [pid("n02"), pid("n01")]);
});

test("the set does not depend on the order adverts arrive in", () => {
  const random = prng(7);
  const adverts = LABELS.map((label) => browser(label, NOW - Math.floor(random() * 100_000), { conns: Math.floor(random() * 40), swarm: 1000 }));
  let expected = null;
  for (let i = 0; i < 10; i++) {
    const view = new SupernodeView({ community: COMMUNITY, now: NOW });
    for (const a of shuffle(adverts, random)) view.receive(a, NOW);
    expected ??= view.elected(NOW);
    assert.deepEqual(view.elected(NOW), expected);
  }
  assert.equal(expected.length, 8); // 20 adverts, estimate 1000: 8 seats
});

test("outranked peers stay quiet and speak when seats empty", () => {
  const view = new SupernodeView({ community: COMMUNITY, now: NOW - 100_000, selfId: pid("n19") });
  for (const label of LABELS.slice(0, 4)) view.receive(browser(label, NOW, { conns: 20 }), NOW);
  view.setLocal({ uptime: 3600, upKbps: 2000, conns: 8, swarm: 10 });
  for (let t = NOW; t < NOW + ADVERT_TTL_MS; t += 5000) assert.equal(view.advertDue(t), null);
  assert.equal(view.advertDue(NOW + ADVERT_TTL_MS), null); // the four expired: it waits its turn
  const at = NOW + ADVERT_TTL_MS + stagger(180);
  assert.equal(view.nextDeadline(NOW + ADVERT_TTL_MS), at);
  const body = view.advertDue(at);
  assert.equal(body?.elected, false);
  view.receive(checkBody(body), at);
  assert.equal(view.advertDue(at + 5000)?.elected, true);
});

test("a table of throwaway keys stays bounded, the best kept", () => {
  const view = new SupernodeView({ community: COMMUNITY, now: NOW, maxAdverts: 10 });
  for (const [i, label] of LABELS.entries()) view.receive(browser(label, NOW, { conns: 3 + i }), NOW); // each better: taken
  assert.equal(
    codeOf(() => view.receive(browser("alice", NOW, { conns: 3 }), NOW)),
    "table_full",
  );
  assert.deepEqual(new Set(view.held.keys()), new Set(LABELS.slice(10).map(pid)));
});

test("local numbers out of range are clamped into a valid advert", async () => {
  const view = new SupernodeView({ community: COMMUNITY, now: NOW - 100_000, selfId: pid("alice") });
  view.setLocal({ uptime: 2 ** 40, upKbps: 2 ** 40, conns: 5000, swarm: 0 });
  assert.equal(view.advertDue(NOW), null);
  const body = view.advertDue(NOW + stagger(880));
  const advert = await parseAdvert(await signAdvert(signers.alice, body), { now: NOW + 2400, community: COMMUNITY });
  assert.deepEqual([advert.conns, advert.swarm, advert.upKbps], [1024, 1, 10_000_000]);
});

test("junk is refused with a code, never a crash", async () => {
  const view = new SupernodeView({ community: COMMUNITY, now: NOW });
  for (const junk of [null, 1, "x", [], {}, { v: 1 }, { v: 1, alg: "ed25519", pk: 1, sig: 2, body: {} }]) {
    await assert.rejects(view.accept(junk, NOW), (e) => e instanceof ProtocolError && ["bad_envelope", "bad_advert"].includes(e.code), JSON.stringify(junk));
  }
});
