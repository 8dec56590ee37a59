// Guardians and recovery in the browser's protocol modules (seal.js, shard.js, guardian.js,
// backup.js, recovery.js) against tests/vectors/shard.json, which pytest checks for Python
// (tests/test_shard.py), then the flows people repeat with a fake clock.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { OwnerGuardians } from "../../static/swarm/protocol/backup.js";
import * as ed25519 from "../../static/swarm/protocol/ed25519.js";
import { b64urlDecode, fromHex, hex, peerIdForKey } from "../../static/swarm/protocol/encoding.js";
import { ProtocolError } from "../../static/swarm/protocol/errors.js";
import { GuardianStore } from "../../static/swarm/protocol/guardian.js";
import { keyAgreementPairFromSeed, unwrapFileKey } from "../../static/swarm/protocol/keywrap.js";
import { RecoveryCollector } from "../../static/swarm/protocol/recovery.js";
import { openSealed, seal } from "../../static/swarm/protocol/seal.js";
import {
  kindOf,
  makeReceipt,
  makeRecoverRequest,
  makeRefuse,
  makeRelease,
  makeRevoke,
  makeShare,
  openRelease,
  openShare,
  parseMessage,
  verificationCode,
} from "../../static/swarm/protocol/shard.js";
import { Network } from "./support/network.js";

const vectors = JSON.parse(readFileSync(new URL("../vectors/shard.json", import.meta.url), "utf8"));
const NOW = vectors.now;
const DAY = 86_400_000;
const KEYS = vectors.keys;
const pid = (label) => KEYS[label].peer_id;
const labelOf = (peerId) => Object.keys(KEYS).find((l) => KEYS[l].peer_id === peerId);
const signers = {};
const pairs = {};
for (const label of Object.keys(KEYS)) {
  signers[label] = await ed25519.signerFromSeed(fromHex(KEYS[label].seed_hex));
  pairs[label] = await keyAgreementPairFromSeed(fromHex(KEYS[label].x25519_seed_hex));
}
const rejectsWith = (promise, code, message) => assert.rejects(promise, (e) => e instanceof ProtocolError && e.code === code, message);

// --- the stand-in share format of the vectors (never the SLIP-39 module) ---

const check8 = (text) => createHash("sha256").update(text).digest("hex").slice(0, 8);
const standIn = (k, index, seed) => {
  const text = `swarm test share ${k} ${index} ${hex(seed)}`;
  return `${text} ${check8(text)}`;
};
function checkShare(text) {
  const at = text.lastIndexOf(" ");
  if (check8(text.slice(0, at)) !== text.slice(at + 1)) throw new ProtocolError("bad_checksum", "the share's check digits do not match");
}
function combine(texts) {
  const words = texts.map((t) => t.split(" "));
  const ks = new Set(words.map((w) => Number(w[3])));
  const indices = new Set(words.map((w) => w[4]));
  const seeds = new Set(words.map((w) => w[5]));
  if (ks.size !== 1 || texts.length !== [...ks][0] || indices.size !== texts.length || seeds.size !== 1) {
    throw new ProtocolError("bad_digest", "these shares do not combine");
  }
  return fromHex([...seeds][0]);
}

// --- vectors: sealed values ---

test("seal vectors: JS makes the same bytes and opens them", async () => {
  for (const c of vectors.seal.valid) {
    const data = fromHex(c.data_hex);
    const ephemeral = await keyAgreementPairFromSeed(fromHex(c.ephemeral_seed_hex));
    const rcpt = c.recipient;
    const sealed = await seal(data, { recipient: pid(rcpt), recipientKey: pairs[rcpt].publicKey, context: c.context, ephemeral });
    assert.equal(hex(sealed), c.sealed_hex, c.name);
    assert.deepEqual(await openSealed(sealed, { keyPair: pairs[rcpt], recipient: pid(rcpt), context: c.context }), data, c.name);
  }
});

test("sealed values that do not open fail with their code", async () => {
  for (const c of vectors.seal.open_invalid) {
    const work = openSealed(fromHex(c.sealed_hex), { keyPair: pairs[c.recipient], recipient: c.recipient_id ?? pid(c.recipient), context: c.context });
    await rejectsWith(work, c.error, c.name);
  }
  for (const c of vectors.seal.seal_invalid) {
    const recipientKey = c.recipient_key_hex ? fromHex(c.recipient_key_hex) : pairs[c.recipient].publicKey;
    await rejectsWith(seal(fromHex(c.data_hex), { recipient: c.recipient_id ?? pid(c.recipient), recipientKey, context: "c" }), c.error, c.name);
  }
  const c = vectors.seal.as_wrapped_key;
  await rejectsWith(unwrapFileKey(c.wrapped, { keyPair: pairs.bob, peerId: pid("bob") }), c.error, "a sealed value is no wrapped file key");
});

test("verification codes match Python", async () => {
  for (const c of vectors.codes) assert.equal(await verificationCode(c.request), c.code);
});

// --- vectors: messages ---

async function remake(c) {
  const body = c.envelope.body;
  const signer = signers[c.signer];
  const ephemeral = c.ephemeral_seed_hex ? await keyAgreementPairFromSeed(fromHex(c.ephemeral_seed_hex)) : null;
  switch (body.kind) {
    case "share":
      return makeShare(signer, {
        guardian: body.guardian,
        guardianKey: pairs[labelOf(body.guardian)].publicKey,
        setId: body.set,
        index: body.index,
        k: body.k,
        n: body.n,
        share: c.text,
        issuedAt: body.issued_at,
        expiresAt: body.expires_at,
        ephemeral,
      });
    case "receipt":
      return makeReceipt(signer, { owner: body.owner, set: body.set, index: body.index }, { heldAt: body.held_at });
    case "revoke":
      return makeRevoke(signer, { setId: body.set, issuedAt: body.issued_at });
    case "recover_req":
      return makeRecoverRequest(signer, pairs[c.signer].publicKey, { forPeer: body.for, issuedAt: body.issued_at, expiresAt: body.expires_at });
    case "release": {
      const request = await parseMessage(c.request, { now: NOW, kind: "recover_req" });
      return makeRelease(signer, request, { setId: body.set, index: body.index, k: body.k, n: body.n, share: c.text, ephemeral });
    }
    default:
      return makeRefuse(signer, await parseMessage(c.request, { now: NOW, kind: "recover_req" }));
  }
}

test("valid messages parse, open, and are made again byte for byte", async () => {
  for (const c of vectors.messages.valid) {
    const message = await parseMessage(c.envelope, { now: NOW });
    assert.equal(message.kind, c.envelope.body.kind, c.name);
    assert.equal(kindOf(c.envelope), message.kind, c.name);
    if (c.id) assert.equal(message.id, c.id, c.name);
    if (c.open_as) {
      const keyPair = pairs[c.open_as];
      const text = message.kind === "share" ? await openShare(message, { keyPair, peerId: pid(c.open_as) }) : await openRelease(message, { keyPair });
      assert.equal(text, c.text, c.name);
    }
    assert.deepEqual(await remake(c), c.envelope, c.name);
  }
});

test("invalid messages fail with their code", async () => {
  for (const c of vectors.messages.invalid) {
    await rejectsWith(parseMessage(c.envelope, { now: c.now ?? NOW, kind: c.kind ?? null }), c.error, c.name);
  }
  for (const c of vectors.messages.open_invalid) {
    const message = await parseMessage(c.envelope, { now: NOW });
    const keyPair = pairs[c.open_as];
    const work = message.kind === "share" ? openShare(message, { keyPair, peerId: pid(c.open_as) }) : openRelease(message, { keyPair });
    await rejectsWith(work, c.error, c.name);
  }
});

// --- vectors: scenarios ---

async function openedRelease(envelope) {
  const release = await parseMessage(envelope, { now: NOW, kind: "release" });
  const label = labelOf(release.temp);
  const text = await openRelease(release, { keyPair: pairs[label] });
  return { to: label, set: release.set, index: release.index, k: release.k, n: release.n, text };
}

test("guardian scenario", async () => {
  const s = vectors.guardian;
  const limits = { maxShares: s.limits.max_shares, maxPerOwner: s.limits.max_per_owner };
  const store = await GuardianStore.create(signers[s.guardian], pairs[s.guardian], { limits });
  const run = (step) => {
    const now = step.now;
    switch (step.op) {
      case "accept":
        return store.acceptShare(step.envelope, { now });
      case "revoke":
        return store.revoke(step.envelope, { now });
      case "request":
        return store.request(step.envelope, { now });
      case "approve":
        return store.approve(step.request, { now });
      case "refuse":
        return store.refuse(step.request, { now });
      case "receipts_for":
        return store.receiptsFor(step.owner, { now });
      case "prune":
        return store.prune(now);
      default:
        return null;
    }
  };
  for (const [i, step] of s.steps.entries()) {
    const where = `step ${i} (${step.op})`;
    if (step.error) {
      await rejectsWith(
        Promise.resolve().then(() => run(step)),
        step.error,
        where,
      );
      continue;
    }
    const result = await run(step);
    if (step.op === "accept") assert.deepEqual(result.receipt, step.receipt, where);
    else if (step.op === "revoke") assert.equal(result, step.deleted, where);
    else if (step.op === "request" && step.ignored) assert.equal(result, null, where);
    else if (step.op === "request") assert.deepEqual([result.code, result.state], [step.code, step.state], where);
    else if (step.op === "refuse") assert.deepEqual(result, step.refuse, where);
    else if (step.op === "approve") assert.deepEqual(await Promise.all(result.map(openedRelease)), step.releases, where);
    else if (step.op === "receipts_for") assert.deepEqual(result, step.receipts, where);
    if (step.held) {
      assert.deepEqual(
        store.held().map((h) => [h.share.owner, h.share.set, h.share.index]),
        step.held,
        where,
      );
    }
  }
});

const summary = (envelope) => [envelope.body.kind, envelope.body.set, envelope.body.index ?? null];

test("owner scenario", async () => {
  const s = vectors.owner;
  const owner = await OwnerGuardians.create(signers[s.owner], { lifetimeMs: s.lifetime_ms });
  for (const [i, step] of s.steps.entries()) {
    const where = `step ${i} (${step.op})`;
    if (step.op === "split") {
      const guardians = step.guardians.map((g) => (g === null ? null : { peerId: pid(g), x25519: pairs[g].publicKey }));
      const out = await owner.split(guardians, step.shares, step.k, { now: step.now, setId: step.set });
      assert.deepEqual(
        out.map((o) => [labelOf(o.to), ...summary(o.envelope)]),
        step.out,
        where,
      );
      for (const o of out) {
        const message = await parseMessage(o.envelope, { now: step.now });
        if (message.kind !== "share") continue;
        const label = labelOf(o.to);
        assert.equal(await openShare(message, { keyPair: pairs[label], peerId: o.to }), step.shares[message.index - 1], where);
      }
    } else if (step.op === "receive" && step.error) {
      await rejectsWith(owner.receive(step.envelope, { now: step.now }), step.error, where);
    } else if (step.op === "receive") {
      assert.equal((await owner.receive(step.envelope, { now: step.now })).state, step.state, where);
    } else if (step.op === "seen") {
      owner.seen(pid(step.peer), step.now);
    } else if (step.op === "guardians") {
      const rows = owner.guardians().map((e) => ({ peer_id: e.peerId, set: e.set, index: e.index, state: e.state, held_at: e.heldAt, last_seen: e.lastSeen }));
      assert.deepEqual(rows, step.rows, where);
    } else if (step.op === "outgoing_for") {
      assert.deepEqual(owner.outgoingFor(pid(step.peer)).map(summary), step.out, where);
    } else if (step.op === "prune") {
      owner.prune(step.now);
      assert.deepEqual(
        owner.guardians().map((e) => e.peerId),
        step.guardians.map(pid),
        where,
      );
    }
  }
});

test("recovery scenarios", async () => {
  for (const s of vectors.recovery) {
    const collector = await RecoveryCollector.create(s.request, pairs[s.temp], { now: NOW, combine, checkShare });
    assert.equal(collector.request.id, s.request_id, s.name);
    for (const [i, step] of s.steps.entries()) {
      const where = `${s.name} step ${i}`;
      const outcome = await collector.receive(step.envelope, { now: NOW });
      const [kind, guardian, code] = step.outcome;
      assert.deepEqual([outcome.kind, outcome.guardian, outcome.code], [kind, guardian === null ? null : pid(guardian), code], where);
      assert.deepEqual(collector.progress(), step.progress, where);
    }
    assert.equal(collector.seed === null ? null : hex(collector.seed), s.seed_hex, s.name);
  }
});

// --- flows, with a fake clock ---

async function peer(label) {
  const seed = new Uint8Array(createHash("sha256").update(`flow/${label}`).digest());
  const signer = await ed25519.signerFromSeed(seed);
  const keyPair = await keyAgreementPairFromSeed(new Uint8Array(createHash("sha256").update(`flow/${label}/x`).digest()));
  const peerId = await peerIdForKey(signer.publicKey);
  return { signer, keyPair, peerId, seed, key: { peerId, x25519: keyPair.publicKey } };
}

async function splitTo(owner, guardians, k, now) {
  const backup = await OwnerGuardians.create(owner.signer);
  const shares = guardians.map((_, i) => standIn(k, i + 1, owner.seed));
  const out = await backup.split(
    guardians.map((g) => g.key),
    shares,
    k,
    { now },
  );
  return { backup, sent: Object.fromEntries(out.map((o) => [o.to, o.envelope])) };
}

test("recovery with two of three guardians while the third stays offline; a corrupted share is named and skipped", async () => {
  const [alice, bob, carol, dave, erin] = await Promise.all(["alice", "bob", "carol", "dave", "erin"].map(peer));
  const { backup, sent } = await splitTo(alice, [bob, carol, dave, erin], 2, NOW);
  const stores = {};
  for (const g of [bob, dave, erin]) {
    stores[g.peerId] = await GuardianStore.create(g.signer, g.keyPair);
    const { receipt } = await stores[g.peerId].acceptShare(sent[g.peerId], { now: NOW + 10 });
    assert.equal((await backup.receive(receipt, { now: NOW + 20 })).state, "held");
  }
  assert.deepEqual(Object.fromEntries(backup.guardians().map((e) => [e.peerId, e.state])), {
    [bob.peerId]: "held",
    [carol.peerId]: "sent",
    [dave.peerId]: "held",
    [erin.peerId]: "held",
  });
  assert.deepEqual(backup.outgoingFor(carol.peerId), [sent[carol.peerId]], "carol gets her share when she comes back");

  const temp = await ed25519.generateSigner();
  const collector = await RecoveryCollector.start(temp, alice.peerId, { now: NOW + DAY, combine, checkShare });
  // Erin answers with one word of her share changed.
  const erinShare = await parseMessage(sent[erin.peerId], { now: NOW + DAY, kind: "share" });
  const erinText = await openShare(erinShare, { keyPair: erin.keyPair, peerId: erin.peerId });
  const tampered = erinText.replace(hex(alice.seed).slice(0, 6), "ffffff");
  const bad = await makeRelease(erin.signer, collector.request, { setId: erinShare.set, index: 4, k: 2, n: 4, share: tampered });
  assert.deepEqual(await collector.receive(bad, { now: NOW + DAY + 1 }), { kind: "bad", guardian: erin.peerId, code: "bad_checksum" });
  for (const g of [bob, dave]) {
    const incoming = await stores[g.peerId].request(collector.request.envelope, { now: NOW + DAY + 10 });
    assert.equal(incoming.code, await collector.code(), "the digits both people compare");
    for (const release of await stores[g.peerId].approve(incoming.id, { now: NOW + DAY + 20 })) {
      await collector.receive(release, { now: NOW + DAY + 30 });
    }
  }
  const progress = collector.progress();
  assert.deepEqual([progress.state, progress.have, progress.need, progress.bad], ["recovered", 2, 2, { [erin.peerId]: "bad_checksum" }]);
  assert.equal(hex(collector.seed), hex(alice.seed));
});

test("a re-split revokes the old set, and an old share arriving after the revocation is refused", async () => {
  const [alice, bob, carol, erin] = await Promise.all(["alice", "bob", "carol", "erin"].map(peer));
  const { backup, sent: first } = await splitTo(alice, [bob, carol], 2, NOW);
  const bobStore = await GuardianStore.create(bob.signer, bob.keyPair);
  const carolStore = await GuardianStore.create(carol.signer, carol.keyPair);
  await bobStore.acceptShare(first[bob.peerId], { now: NOW + 1 });
  const out = await backup.split([bob.key, erin.key], [standIn(2, 1, alice.seed), standIn(2, 2, alice.seed)], 2, { now: NOW + 1000 });
  assert.deepEqual(
    out.filter((o) => o.envelope.body.kind === "revoke").map((o) => o.to),
    [bob.peerId, carol.peerId],
  );
  const [toCarol] = backup.outgoingFor(carol.peerId);
  assert.equal(toCarol.body.kind, "revoke");
  assert.equal(await carolStore.revoke(toCarol, { now: NOW + 2000 }), 0);
  await rejectsWith(carolStore.acceptShare(first[carol.peerId], { now: NOW + 2001 }), "revoked_set");
  const newBob = out.find((o) => o.to === bob.peerId && o.envelope.body.kind === "share").envelope;
  await bobStore.acceptShare(newBob, { now: NOW + 2002 });
  await rejectsWith(bobStore.acceptShare(first[bob.peerId], { now: NOW + 2003 }), "revoked_set");
  assert.deepEqual(
    bobStore.held().map((h) => h.share.set),
    [newBob.body.set],
  );
});

test("two requests showing the same code are flagged and cannot be approved", async () => {
  const [alice, bob, carol] = await Promise.all(["alice", "bob", "carol"].map(peer));
  const { sent } = await splitTo(alice, [bob, carol], 2, NOW);
  let store = await GuardianStore.create(bob.signer, bob.keyPair);
  await store.acceptShare(sent[bob.peerId], { now: NOW });
  const real = await RecoveryCollector.start(await ed25519.generateSigner(), alice.peerId, { now: NOW, combine });
  const ground = await RecoveryCollector.start(await ed25519.generateSigner(), alice.peerId, { now: NOW, combine });
  // A stored request carrying the real one's code stands in for one ground to show it.
  const snapshot = store.snapshot();
  snapshot.requests = [{ envelope: ground.request.envelope, code: await real.code(), received_at: NOW, state: "pending", conflict: false, answer: [] }];
  store = await GuardianStore.restore(bob.signer, bob.keyPair, snapshot, { now: NOW });
  const incoming = await store.request(real.request.envelope, { now: NOW + 1 });
  assert.equal(incoming.conflict, true);
  assert.ok(store.requests().every((r) => r.conflict));
  for (const r of store.requests()) await rejectsWith(store.approve(r.id, { now: NOW + 2 }), "code_conflict");
  assert.equal((await store.refuse(ground.request.id, { now: NOW + 3 })).body.kind, "refuse");
});

test("snapshots of the guardian and the owner survive JSON and keep what matters", async () => {
  const [alice, bob, carol] = await Promise.all(["alice", "bob", "carol"].map(peer));
  const { backup, sent } = await splitTo(alice, [bob, carol], 2, NOW);
  const store = await GuardianStore.create(bob.signer, bob.keyPair);
  const { receipt } = await store.acceptShare(sent[bob.peerId], { now: NOW + 1 });
  await backup.receive(receipt, { now: NOW + 2 });
  const collector = await RecoveryCollector.start(await ed25519.generateSigner(), alice.peerId, { now: NOW, combine });
  await store.request(collector.request.envelope, { now: NOW + 3 });
  const restored = await GuardianStore.restore(bob.signer, bob.keyPair, JSON.parse(JSON.stringify(store.snapshot())), { now: NOW + 4 });
  assert.deepEqual(
    restored.held().map((h) => h.share.envelope),
    [sent[bob.peerId]],
  );
  assert.deepEqual(
    restored.requests().map((r) => [r.id, r.code, r.state]),
    [[collector.request.id, await collector.code(), "pending"]],
  );
  const owner = await OwnerGuardians.restore(alice.signer, JSON.parse(JSON.stringify(backup.snapshot())));
  assert.deepEqual(owner.current, backup.current);
  assert.deepEqual(owner.guardians(), backup.guardians());
  const later = await GuardianStore.restore(bob.signer, bob.keyPair, store.snapshot(), { now: NOW + 800 * DAY });
  assert.deepEqual([later.held(), later.requests()], [[], []]);
});

test("quota: shares per owner and in total", async () => {
  const bob = await peer("bob");
  const store = await GuardianStore.create(bob.signer, bob.keyPair, { limits: { maxShares: 2, maxPerOwner: 1 } });
  for (const label of ["o1", "o2", "o3"]) {
    const owner = await peer(label);
    const { sent } = await splitTo(owner, [bob, await peer("carol")], 2, NOW);
    const work = store.acceptShare(sent[bob.peerId], { now: NOW });
    if (label === "o3") await rejectsWith(work, "over_quota");
    else await work;
  }
  assert.equal(store.held().length, 2);
});

test("a collector refuses a key that is not its request's, expires, and never crashes on a share library's errors", async () => {
  const [alice, bob, carol] = await Promise.all(["alice", "bob", "carol"].map(peer));
  const broken = () => {
    throw new TypeError("library trouble");
  };
  const collector = await RecoveryCollector.start(await ed25519.generateSigner(), alice.peerId, { now: NOW, combine: broken });
  await rejectsWith(RecoveryCollector.create(collector.request.envelope, pairs.bob, { now: NOW, combine }), "bad_key");
  const { sent } = await splitTo(alice, [bob, carol], 2, NOW);
  for (const g of [bob, carol]) {
    const store = await GuardianStore.create(g.signer, g.keyPair);
    await store.acceptShare(sent[g.peerId], { now: NOW });
    const incoming = await store.request(collector.request.envelope, { now: NOW });
    for (const release of await store.approve(incoming.id, { now: NOW })) await collector.receive(release, { now: NOW });
  }
  const progress = collector.progress();
  assert.deepEqual([progress.state, progress.have, progress.reason], ["collecting", 2, "combine_failed"]);
  collector.tick(NOW + DAY);
  assert.deepEqual([collector.progress().state, collector.progress().reason], ["failed", "expired"]);
});

test("the split refuses shares a guardian would refuse, paper ones included", async () => {
  const [alice, bob] = await Promise.all(["alice", "bob"].map(peer));
  const backup = await OwnerGuardians.create(alice.signer);
  const cases = [
    [[bob.key], ["a b"], "bad_shard"],
    [[bob.key, alice.key], ["a", "b"], "bad_shard"],
    [[bob.key, bob.key], ["a", "b"], "bad_shard"],
    [[bob.key, null], ["a", "two  spaces"], "bad_share"],
    [[bob.key, null], ["a", "café"], "bad_share"],
    [[bob.key, null], ["a", Array(34).fill("w").join(" ")], "bad_share"],
  ];
  for (const [guardians, shares, code] of cases) await rejectsWith(backup.split(guardians, shares, 2, { now: NOW }), code);
  assert.equal(backup.current, null);
  const sealed = b64urlDecode(vectors.messages.valid[0].envelope.body.sealed, "sealed");
  assert.ok(!Buffer.from(sealed).toString("latin1").includes("academic"), "the share travels sealed");
});

test("a shard_msg frame reaches the content layer of the node", async () => {
  const net = new Network();
  const [a, b] = [await net.addPeer(), await net.addPeer()];
  a.node.addCandidates([b.identity.ticket], "beacon", net.now);
  net.start();
  assert.ok(await net.runUntil(() => a.node.connectedPeers(0).length === 1, 10));
  const frames = [];
  const collect = b.node.takeActions.bind(b.node);
  b.node.takeActions = () => {
    const out = collect();
    frames.push(...out.filter((x) => x.type === "frame"));
    return out;
  };
  const msg = vectors.messages.valid[0].envelope;
  assert.equal(a.node.sendTo(b.identity.peerId, { t: "shard_msg", to: b.identity.peerId, msg }), true);
  net.collect(a.identity.peerId);
  await net.round();
  assert.deepEqual(
    frames.map((f) => [f.peerId, f.frame.t, f.frame.msg]),
    [[a.identity.peerId, "shard_msg", msg]],
  );
});

test("many re-splits with guardians coming and going leave only the newest set, which recovers the identity", async () => {
  let state = 7;
  const random = () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const shuffle = (items) => {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  };
  const owner = await peer("alice");
  const guardians = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => peer(`g${i}`)));
  const stores = {};
  for (const g of guardians) stores[g.peerId] = await GuardianStore.create(g.signer, g.keyPair);
  const backup = await OwnerGuardians.create(owner.signer);
  const waiting = Object.fromEntries(guardians.map((g) => [g.peerId, []]));
  const refused = new Set();
  const deliver = async (peerId, now) => {
    const messages = shuffle([...waiting[peerId], ...backup.outgoingFor(peerId)]);
    waiting[peerId] = [];
    for (const envelope of messages) {
      try {
        if (envelope.body.kind === "revoke") await stores[peerId].revoke(envelope, { now });
        else await backup.receive((await stores[peerId].acceptShare(envelope, { now })).receipt, { now });
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        refused.add(error.code);
      }
    }
  };
  let now = NOW;
  for (let round = 0; round < 12; round++) {
    const chosen = shuffle([...guardians]).slice(0, 3);
    const shares = [1, 2, 3].map((i) => standIn(2, i, owner.seed));
    for (const o of await backup.split(
      chosen.map((g) => g.key),
      shares,
      2,
      { now },
    ))
      waiting[o.to].push(o.envelope);
    for (const g of guardians) if (random() < 0.5) await deliver(g.peerId, now + 10);
    now += 1000;
  }
  for (const g of guardians) await deliver(g.peerId, now);
  const current = backup.current.id;
  assert.ok(refused.size > 0, "some old shares and receipts arrived late");
  assert.ok(
    [...refused].every((code) => code === "stale_set" || code === "revoked_set"),
    [...refused].join(),
  );
  const holders = guardians.filter((g) => stores[g.peerId].held().length > 0);
  for (const g of guardians) assert.ok(stores[g.peerId].held().every((h) => h.share.set === current));
  assert.equal(holders.length, 3);
  assert.ok(backup.guardians().every((e) => e.set !== current || e.state === "held"));
  const collector = await RecoveryCollector.start(await ed25519.generateSigner(), owner.peerId, { now, combine, checkShare });
  for (const g of holders.slice(0, 2)) {
    const incoming = await stores[g.peerId].request(collector.request.envelope, { now: now + 1 });
    for (const release of await stores[g.peerId].approve(incoming.id, { now: now + 2 })) await collector.receive(release, { now: now + 3 });
  }
  assert.equal(collector.progress().state, "recovered");
  assert.equal(hex(collector.seed), hex(owner.seed));
});
