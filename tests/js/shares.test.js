// Identity shares in the browser modules (static/swarm/protocol/slip39.js and shares.js): the
// official SLIP-39 vectors, the shared vectors Python made (tests/vectors/shares.json) and the
// behaviour tests of tests/test_shares.py.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { signerFromSeed } from "../../static/swarm/protocol/ed25519.js";
import { fromHex, hex, peerIdForKey, sha256, utf8 } from "../../static/swarm/protocol/encoding.js";
import { combineShares, SHARE_WORDS, sameSet, ShareError, shareInfo, splitSeed } from "../../static/swarm/protocol/shares.js";
import { decodeMnemonic, encodeMnemonic, recoverMasterSecret, splitMasterSecret } from "../../static/swarm/protocol/slip39.js";
import { WORDLIST } from "../../static/swarm/protocol/slip39_words.js";

const load = (name) => JSON.parse(readFileSync(new URL(`../vectors/${name}`, import.meta.url), "utf8"));
const OFFICIAL = load("slip39_official.json");
const SHARES = load("shares.json");

const SEED = await sha256(utf8.encode("a seed for tests"));
const PEER = await peerIdForKey((await signerFromSeed(SEED)).publicKey);
const OTHER_PEER = await peerIdForKey((await signerFromSeed(await sha256(utf8.encode("another seed")))).publicKey);

async function refused(promiseOrFn, code) {
  try {
    await (typeof promiseOrFn === "function" ? promiseOrFn() : promiseOrFn);
  } catch (error) {
    assert.ok(error instanceof ShareError, `expected a ShareError ${code}, got ${error}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected ${code}, it was accepted`);
}

function replaceWord(mnemonic, position, step = 1) {
  const words = mnemonic.split(" ");
  words[position] = WORDLIST[(WORDLIST.indexOf(words[position]) + step) % WORDLIST.length];
  return words.join(" ");
}

function* combinations(items, size, start = 0, prefix = []) {
  if (prefix.length === size) {
    yield prefix;
    return;
  }
  for (let i = start; i < items.length; i++) yield* combinations(items, size, i + 1, [...prefix, items[i]]);
}

// --- the official SLIP-39 vectors ------------------------------------------------------------

// What each official invalid set is refused for, by its description.
const OFFICIAL_CODES = [
  [/invalid checksum|invalid padding|insufficient length|invalid master secret length|greater group threshold/, "bad_share"],
  [/different identifiers|different iteration exponents|mismatching/, "share_set_mismatch"],
  [/duplicate member indices/, "duplicate_share"],
  [/invalid digest/, "bad_digest"],
  [/Basic sharing|Insufficient number of groups|insufficient number of members/, "too_few_shares"],
];

test("official SLIP-39 vectors: every valid set gives its master secret (and re-encodes word for word)", async () => {
  const valid = OFFICIAL.vectors.filter(([, , secret]) => secret);
  assert.ok(valid.length >= 15);
  for (const [description, mnemonics, secret] of valid) {
    const shares = mnemonics.map(decodeMnemonic);
    assert.deepEqual(shares.map(encodeMnemonic), mnemonics, description);
    assert.equal(hex(await recoverMasterSecret(shares, OFFICIAL.passphrase)), secret, description);
  }
});

test("official SLIP-39 vectors: every invalid set is refused with its code", async () => {
  const invalid = OFFICIAL.vectors.filter(([, , secret]) => !secret);
  assert.ok(invalid.length >= 25);
  for (const [description, mnemonics] of invalid) {
    const code = OFFICIAL_CODES.find(([re]) => re.test(description))?.[1];
    assert.ok(code, `no expected code for ${description}`);
    await refused(async () => recoverMasterSecret(mnemonics.map(decodeMnemonic), OFFICIAL.passphrase), code);
    // The swarm layer refuses them as well (most are 128-bit or multi-group sets).
    await assert.rejects(combineShares(mnemonics, { peerId: PEER }), ShareError, description);
  }
});

test("the wordlist has 1024 distinct words in order", () => {
  assert.equal(WORDLIST.length, 1024);
  assert.equal(new Set(WORDLIST).size, 1024);
  assert.deepEqual([...WORDLIST].sort(), [...WORDLIST]);
});

// --- the shared vectors (made by Python) ----------------------------------------------------------

test("split vectors: fed the reference's random bytes, the browser's split gives the same words", async () => {
  for (const split of SHARES.splits) {
    const random = fromHex(split.random_hex);
    let at = 0;
    const randomBytes = (n) => {
      const out = random.slice(at, at + n);
      assert.equal(out.length, n, `${split.name}: more random bytes asked than the reference used`);
      at += n;
      return out;
    };
    const mnemonics = await splitMasterSecret(fromHex(SHARES.seed_hex), {
      threshold: split.threshold,
      count: split.count,
      identifier: split.set_id,
      extendable: SHARES.extendable,
      iterationExponent: SHARES.iteration_exponent,
      randomBytes,
    });
    assert.equal(at, random.length, `${split.name}: fewer random bytes used than the reference`);
    assert.deepEqual(mnemonics, split.mnemonics, split.name);
  }
});

test("split vectors: Python's shares combine in the browser from any threshold of them", async () => {
  for (const split of SHARES.splits) {
    let tried = 0;
    for (const subset of combinations(split.mnemonics, split.threshold)) {
      if (tried++ === 20) break;
      assert.equal(hex(await combineShares(subset, { peerId: SHARES.peer_id })), SHARES.seed_hex, split.name);
    }
  }
});

test("info vectors: each share's set, index, threshold and normal form", () => {
  for (const c of SHARES.info) {
    const info = shareInfo(c.mnemonic);
    assert.deepEqual(info, {
      setId: c.set_id,
      index: c.index,
      threshold: c.threshold,
      extendable: c.extendable,
      iterationExponent: c.iteration_exponent,
      mnemonic: c.normal,
    });
  }
});

test("valid combine vectors give the seed", async () => {
  for (const c of SHARES.combine.valid) {
    assert.equal(hex(await combineShares(c.shares, { peerId: c.peer_id })), c.seed_hex, c.name);
  }
});

test("invalid combine vectors fail with their code, naming the share or have/need", async () => {
  for (const c of SHARES.combine.invalid) {
    const error = await refused(combineShares(c.shares, { peerId: c.peer_id }), c.error);
    assert.deepEqual([error.share, error.have, error.need], [c.share, c.have, c.need], c.name);
  }
});

test("bad split vectors fail with their code", async () => {
  for (const c of SHARES.bad_splits) {
    await refused(splitSeed(fromHex(c.seed_hex), { threshold: c.threshold, count: c.count, setId: c.set_id }), c.error);
  }
});

// --- behaviour ---------------------------------------------------------------------------------------

for (const [threshold, count] of [
  [2, 2],
  [2, 3],
  [3, 5],
  [4, 7],
  [16, 16],
]) {
  test(`${threshold} of ${count}: any ${threshold} shares give the seed back, ${threshold - 1} give too_few_shares`, async () => {
    const mnemonics = await splitSeed(SEED, { threshold, count });
    assert.equal(mnemonics.length, count);
    assert.ok(mnemonics.every((m) => m.split(" ").length === SHARE_WORDS));
    for (const subset of combinations(mnemonics, threshold)) {
      assert.deepEqual(await combineShares([...subset].reverse(), { peerId: PEER }), SEED);
    }
    const error = await refused(combineShares(mnemonics.slice(0, threshold - 1), { peerId: PEER }), "too_few_shares");
    assert.deepEqual([error.have, error.need], [threshold - 1, threshold]);
  });
}

test("the default split is 3 of 5, indexes 0..4 of one set", async () => {
  const infos = (await splitSeed(SEED)).map(shareInfo);
  assert.deepEqual(
    infos.map((i) => i.index),
    [0, 1, 2, 3, 4],
  );
  assert.ok(infos.every((i) => i.threshold === 3 && sameSet(i, infos[0])));
});

test("every word position tampered gives bad_share naming the share", async () => {
  const mnemonics = await splitSeed(SEED, { threshold: 3, count: 5 });
  for (let position = 0; position < SHARE_WORDS; position++) {
    for (const step of [1, 512]) {
      const tampered = replaceWord(mnemonics[1], position, step);
      await refused(() => shareInfo(tampered), "bad_share");
      const error = await refused(combineShares([mnemonics[0], tampered, mnemonics[2]], { peerId: PEER }), "bad_share");
      assert.equal(error.share, 1);
    }
  }
});

test("a share of another set gives share_set_mismatch; the same share twice gives duplicate_share", async () => {
  const first = await splitSeed(SEED, { threshold: 3, count: 5, setId: 100 });
  const second = await splitSeed(SEED, { threshold: 3, count: 5, setId: 101 });
  const mixed = await refused(combineShares([first[0], first[1], second[2]], { peerId: PEER }), "share_set_mismatch");
  assert.equal(mixed.share, 2);
  const twice = await refused(combineShares([first[1], first[0], first[1]], { peerId: PEER }), "duplicate_share");
  assert.equal(twice.share, 2);
});

test("a wrong expected peer id gives key_mismatch", async () => {
  const mnemonics = await splitSeed(SEED, { threshold: 2, count: 3 });
  await refused(combineShares(mnemonics.slice(1), { peerId: OTHER_PEER }), "key_mismatch");
});

test("bad threshold or count gives bad_threshold; a seed of the wrong length bad_key", async () => {
  for (const [threshold, count] of [
    [1, 1],
    [1, 3],
    [0, 5],
    [4, 3],
    [2, 17],
    [17, 17],
    [-2, 3],
    [2.5, 3],
  ]) {
    await refused(splitSeed(SEED, { threshold, count }), "bad_threshold");
  }
  await refused(splitSeed(SEED.subarray(0, 31)), "bad_key");
});

test("an altered share among spare ones is left out; at the threshold it gives bad_digest", async () => {
  const mnemonics = await splitSeed(SEED, { threshold: 3, count: 5 });
  const share = decodeMnemonic(mnemonics[2]);
  const value = Uint8Array.from(share.value);
  value[9] ^= 1;
  const altered = encodeMnemonic({ ...share, value });
  assert.equal(shareInfo(altered).index, 2); // its checksum holds: only combining can tell
  assert.deepEqual(await combineShares([mnemonics[0], mnemonics[1], altered, mnemonics[3]], { peerId: PEER }), SEED);
  await refused(combineShares([mnemonics[0], mnemonics[1], altered], { peerId: PEER }), "bad_digest");
});
