// Post logs in the browser modules: chain rules, edits and deletes, forks with proof, and
// reconciliation between two peers converging whatever each one holds.
import assert from "node:assert/strict";
import { test } from "node:test";

import { digestId } from "../../static/swarm/protocol/chunks.js";
import * as ed25519 from "../../static/swarm/protocol/ed25519.js";
import { peerIdForKey, utf8 } from "../../static/swarm/protocol/encoding.js";
import { ProtocolError } from "../../static/swarm/protocol/errors.js";
import { AuthorLog, ForkError, MAX_SUMMARY_AUTHORS, nextPost, parseSummary, reconcile, summarize, verifyLog } from "../../static/swarm/protocol/postlog.js";
import { makePost, verifyPost } from "../../static/swarm/protocol/posts.js";

const NOW = 1_800_000_000_000;
const signers = await Promise.all([1, 2, 3].map((i) => ed25519.signerFromSeed(new Uint8Array(32).fill(i))));
const ids = await Promise.all(signers.map((s) => peerIdForKey(s.publicKey)));

async function grow(log, signer, count, start = 0) {
  for (let i = 0; i < count; i++) {
    log.append(await verifyPost(await nextPost(log, signer, { now: NOW + start + i, text: `post ${start + i}` })));
  }
  return log;
}

function prefix(log, count) {
  const out = new AuthorLog(log.author);
  for (const entry of log.entries.slice(0, count)) out.append(entry);
  return out;
}

// What a peer does with a batch received in a sync.
async function apply(logs, envelopes) {
  for (const envelope of envelopes) {
    const entry = await verifyPost(envelope, { now: NOW + 10_000 });
    if (!logs.has(entry.author)) logs.set(entry.author, new AuthorLog(entry.author));
    logs.get(entry.author).append(entry);
  }
}

const theirSummary = (logs) => parseSummary(JSON.parse(JSON.stringify(summarize(logs))));

test("a log with edits and deletes shows the current posts", async () => {
  const log = new AuthorLog(ids[0]);
  const add = async (fields) => {
    const entry = await verifyPost(await nextPost(log, signers[0], fields));
    log.append(entry);
    return entry;
  };
  const first = await add({ now: NOW, text: "first", name: "A" });
  const second = await add({ now: NOW + 1, attachments: [await digestId(utf8.encode("m"))] });
  await add({ now: NOW + 2, kind: "edit", text: "1st", target: first.hash });
  await add({ now: NOW + 3, kind: "edit", text: "one", target: first.hash });
  await add({ now: NOW + 4, kind: "delete", target: second.hash });
  const [view, ...rest] = log.posts();
  assert.equal(rest.length, 0);
  assert.deepEqual([view.id, view.text, view.createdAt, view.editedAt], [first.hash, "one", NOW, NOW + 3]);
  const again = await verifyLog(
    log.entries.map((e) => e.envelope),
    { now: NOW },
  );
  assert.deepEqual(again.posts(), log.posts());
  assert.equal(log.append(log.entryAt(1)), false, "a repeated entry is not an error");
});

test("a fork is reported with both signed entries as proof", async () => {
  const log = await grow(new AuthorLog(ids[0]), signers[0], 3);
  const other = await verifyPost(await makePost(signers[0], { seq: 1, prev: log.entryAt(0).hash, createdAt: NOW + 1, text: "other" }));
  assert.throws(
    () => log.append(other),
    (e) => {
      assert.ok(e instanceof ForkError);
      assert.equal(e.code, "fork");
      assert.deepEqual(e.fork.hashes, [log.entryAt(1).hash, other.hash]);
      assert.equal(e.fork.evidence.length, 2);
      return true;
    },
  );
  assert.equal(log.length, 3);
});

test("an entry ahead of the log is a gap, then sync fills it", async () => {
  const source = await grow(new AuthorLog(ids[0]), signers[0], 4);
  const log = prefix(source, 1);
  assert.throws(
    () => log.append(source.entryAt(3)),
    (e) => e instanceof ProtocolError && e.code === "gap",
  );
  const mine = new Map([[ids[0], log]]);
  const result = reconcile(new Map([[ids[0], source]]), theirSummary(mine));
  await apply(mine, result.send);
  assert.deepEqual(log.head, source.head);
});

test("entries of another author or off the chain are refused", async () => {
  const log = await grow(new AuthorLog(ids[0]), signers[0], 2);
  const stranger = await grow(new AuthorLog(ids[1]), signers[1], 3);
  assert.throws(
    () => log.append(stranger.entryAt(2)),
    (e) => e.code === "bad_post",
  );
  const wrongPrev = await verifyPost(await makePost(signers[0], { seq: 2, prev: await digestId(utf8.encode("x")), createdAt: NOW + 5, text: "x" }));
  assert.throws(
    () => log.append(wrongPrev),
    (e) => e.code === "broken_chain",
  );
  const back = await nextPost(log, signers[0], { now: NOW - 60_000, text: "clock went back" });
  assert.equal(back.body.created_at, log.entryAt(1).createdAt);
});

test("text that is not valid Unicode is refused", async () => {
  await assert.rejects(makePost(signers[0], { seq: 0, prev: null, createdAt: NOW, text: "half \ud83d" }), (e) => e.code === "bad_post");
});

test("a summary is bounded and strict", async () => {
  const head = { seq: 0, hash: await digestId(utf8.encode("h")) };
  const tooMany = {};
  for (let i = 0; i <= MAX_SUMMARY_AUTHORS; i++) tooMany[await peerIdForKey(new Uint8Array([i >> 8, i & 255]))] = head;
  assert.throws(
    () => parseSummary(tooMany),
    (e) => e.code === "bad_sync",
  );
});

// A small deterministic PRNG so every run covers the same cases.
function rng(seed) {
  let x = seed;
  return (n) => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x % n;
  };
}

test("two peers converge whatever each holds (200 random cases)", async () => {
  const full = await Promise.all(signers.map((s, i) => grow(new AuthorLog(ids[i]), s, 6)));
  const random = rng(42);
  for (let round = 0; round < 200; round++) {
    const lengths = full.map(() => random(7));
    const a = new Map();
    const b = new Map();
    const expected = {};
    full.forEach((log, i) => {
      const ha = Math.min(random(7), lengths[i]);
      const hb = Math.min(random(7), lengths[i]);
      a.set(log.author, prefix(log, ha));
      b.set(log.author, prefix(log, hb));
      const held = Math.max(ha, hb);
      if (held) expected[log.author] = { seq: held - 1, hash: log.entryAt(held - 1).hash };
    });
    const limit = 1 + random(8);
    let done = false;
    for (let step = 0; step < 50 && !done; step++) {
      const toB = reconcile(a, theirSummary(b), { limit });
      await apply(b, toB.send);
      const toA = reconcile(b, theirSummary(a), { limit });
      await apply(a, toA.send);
      assert.equal(toB.forks.length + toA.forks.length, 0);
      done = toB.complete && toA.complete && !toB.send.length && !toA.send.length;
    }
    assert.ok(done, `round ${round} did not finish`);
    assert.deepEqual(summarize(a), expected, `round ${round}`);
    assert.deepEqual(summarize(b), expected, `round ${round}`);
  }
});

test("a forked author is reported and never merged", async () => {
  for (const [split, extraA, extraB] of [
    [0, 1, 1],
    [2, 1, 3],
    [3, 2, 1],
  ]) {
    const base = await grow(new AuthorLog(ids[0]), signers[0], split);
    const branchA = await grow(prefix(base, split), signers[0], extraA, 100);
    const branchB = await grow(prefix(base, split), signers[0], extraB, 200);
    const a = new Map([[ids[0], branchA]]);
    const b = new Map([[ids[0], branchB]]);
    const toB = reconcile(a, theirSummary(b));
    const toA = reconcile(b, theirSummary(a));
    const reported = [...toB.forks, ...toA.forks];
    assert.ok(reported.length > 0);
    assert.ok(reported.every((f) => f.seq >= split));
    const seen = [];
    for (const [logs, batch] of [
      [b, toB.send],
      [a, toA.send],
    ]) {
      try {
        await apply(logs, batch);
      } catch (error) {
        assert.ok(error instanceof ForkError);
        seen.push(error.fork);
      }
    }
    assert.ok(seen.length > 0 && seen.every((f) => f.evidence.length === 2));
    assert.notEqual(branchA.entryAt(split).hash, branchB.entryAt(split).hash);
  }
});
