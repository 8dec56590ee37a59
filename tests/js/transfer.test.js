// The download scheduler (static/swarm/protocol/transfer.js) with a fake clock: windows, several
// sources, bad chunks re-fetched and penalised, lost peers, resume, timeouts, pacing.
import assert from "node:assert/strict";
import { test } from "node:test";

import { NO_SOURCE, Transfer, TRANSFER_DEFAULTS } from "../../static/swarm/protocol/transfer.js";

const T0 = 1_000_000;
const A = "pa";
const B = "pb";
const C = "pc";
const CHUNK = 65_552;

const reqs = (actions, type = "chunk_req") => actions.filter((a) => a.type === type);
const byPeer = (actions) => {
  const out = {};
  for (const a of reqs(actions)) {
    out[a.peerId] ??= [];
    out[a.peerId].push(a.index);
  }
  return out;
};

function chunked(count, options = {}, held = []) {
  return new Transfer({ manifestId: "m", now: T0, chunkCount: count, held, options });
}

// Answer every outstanding request in order, one peer at a time, as fast as asked, until done.
function drain(t, now, { serve = () => "ok", limit = 100_000 } = {}) {
  const queue = reqs(t.takeActions());
  const log = [];
  let n = 0;
  while (queue.length && n++ < limit) {
    const { peerId, index } = queue.shift();
    if (!t.expects(peerId, index)) continue; // the adapter drops what it no longer waits for
    const verdict = serve(peerId, index);
    log.push({ peerId, index, verdict });
    if (verdict === "ok") t.chunkAccepted(peerId, index, CHUNK, now);
    else if (verdict === "missing") t.chunkMissing(peerId, index, now);
    else if (verdict === "bad") t.chunkRejected(peerId, index, "chunk_mismatch", "hash differs", now);
    else continue; // silent: never answered
    const next = t.takeActions();
    queue.push(...reqs(next));
    log.push(...next.filter((a) => a.type !== "chunk_req"));
  }
  return log;
}

test("one complete source gets at most perSource requests in flight, lowest indices first", () => {
  const t = chunked(100);
  t.have(A, 100, T0);
  const asked = reqs(t.takeActions());
  assert.equal(asked.length, TRANSFER_DEFAULTS.perSource);
  assert.deepEqual(
    asked.map((a) => a.index),
    [...Array(TRANSFER_DEFAULTS.perSource).keys()],
  );
  t.chunkAccepted(A, 0, CHUNK, T0 + 5);
  assert.deepEqual(
    reqs(t.takeActions()).map((a) => a.index),
    [TRANSFER_DEFAULTS.perSource],
    "one answer frees one slot",
  );
});

test("the window bounds requests across sources and each source stays within its share", () => {
  const t = chunked(500);
  for (const [i, p] of ["p1", "p2", "p3", "p4", "p5"].entries()) t.have(p, 500, T0 + i);
  const per = byPeer(t.takeActions());
  const total = Object.values(per).reduce((n, l) => n + l.length, 0);
  assert.equal(total, TRANSFER_DEFAULTS.window);
  for (const list of Object.values(per)) assert.ok(list.length <= TRANSFER_DEFAULTS.perSource);
  const all = Object.values(per).flat();
  assert.equal(new Set(all).size, all.length, "no index asked twice");
});

test("two sources share the work and the transfer completes", () => {
  const t = chunked(320);
  t.have(A, 320, T0);
  t.have(B, 320, T0);
  const log = drain(t, T0 + 10);
  const served = {};
  for (const e of log) if (e.verdict === "ok") served[e.peerId] = (served[e.peerId] ?? 0) + 1;
  assert.ok(served[A] > 50 && served[B] > 50, JSON.stringify(served));
  assert.equal(served[A] + served[B], 320);
  assert.ok(log.some((e) => e.type === "complete"));
  assert.equal(t.phase, "complete");
  assert.equal(t.heldCount, 320);
});

test("a bad chunk is fetched again from another holder and its sender is penalised and dropped", () => {
  const t = chunked(40, { perSource: 8 });
  t.have(A, 40, T0);
  t.have(B, 40, T0);
  let corrupted = null;
  const log = drain(t, T0 + 10, {
    serve: (peer, index) => {
      if (peer === B && corrupted === null) {
        corrupted = index;
        return "bad";
      }
      return "ok";
    },
  });
  const penalties = log.filter((e) => e.type === "penalize");
  assert.deepEqual(
    penalties.map((p) => [p.peerId, p.code]),
    [[B, "chunk_mismatch"]],
  );
  const refetch = log.filter((e) => e.index === corrupted && e.verdict === "ok");
  assert.deepEqual(
    refetch.map((e) => e.peerId),
    [A],
    "the corrupted index came from the other holder",
  );
  const afterPenalty = log.slice(log.indexOf(penalties[0]));
  assert.ok(!afterPenalty.some((e) => e.peerId === B && e.verdict), "B is never asked again");
  assert.equal(t.phase, "complete");
  t.have(B, 40, T0 + 20); // its adverts are ignored from now on
  assert.equal(t.progress(T0 + 20).dropped[B], "chunk_mismatch");
});

test("a chunk a partial holder lacks goes to another source, and not back to it", () => {
  const t = chunked(20);
  t.have(A, 20, T0);
  t.have(B, 10, T0); // partial: it holds some chunks, we do not know which
  const log = drain(t, T0 + 10, { serve: (peer, index) => (peer === B && index % 2 === 1 ? "missing" : "ok") });
  for (const e of log.filter((x) => x.verdict === "missing")) {
    const again = log.filter((x) => x.index === e.index && x.verdict === "ok");
    assert.deepEqual(
      again.map((x) => x.peerId),
      [A],
    );
  }
  assert.equal(t.phase, "complete");
});

test("a lost peer's requests go to the remaining holder", () => {
  const t = chunked(64, { perSource: 16 });
  t.have(A, 64, T0);
  t.have(B, 64, T0);
  const first = byPeer(t.takeActions());
  assert.ok(first[A].length && first[B].length);
  t.peerClosed(A, T0 + 1);
  const moved = byPeer(t.takeActions());
  assert.equal(moved[A], undefined);
  // B already holds its full share in flight; as it answers, A's indices come its way.
  const queue = [...first[B], ...(moved[B] ?? [])];
  const seen = new Set();
  while (queue.length) {
    const index = queue.shift();
    seen.add(index);
    t.chunkAccepted(B, index, CHUNK, T0 + 2);
    for (const a of reqs(t.takeActions())) {
      assert.equal(a.peerId, B);
      queue.push(a.index);
    }
  }
  for (const index of first[A]) assert.ok(seen.has(index), `index ${index} re-asked of B`);
  assert.equal(t.phase, "complete");
});

test("a resumed transfer asks only for what is not stored yet", () => {
  const held = [...Array(30).keys()].filter((i) => i % 3 !== 0);
  const t = chunked(30, {}, held);
  assert.equal(t.heldCount, 20);
  t.have(A, 30, T0);
  assert.deepEqual(
    reqs(t.takeActions()).map((a) => a.index),
    [0, 3, 6, 9, 12, 15, 18, 21, 24, 27],
  );
  const whole = chunked(5, {}, [0, 1, 2, 3, 4]);
  assert.equal(whole.phase, "complete");
  assert.deepEqual(whole.takeActions(), [{ type: "complete" }]);
});

test("a chunk found lost after completion is pending again and asked of a holder", () => {
  const t = chunked(5, {}, [0, 1, 2, 3]);
  t.have(A, 5, T0);
  assert.deepEqual(
    reqs(t.takeActions()).map((a) => a.index),
    [4],
  );
  t.chunkAccepted(A, 4, CHUNK, T0);
  assert.deepEqual(t.takeActions(), [{ type: "complete" }]);
  t.chunkLost(3, T0 + 1);
  assert.equal(t.phase, "chunks");
  assert.equal(t.heldCount, 4);
  assert.deepEqual(
    reqs(t.takeActions()).map((a) => [a.peerId, a.index]),
    [[A, 3]],
  );
  t.chunkLost(3, T0 + 2); // asked already, not held: nothing changes
  assert.deepEqual(t.takeActions(), []);
  t.chunkAccepted(A, 3, CHUNK, T0 + 3);
  assert.deepEqual(t.takeActions(), [{ type: "complete" }]);
});

test("unanswered requests go elsewhere after the timeout; a silent source is dropped", () => {
  const o = TRANSFER_DEFAULTS;
  const t = chunked(8);
  t.have(A, 8, T0);
  const toA = reqs(t.takeActions()).map((a) => a.index);
  assert.equal(toA.length, 8);
  t.have(B, 8, T0 + 10);
  assert.equal(reqs(t.takeActions()).length, 0, "nothing left to ask");
  assert.ok(t.nextDeadline(T0 + 10) <= T0 + o.requestTimeoutMs);
  t.tick(T0 + o.requestTimeoutMs);
  const actions = t.takeActions();
  assert.deepEqual(
    reqs(actions).map((a) => [a.peerId, a.index]),
    toA.map((i) => [B, i]),
  );
  assert.deepEqual(
    actions.filter((a) => a.type === "dropped").map((a) => [a.peerId, a.code]),
    [[A, "timeout"]],
    "8 timeouts in a row: A is dropped (not penalised: it may just be slow)",
  );
});

test("requests to one source are paced under the wire's frame rate", () => {
  const t = chunked(100, { burst: 3, rate: 10, perSource: 50, window: 50 });
  t.have(A, 100, T0);
  assert.equal(reqs(t.takeActions()).length, 3);
  assert.equal(t.nextDeadline(T0), T0 + 100, "the next token is due in 100 ms");
  t.tick(T0 + 100);
  assert.equal(reqs(t.takeActions()).length, 1);
  t.tick(T0 + 400);
  assert.equal(reqs(t.takeActions()).length, 3);
});

test("the faster source is asked first when the window is the limit", () => {
  const t = chunked(400, { window: 8, perSource: 8 });
  t.have(A, 400, T0);
  t.have(B, 400, T0);
  let now = T0;
  let asked = reqs(t.takeActions());
  // B answers 4x as fast as A for a while.
  for (let round = 0; round < 20; round++) {
    now += 10;
    const next = [];
    for (const a of asked) {
      if (a.peerId === B || round % 4 === 0) t.chunkAccepted(a.peerId, a.index, CHUNK, now);
      else next.push(a);
    }
    asked = [...next, ...reqs(t.takeActions())];
  }
  const p = t.progress(now);
  const [a, b] = [A, B].map((id) => p.sources.find((s) => s.peerId === id));
  assert.ok(b.received > 2 * a.received, `B ${b.received} vs A ${a.received}`);
  assert.ok(b.rate > a.rate);
});

test("endgame: with nothing pending an idle source re-asks an old request", () => {
  const o = TRANSFER_DEFAULTS;
  const t = chunked(4);
  t.have(A, 4, T0);
  assert.equal(reqs(t.takeActions()).length, 4);
  t.have(B, 4, T0 + 1);
  assert.equal(reqs(t.takeActions()).length, 0);
  t.tick(T0 + o.endgameAfterMs);
  const dup = reqs(t.takeActions());
  assert.deepEqual(
    dup.map((a) => a.peerId),
    [B, B, B, B],
  );
  for (const a of dup) t.chunkAccepted(B, a.index, CHUNK, T0 + o.endgameAfterMs + 5);
  assert.equal(t.phase, "complete");
  assert.equal(t.chunkAccepted(A, 0, CHUNK, T0 + o.endgameAfterMs + 9), false, "late duplicate ignored");
});

test("the manifest is asked of holders first, then of connected peers; bad ones fail closed", () => {
  const o = TRANSFER_DEFAULTS;
  const t = new Transfer({ manifestId: "m", now: T0 });
  t.peerOpened(C, T0);
  assert.deepEqual(t.takeActions(), [], "no advert yet: wait before probing");
  t.have(A, 10, T0 + 5);
  assert.deepEqual(t.takeActions(), [{ type: "manifest_req", peerId: A }]);
  assert.ok(t.awaitsManifestFrom(A));
  t.manifestRejected(A, "bad_signature", "forged", T0 + 6);
  assert.deepEqual(t.takeActions(), [{ type: "penalize", peerId: A, code: "bad_signature", message: "forged" }]);
  t.have(A, 10, T0 + 7);
  assert.deepEqual(t.takeActions(), [], "a peer that sent a bad manifest is not asked again");
  t.tick(T0 + o.probeAfterMs);
  assert.deepEqual(t.takeActions(), [{ type: "manifest_req", peerId: C }], "probe a connected peer");
  t.manifestAbsent(C, T0 + o.probeAfterMs + 3);
  t.peerOpened(B, T0 + o.probeAfterMs + 4);
  assert.deepEqual(t.takeActions(), [{ type: "manifest_req", peerId: B }]);
  t.tick(T0 + o.probeAfterMs + 4 + o.manifestTimeoutMs);
  assert.deepEqual(t.takeActions(), [], "B timed out; A is dropped and C was asked recently");
  t.manifestReady(B, 3, [], T0 + o.probeAfterMs + 4 + o.manifestTimeoutMs + 1);
  assert.deepEqual(
    reqs(t.takeActions()).map((a) => [a.peerId, a.index]),
    [
      [B, 0],
      [B, 1],
      [B, 2],
    ],
    "the peer that served the manifest is a source",
  );
});

test("with nobody to serve it the transfer waits, resumes with a new holder, and gives up only when told to", () => {
  const t = chunked(3);
  t.have(A, 3, T0);
  const asked = reqs(t.takeActions());
  t.chunkAccepted(A, asked[0].index, CHUNK, T0 + 1);
  t.peerClosed(A, T0 + 2);
  assert.deepEqual(t.progress(T0 + 2).waiting, { reason: "holders_gone", since: T0 + 2 });
  t.tick(T0 + 3_600_000);
  assert.equal(t.phase, "chunks", "no give-up timeout: still waiting an hour later");
  assert.deepEqual(t.takeActions(), []);
  t.have(B, 3, T0 + 3_600_001);
  assert.deepEqual(
    reqs(t.takeActions()).map((a) => [a.peerId, a.index]),
    [
      [B, 1],
      [B, 2],
    ],
  );
  assert.equal(t.progress(T0 + 3_600_001).waiting, null);

  const giveUpAfterMs = 60_000;
  const bounded = chunked(3, { giveUpAfterMs });
  bounded.have(A, 3, T0);
  bounded.takeActions();
  bounded.peerClosed(A, T0 + 2);
  bounded.tick(T0 + 2 + giveUpAfterMs - 1);
  assert.equal(bounded.phase, "chunks");
  bounded.tick(T0 + 2 + giveUpAfterMs);
  assert.equal(bounded.phase, "failed");
  assert.deepEqual(bounded.takeActions().at(-1), { type: "failed", code: NO_SOURCE, message: bounded.result.message });

  const forged = new Transfer({ manifestId: "m", now: T0, options: { giveUpAfterMs } });
  forged.have(A, 3, T0);
  forged.takeActions();
  forged.manifestRejected(A, "manifest_mismatch", "not the id asked for", T0 + 1);
  forged.tick(T0 + 1 + giveUpAfterMs);
  assert.equal(forged.result.code, "manifest_mismatch", "only bad manifests: that is the reason");
});

test("a 320-chunk download from a fast and a slow source survives losing one of them", () => {
  // Event simulation: each source answers after its own latency; A disappears at 40%.
  const t = chunked(320);
  const latency = { [A]: 4, [B]: 9 };
  let now = T0;
  t.have(A, 320, now);
  t.have(B, 320, now);
  const events = reqs(t.takeActions()).map((r) => ({ at: now + latency[r.peerId], ...r }));
  let lost = false;
  const served = { [A]: 0, [B]: 0 };
  while (events.length && !t.done) {
    events.sort((x, y) => x.at - y.at);
    const e = events.shift();
    now = e.at;
    if (e.peerId === A && lost) continue;
    if (t.expects(e.peerId, e.index) && t.chunkAccepted(e.peerId, e.index, CHUNK, now)) served[e.peerId] += 1;
    if (!lost && t.heldCount >= 128) {
      lost = true;
      t.peerClosed(A, now);
    }
    for (const r of reqs(t.takeActions())) events.push({ at: now + latency[r.peerId], ...r });
  }
  assert.equal(t.phase, "complete");
  assert.ok(served[A] > 0 && served[B] > 0);
  assert.equal(served[A] + served[B], 320);
});

test("a seeded churn soak: limits hold, nothing is asked of bad or absent peers, a good holder finishes it", () => {
  let seed = 12345;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const pick = (list) => list[Math.floor(random() * list.length)];
  const peers = ["pa", "pb", "pc", "pd"];
  for (let round = 0; round < 200; round++) {
    const count = 1 + Math.floor(random() * 40);
    const options = { perSource: 1 + Math.floor(random() * 8), window: 1 + Math.floor(random() * 12), burst: 20, rate: 50 };
    let now = 0;
    const t = new Transfer({ manifestId: "m", now, chunkCount: random() < 0.5 ? count : null, options });
    const asked = new Map(); // peer -> indices asked, oldest first
    const bad = new Set();
    const collect = () => {
      for (const a of t.takeActions()) {
        if (a.type === "chunk_req") {
          assert.ok(t.sources.has(a.peerId) && !bad.has(a.peerId), `asked ${a.peerId}`);
          assert.ok(t.needs(a.index), "asked for a chunk already held");
          (asked.get(a.peerId) ?? asked.set(a.peerId, []).get(a.peerId)).push(a.index);
        } else if (a.type === "penalize") bad.add(a.peerId);
        else if (a.type === "failed") assert.fail("no give-up timeout: it must never fail");
      }
      for (const s of t.sources.values()) assert.ok(s.inFlight.size <= options.perSource);
      assert.ok(t.progress(now).inFlight <= options.window);
      if (t.progress(now).waiting) assert.equal(t.progress(now).inFlight, 0);
    };
    const answer = (peerId, verdict) => {
      const list = (asked.get(peerId) ?? []).filter((i) => t.expects(peerId, i));
      if (!list.length) return;
      const index = list[0];
      asked.set(
        peerId,
        (asked.get(peerId) ?? []).filter((i) => i !== index),
      );
      if (verdict === "ok") t.chunkAccepted(peerId, index, CHUNK, now);
      else if (verdict === "missing") t.chunkMissing(peerId, index, now);
      else t.chunkRejected(peerId, index, "chunk_mismatch", "hash differs", now);
    };
    collect();
    for (let step = 0; step < 60; step++) {
      const op = pick(["have", "open", "close", "answer", "answer", "tick", "lost"]);
      if (op === "have") t.have(pick(peers), Math.floor(random() * 41), now);
      else if (op === "open") t.peerOpened(pick(peers), now);
      else if (op === "close") t.peerClosed(pick(peers), now);
      else if (op === "answer") answer(pick(peers), pick(["ok", "ok", "ok", "missing", "bad"]));
      else if (op === "tick") {
        now += 1 + Math.floor(random() * 12_000);
        t.tick(now);
      } else t.chunkLost(Math.floor(random() * 40), now);
      collect();
    }
    t.peerOpened("pz", now);
    t.have("pz", count, now);
    collect();
    for (let i = 0; i < 20_000 && t.phase !== "complete"; i++) {
      if (t.manifestAsk) t.manifestReady(t.manifestAsk.peerId, count, [], now);
      else if ((asked.get("pz") ?? []).some((index) => t.expects("pz", index))) answer("pz", "ok");
      else {
        now += 100;
        t.tick(now);
      }
      collect();
    }
    assert.equal(t.phase, "complete", `round ${round}`);
    assert.equal(t.heldCount, count);
  }
});
