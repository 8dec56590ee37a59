// tests/vectors/capsules.json holds for static/swarm/protocol/capsule.js (pytest checks Python).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { capsuleTickets, kidFor, makeCapsule, parseTrustedKeys, selectTickets, verifyCapsule } from "../../static/swarm/protocol/capsule.js";
import * as ed25519 from "../../static/swarm/protocol/ed25519.js";
import { b64urlDecode, fromHex } from "../../static/swarm/protocol/encoding.js";
import { ProtocolError } from "../../static/swarm/protocol/errors.js";

const vectors = JSON.parse(readFileSync(new URL("../vectors/capsules.json", import.meta.url), "utf8"));
const trusted = parseTrustedKeys(vectors.keys);
const opts = (now = vectors.now) => ({ trusted, now, community: vectors.community });

test("valid capsule vectors verify and give their re-verified peers", async () => {
  for (const c of vectors.valid) {
    const capsule = await verifyCapsule(c.capsule, opts());
    const usable = await capsuleTickets(capsule, { now: vectors.now });
    assert.deepEqual(
      usable.tickets.map((t) => t.peerId),
      c.peer_ids,
      c.name,
    );
    assert.deepEqual(usable.dropped, c.dropped, c.name);
  }
});

test("invalid capsule vectors fail with their code", async () => {
  for (const c of vectors.invalid) {
    await assert.rejects(
      verifyCapsule(c.capsule, opts(c.now ?? vectors.now)),
      (error) => error instanceof ProtocolError && error.code === c.error,
      `${c.name} should fail with ${c.error}`,
    );
  }
});

test("selection vectors: verify, dedupe newest first, limit, count drops", async () => {
  for (const c of vectors.selection) {
    const s = await selectTickets(c.candidates, { community: c.community, now: c.now, limit: c.limit });
    assert.deepEqual(
      s.tickets.map((t) => t.peerId),
      c.peer_ids,
      c.name,
    );
    assert.deepEqual(
      s.tickets.map((t) => t.nonce),
      c.nonces,
      c.name,
    );
    assert.deepEqual(s.dropped, c.dropped, c.name);
    assert.equal(s.duplicates, c.duplicates, c.name);
    assert.equal(s.overLimit, c.over_limit, c.name);
  }
});

test("key ids match the keys document", async () => {
  for (const entry of vectors.keys.keys) {
    assert.equal(await kidFor(b64urlDecode(entry.pk, "pk")), entry.kid);
  }
});

test("a capsule signed in JS is byte-identical to the Python vector", async () => {
  const signer = await ed25519.signerFromSeed(fromHex(vectors.signing_seed_hex));
  const expected = vectors.valid.find((c) => c.name === "current_key").capsule;
  const made = await makeCapsule(signer, {
    community: expected.body.community,
    now: expected.body.issued_at,
    peers: expected.body.peers,
  });
  assert.deepEqual(made, expected);
});

test("a pinned key without a window is trusted; bad keys documents are refused", async () => {
  const c = vectors.valid.find((v) => v.name === "current_key");
  await verifyCapsule(c.capsule, { trusted: [{ pk: c.capsule.pk }], now: vectors.now });
  for (const bad of [[], { keys: [{ pk: "!!" }] }, { keys: [{ pk: c.capsule.pk, created_at: 1.5 }] }]) {
    assert.throws(
      () => parseTrustedKeys(bad),
      (e) => e instanceof ProtocolError && e.code === "bad_body",
    );
  }
});
