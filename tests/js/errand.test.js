// What a dial is for (static/swarm/protocol/errand.js) against tests/vectors/errand.json,
// which tests/test_errand.py checks against peers/protocol/errand.py.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { errandOf } from "../../static/swarm/protocol/errand.js";

const vectors = JSON.parse(readFileSync(new URL("../vectors/errand.json", import.meta.url), "utf8"));

for (const c of vectors.cases) {
  test(`errandOf: ${c.name}`, () => {
    assert.deepEqual(errandOf(c.metadata), c.errand);
  });
}

test("an errand read back is itself (it is the metadata to send)", () => {
  for (const c of vectors.cases.filter((x) => x.errand !== null)) assert.deepEqual(errandOf(errandOf(c.metadata)), c.errand);
});
