// checkEnvelopeSize: the size check every signed message kind makes before its signature
// (mirror of peers/protocol/envelope.py check_envelope_size, tests/test_protocol_envelope.py).
import assert from "node:assert/strict";
import { test } from "node:test";

import { checkEnvelopeSize } from "../../static/swarm/protocol/envelope.js";
import { BAD_ENVELOPE } from "../../static/swarm/protocol/errors.js";

const envelope = { body: { text: "x".repeat(40) }, sig: "s" };
const size = new TextEncoder().encode(JSON.stringify({ body: { text: "x".repeat(40) }, sig: "s" })).length;

test("an envelope within the limit is returned as it is", () => {
  assert.equal(checkEnvelopeSize(envelope, size, "thing_too_large", "a thing"), envelope);
});

test("one byte over the limit gets the kind's code and names the size found", () => {
  assert.throws(
    () => checkEnvelopeSize(envelope, size - 1, "thing_too_large", "a thing"),
    (e) => e.code === "thing_too_large" && e.message === `a thing is at most ${size - 1} B, not ${size}`,
  );
});

test("no JSON object, or no canonical JSON, is bad_envelope", () => {
  for (const bad of [null, [], "text", 7, { n: Number.NaN }, { big: 10n }]) {
    assert.throws(
      () => checkEnvelopeSize(bad, 4096, "thing_too_large", "a thing"),
      (e) => e.code === BAD_ENVELOPE,
      String(bad),
    );
  }
});
