// Signal tokens: the shared vectors hold for static/swarm/protocol/signal_token.js (pytest checks Python).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import * as ed25519 from "../../static/swarm/protocol/ed25519.js";
import { fromHex, hex, peerIdForKey } from "../../static/swarm/protocol/encoding.js";
import { DOMAIN_SIGNAL_TOKEN, signingInput } from "../../static/swarm/protocol/envelope.js";
import { ProtocolError } from "../../static/swarm/protocol/errors.js";
import { makeSignalToken, parseSignalToken, verifySignalToken } from "../../static/swarm/protocol/signal_token.js";

const load = (name) => JSON.parse(readFileSync(new URL(`../vectors/${name}`, import.meta.url), "utf8"));
const vectors = load("signal_tokens.json");
const options = (peerId) => ({ peerId, now: vectors.now, maxAgeMs: vectors.max_age_ms, skewMs: vectors.skew_ms });

test("valid signal token vectors verify", async () => {
  for (const c of vectors.valid) {
    const proof = await verifySignalToken(c.token, options(c.peer_id));
    assert.equal(proof.peerId, c.peer_id, c.name);
    assert.equal(proof.issuedAt, c.issued_at, c.name);
  }
});

test("invalid signal token vectors fail with their code", async () => {
  for (const c of vectors.invalid) {
    await assert.rejects(
      verifySignalToken(c.token, options(c.peer_id)),
      (error) => error instanceof ProtocolError && error.code === c.error,
      `${c.name} should fail with ${c.error}`,
    );
  }
});

test("the signing input matches Python's", () => {
  const fresh = vectors.valid.find((c) => c.name === "fresh");
  const input = signingInput(DOMAIN_SIGNAL_TOKEN, { peer_id: fresh.peer_id, issued_at: fresh.issued_at });
  assert.equal(hex(input), vectors.signing_input_hex);
});

test("a token made in JS is byte-identical to the Python vector", async () => {
  const alice = load("keys.json").keys.find((k) => k.label === "alice");
  const signer = await ed25519.signerFromSeed(fromHex(alice.seed_hex));
  const fresh = vectors.valid.find((c) => c.name === "fresh");
  assert.equal(await makeSignalToken(signer, { now: fresh.issued_at }), fresh.token);
  assert.equal(parseSignalToken(fresh.token).issuedAt, fresh.issued_at);
});

test("a token from a WebCrypto key verifies for its own id only", async () => {
  const signer = await ed25519.generateSigner();
  const other = await ed25519.generateSigner();
  const now = Date.now();
  const token = await makeSignalToken(signer, { now });
  assert.match(token, /^[A-Za-z0-9._-]+$/);
  const id = await peerIdForKey(signer.publicKey);
  assert.equal((await verifySignalToken(token, { peerId: id, now })).peerId, id);
  await assert.rejects(verifySignalToken(token, { peerId: await peerIdForKey(other.publicKey), now }), (error) => error.code === "peer_mismatch");
});
