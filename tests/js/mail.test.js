// Mail in the browser's protocol module (static/swarm/protocol/mail.js) against
// tests/vectors/mail.json, which pytest checks for Python (tests/test_mail.py).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import canonicalize from "canonicalize";

import * as ed25519 from "../../static/swarm/protocol/ed25519.js";
import { b64urlEncode, fromHex, peerIdForKey } from "../../static/swarm/protocol/encoding.js";
import { ProtocolError } from "../../static/swarm/protocol/errors.js";
import { generateKeyAgreementPair, keyAgreementPairFromSeed } from "../../static/swarm/protocol/keywrap.js";
import {
  DOMAIN_MAIL,
  KIND_ACK,
  KIND_MAIL,
  kindOf,
  MAIL_LIFETIME_MS,
  MAX_ACK_IDS,
  MAX_MAIL_BYTES,
  MAX_MAIL_LIFETIME_MS,
  makeAck,
  makeMail,
  newMailId,
  openMail,
  parseMail,
} from "../../static/swarm/protocol/mail.js";

const vectors = JSON.parse(readFileSync(new URL("../vectors/mail.json", import.meta.url), "utf8"));
const NOW = vectors.now;
const DAY = 86_400_000;
const KEYS = vectors.keys;
const pid = (label) => KEYS[label].peer_id;
const signers = {};
const pairs = {};
for (const label of Object.keys(KEYS)) {
  signers[label] = await ed25519.signerFromSeed(fromHex(KEYS[label].seed_hex));
  pairs[label] = await keyAgreementPairFromSeed(fromHex(KEYS[label].x25519_seed_hex));
}
const rejectsWith = (promise, code, message) => assert.rejects(promise, (e) => e instanceof ProtocolError && e.code === code, message);

test("the constants are the spec's", () => {
  assert.deepEqual([DOMAIN_MAIL, KIND_MAIL, KIND_ACK], ["swarm/mail/v1", "mail", "ack"]);
  assert.deepEqual([MAX_MAIL_BYTES, MAX_ACK_IDS, MAIL_LIFETIME_MS, MAX_MAIL_LIFETIME_MS], [4096, 64, 7 * DAY, 7 * DAY]);
  const ids = new Set(Array.from({ length: 50 }, newMailId));
  assert.equal(ids.size, 50);
  for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{21}[AQgw]$/);
});

test("valid vectors parse, open and are made again byte for byte", async () => {
  for (const c of vectors.valid) {
    const envelope = c.envelope;
    const body = envelope.body;
    const m = await parseMail(envelope, { now: NOW });
    assert.equal(m.kind, body.kind, c.name);
    assert.equal(kindOf(envelope), body.kind, c.name);
    assert.deepEqual([m.from, m.to], [body.from, body.to], c.name);
    assert.equal(m.envelope, envelope, c.name);
    const make = c.make;
    let again;
    if (m.kind === KIND_MAIL) {
      assert.deepEqual([m.id, m.createdAt, m.expiresAt], [body.id, body.created_at, body.expires_at], c.name);
      const opened = await openMail(m, { keyPair: pairs[c.open_as], peerId: pid(c.open_as) });
      assert.deepEqual(opened, { topic: make.topic, data: make.data }, c.name);
      const args = {
        to: pid(make.to),
        toKey: pairs[make.to].publicKey,
        topic: make.topic,
        data: make.data,
        createdAt: make.created_at,
        id: make.id,
        ephemeral: await keyAgreementPairFromSeed(fromHex(make.ephemeral_seed_hex)),
      };
      if (make.expires_at !== undefined) args.expiresAt = make.expires_at;
      else assert.equal(m.expiresAt, m.createdAt + MAIL_LIFETIME_MS, c.name);
      again = await makeMail(signers[c.signer], args);
    } else {
      const digest = createHash("sha256").update(canonicalize(envelope)).digest();
      assert.equal(m.id, b64urlEncode(new Uint8Array(digest)), c.name);
      assert.deepEqual([m.ids, m.ackedAt, m.expiresAt], [body.ids, body.acked_at, body.acked_at + 7 * DAY], c.name);
      again = await makeAck(signers[c.signer], { to: pid(make.to), ids: make.ids, ackedAt: make.acked_at });
    }
    assert.deepEqual(again, envelope, c.name);
  }
});

test("invalid vectors fail with their codes", async () => {
  for (const c of vectors.invalid) await rejectsWith(parseMail(c.envelope, { now: NOW }), c.error, c.name);
});

test("mails that do not open fail with their codes", async () => {
  for (const c of vectors.open_invalid) {
    const m = await parseMail(c.envelope, { now: NOW });
    await rejectsWith(openMail(m, { keyPair: pairs[c.open_as], peerId: pid(c.open_as) }), c.error, c.name);
  }
});

test("mails that cannot be made fail with their codes", async () => {
  for (const c of vectors.make_invalid) {
    const args = { to: pid(c.to), toKey: pairs[c.to].publicKey, topic: c.topic, data: c.data, createdAt: NOW };
    if (c.id !== undefined) args.id = c.id;
    await rejectsWith(makeMail(signers[c.signer], args), c.error, c.name);
  }
});

test("a mail with fresh keys goes round; acks sort, deduplicate and are bounded", async () => {
  const sender = await ed25519.generateSigner();
  const recipient = await ed25519.generateSigner();
  const [from, to] = [await peerIdForKey(sender.publicKey), await peerIdForKey(recipient.publicKey)];
  const keyPair = await generateKeyAgreementPair();
  const data = { text: "h\u00e9llo \u2603", n: 3 };
  const envelope = await makeMail(sender, { to, toKey: keyPair.publicKey, topic: "note", data, createdAt: NOW });
  const m = await parseMail(envelope, { now: NOW });
  assert.deepEqual(await openMail(m, { keyPair, peerId: to }), { topic: "note", data });
  await rejectsWith(openMail(m, { keyPair, peerId: from }), "wrong_recipient");
  const again = await makeMail(sender, { to, toKey: keyPair.publicKey, topic: "note", data, createdAt: NOW, id: m.id });
  assert.notEqual(again.body.sealed, envelope.body.sealed, "a fresh ephemeral key each time");
  const other = newMailId();
  const ack = await makeAck(recipient, { to: from, ids: [other, m.id, other], ackedAt: NOW });
  assert.deepEqual(ack.body.ids, [other, m.id].sort());
  const parsed = await parseMail(ack, { now: NOW + 6 * DAY });
  assert.equal(parsed.kind, "ack");
  await rejectsWith(parseMail(ack, { now: NOW + 7 * DAY }), "expired");
  await rejectsWith(makeAck(recipient, { to: from, ids: Array.from({ length: 65 }, newMailId), ackedAt: NOW }), "bad_mail");
  await rejectsWith(makeAck(recipient, { to: from, ids: [], ackedAt: NOW }), "bad_mail");
  await rejectsWith(makeAck(recipient, { to, ids: [other], ackedAt: NOW }), "bad_recipient");
});
