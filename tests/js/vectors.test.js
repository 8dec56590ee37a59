// The shared vectors in tests/vectors/ hold for the browser modules (pytest checks Python).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import * as ed25519 from "../../static/swarm/protocol/ed25519.js";
import { b64urlDecode, b64urlEncode, fromHex, hex, peerIdForKey } from "../../static/swarm/protocol/encoding.js";
import { signingInput } from "../../static/swarm/protocol/envelope.js";
import { ProtocolError } from "../../static/swarm/protocol/errors.js";
import { keyAgreementPairFromIdentitySeed } from "../../static/swarm/protocol/keywrap.js";
import { makeTicket, makeWithdrawal, verifyTicket, verifyWithdrawal } from "../../static/swarm/protocol/ticket.js";

const load = (name) => JSON.parse(readFileSync(new URL(`../vectors/${name}`, import.meta.url), "utf8"));

test("key vectors: public key, peer id and X25519 key from the seed", async () => {
  for (const v of load("keys.json").keys) {
    const signer = await ed25519.signerFromSeed(fromHex(v.seed_hex));
    assert.equal(b64urlEncode(signer.publicKey), v.pk, v.label);
    assert.equal(await peerIdForKey(signer.publicKey), v.peer_id, v.label);
    assert.equal(b64urlEncode((await keyAgreementPairFromIdentitySeed(fromHex(v.seed_hex))).publicKey), v.x25519, v.label);
  }
  await assert.rejects(keyAgreementPairFromIdentitySeed(new Uint8Array(31)), (e) => e.code === "bad_key");
});

test("canonical vectors: signing input is byte-identical to Python's", () => {
  for (const c of load("canonical.json").cases) {
    assert.equal(hex(signingInput(c.domain, c.body)), c.signing_input_hex);
  }
});

const tickets = load("tickets.json");

test("valid ticket vectors verify", async () => {
  for (const c of tickets.valid) {
    const t = await verifyTicket(c.ticket, { now: tickets.now, community: tickets.community });
    assert.equal(t.peerId, c.ticket.body.peer_id, c.name);
  }
});

test("invalid ticket vectors fail with their code", async () => {
  for (const c of tickets.invalid) {
    await assert.rejects(
      verifyTicket(c.ticket, { now: tickets.now, community: tickets.community }),
      (error) => error instanceof ProtocolError && error.code === c.error,
      `${c.name} should fail with ${c.error}`,
    );
  }
});

test("withdrawal vectors: valid ones verify, invalid ones fail with their code; JS signs the same bytes", async () => {
  for (const c of tickets.withdrawals.valid) {
    const w = await verifyWithdrawal(c.withdrawal, { community: tickets.community });
    assert.equal(w.peerId, c.withdrawal.body.peer_id, c.name);
    const alice = load("keys.json").keys.find((k) => k.label === "alice");
    const signer = await ed25519.signerFromSeed(fromHex(alice.seed_hex));
    assert.deepEqual(await makeWithdrawal(signer, { peerId: alice.peer_id, community: w.community, nonce: w.nonce }), c.withdrawal);
  }
  for (const c of tickets.withdrawals.invalid) {
    await assert.rejects(
      verifyWithdrawal(c.withdrawal, { community: tickets.community }),
      (error) => error instanceof ProtocolError && error.code === c.error,
      `${c.name} should fail with ${c.error}`,
    );
  }
});

test("a ticket signed in JS is byte-identical to the Python vector for the same inputs", async () => {
  const alice = load("keys.json").keys.find((k) => k.label === "alice");
  const signer = await ed25519.signerFromSeed(fromHex(alice.seed_hex));
  const expected = tickets.valid.find((c) => c.name === "minimal").ticket;
  const made = await makeTicket(signer, {
    peerId: alice.peer_id,
    community: expected.body.community,
    now: expected.body.issued_at,
    ttlMs: expected.body.expires_at - expected.body.issued_at,
    nonce: expected.body.nonce,
  });
  assert.deepEqual(made, expected);
});

test("base64url decoding is strict", () => {
  assert.deepEqual(b64urlDecode("AAE", "x"), new Uint8Array([0, 1]));
  for (const bad of ["AAE=", "AA+E", "A", "AAF"]) {
    assert.throws(() => b64urlDecode(bad, "x"), ProtocolError);
  }
});

test("WebCrypto and @noble/ed25519 agree", async () => {
  const seed = fromHex("11".repeat(32));
  const noble = await ed25519.signerFromSeed(seed);
  const message = new Uint8Array([1, 2, 3]);
  const sig = await ed25519.sign(noble, message);
  assert.equal(await ed25519.verify(noble.publicKey, sig, message), true);
  sig[0] ^= 1;
  assert.equal(await ed25519.verify(noble.publicKey, sig, message), false);
});
