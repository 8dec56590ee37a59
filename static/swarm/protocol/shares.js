// Identity shares: an identity's Ed25519 seed split into SLIP-39 mnemonics, and combined back
// (docs/protocol.md "Identity shares (SLIP-39)"), mirror of peers/protocol/shares.py: same API,
// same error codes, held together by tests/vectors/shares.json. One group of `count` members of
// which `threshold` recover, 2 <= threshold <= count <= 16, an empty SLIP-39 passphrase, the
// extendable flag set and iteration exponent 1; every share is 33 words. A combined seed is
// accepted only if its public key gives the expected peer id.
import { signerFromSeed } from "./ed25519.js";
import { PEER_ID_RE, peerIdForKey } from "./encoding.js";
import { BAD_DIGEST, BAD_KEY, BAD_SET_ID, BAD_SHARE, BAD_THRESHOLD, DUPLICATE_SHARE, KEY_MISMATCH, SHARE_SET_MISMATCH, TOO_FEW_SHARES } from "./errors.js";
import { decodeMnemonic, recoverMasterSecret, ShareError, splitMasterSecret } from "./slip39.js";

export { ShareError };

export const SEED_BYTES = 32;
export const SHARE_WORDS = 33; // 2 (id, flag, exponent) + 2 (group and member parameters) + 26 (value) + 3 (checksum)
export const MIN_THRESHOLD = 2;
export const MAX_SHARES = 16;
export const DEFAULT_THRESHOLD = 3;
export const DEFAULT_COUNT = 5;
const SET_ID_BITS = 15;
const EXTENDABLE = true;
const ITERATION_EXPONENT = 1;
// PBKDF2 runs 10000 << e iterations: a share claiming e = 15 would cost the recovering page
// minutes, and the passphrase is empty anyway, so shares above this are refused.
export const MAX_ITERATION_EXPONENT = 4;
export const MAX_MNEMONIC_CHARS = 1000;
// Combinations tried when more shares than the threshold are given (bounds the work an
// attacker's shares can cause; covers leaving out any 3 of 16).
export const MAX_COMBINATIONS = 1024;
const PASSPHRASE = "";

// Letters only, words separated by ASCII whitespace: both languages split and lowercase alike.
const MNEMONIC_RE = /^[A-Za-z]+(?:[ \t\r\n]+[A-Za-z]+)*$/;
const EDGE_SPACE_RE = /^[ \t\r\n]+|[ \t\r\n]+$/g;
const SPACE_RE = /[ \t\r\n]+/;

/**
 * `count` mnemonics of which any `threshold` give back `seed`, in index order. `setId` (15 bits)
 * names the set, random when null; a new split of the same seed should use a new one.
 */
export async function splitSeed(seed, { threshold = DEFAULT_THRESHOLD, count = DEFAULT_COUNT, setId = null } = {}) {
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_BYTES) throw new ShareError(BAD_KEY, `an identity seed is ${SEED_BYTES} bytes`);
  if (!Number.isInteger(threshold) || !Number.isInteger(count)) throw new ShareError(BAD_THRESHOLD, "threshold and count are integers");
  if (!(MIN_THRESHOLD <= threshold && threshold <= count && count <= MAX_SHARES)) {
    throw new ShareError(BAD_THRESHOLD, `need ${MIN_THRESHOLD} <= threshold <= count <= ${MAX_SHARES}, got ${threshold} of ${count}`);
  }
  let identifier = setId;
  if (identifier === null) identifier = crypto.getRandomValues(new Uint16Array(1))[0] & ((1 << SET_ID_BITS) - 1);
  else if (!Number.isInteger(identifier) || identifier < 0 || identifier >= 1 << SET_ID_BITS) {
    throw new ShareError(BAD_SET_ID, `a set id is an integer in 0..${(1 << SET_ID_BITS) - 1}`);
  }
  return splitMasterSecret(seed, { threshold, count, identifier, extendable: EXTENDABLE, iterationExponent: ITERATION_EXPONENT, passphrase: PASSPHRASE });
}

/**
 * What one share says about itself, read without combining: {setId, index (0..15), threshold,
 * extendable, iterationExponent, mnemonic (lowercase, single spaces)}. Throws bad_share for
 * anything that is not a share of a swarm identity (words, length, checksum, parameters).
 */
export function shareInfo(mnemonic) {
  return decode(mnemonic).info;
}

/** Whether two shareInfo results are of one set (they may then combine). */
export function sameSet(a, b) {
  return a.setId === b.setId && a.threshold === b.threshold && a.extendable === b.extendable && a.iterationExponent === b.iterationExponent;
}

/**
 * The seed from at least `threshold` shares of one set, if its key gives `peerId`. Every share is
 * checked first and the first bad one is named (ShareError.share). With more shares than the
 * threshold, combinations of `threshold` of them are tried (leaving out the last ones first, at
 * most MAX_COMBINATIONS) until one's SLIP-39 digest holds.
 */
export async function combineShares(mnemonics, { peerId }) {
  if (typeof peerId !== "string" || !PEER_ID_RE.test(peerId)) throw new ShareError(KEY_MISMATCH, "the expected peer id is not a key-bound id");
  if (!Array.isArray(mnemonics)) throw new ShareError(BAD_SHARE, "shares come as a list of mnemonics");
  const decoded = [];
  mnemonics.forEach((mnemonic, position) => {
    let entry;
    try {
      entry = decode(mnemonic);
    } catch (error) {
      if (!(error instanceof ShareError)) throw error;
      throw new ShareError(error.code, `share ${position + 1}: ${error.message}`, { share: position });
    }
    if (decoded.length > 0 && !sameSet(entry.info, decoded[0].info)) {
      throw new ShareError(SHARE_SET_MISMATCH, `share ${position + 1} is of another set`, { share: position });
    }
    if (decoded.some((other) => other.info.index === entry.info.index)) {
      throw new ShareError(DUPLICATE_SHARE, `share ${position + 1} has the index of an earlier one (${entry.info.index + 1})`, { share: position });
    }
    decoded.push(entry);
  });
  const need = decoded.length > 0 ? decoded[0].info.threshold : null;
  if (need === null || decoded.length < need) {
    throw new ShareError(TOO_FEW_SHARES, `${decoded.length} shares, ${need ?? "some"} needed`, { have: decoded.length, need });
  }
  let tried = 0;
  for (const chosen of choices(decoded.length, need)) {
    if (tried++ === MAX_COMBINATIONS) break;
    let seed;
    try {
      seed = await recoverMasterSecret(
        chosen.map((position) => decoded[position].share),
        PASSPHRASE,
      );
    } catch (error) {
      if (error instanceof ShareError && error.code === BAD_DIGEST) continue; // an altered share is among these
      throw error;
    }
    const { publicKey } = await signerFromSeed(seed);
    if ((await peerIdForKey(publicKey)) !== peerId) throw new ShareError(KEY_MISMATCH, "the shares give the key of another peer id");
    return seed;
  }
  throw new ShareError(BAD_DIGEST, "the shares do not combine: at least one of them was altered");
}

function decode(mnemonic) {
  if (typeof mnemonic !== "string" || mnemonic.length > MAX_MNEMONIC_CHARS) throw new ShareError(BAD_SHARE, "a share is a string of words");
  const text = mnemonic.replace(EDGE_SPACE_RE, "");
  if (!MNEMONIC_RE.test(text)) throw new ShareError(BAD_SHARE, "a share is words of letters separated by spaces");
  const words = text.toLowerCase().split(SPACE_RE);
  if (words.length !== SHARE_WORDS) throw new ShareError(BAD_SHARE, `a share has ${SHARE_WORDS} words, this one ${words.length}`);
  const normal = words.join(" ");
  const share = decodeMnemonic(normal);
  if (share.groupIndex !== 0 || share.groupThreshold !== 1 || share.groupCount !== 1)
    throw new ShareError(BAD_SHARE, "a share of a backup with several groups");
  if (share.memberThreshold < MIN_THRESHOLD) throw new ShareError(BAD_SHARE, `a share with threshold ${share.memberThreshold}`);
  if (share.iterationExponent > MAX_ITERATION_EXPONENT) throw new ShareError(BAD_SHARE, `iteration exponent ${share.iterationExponent} is too high`);
  const info = {
    setId: share.identifier,
    index: share.memberIndex,
    threshold: share.memberThreshold,
    extendable: share.extendable,
    iterationExponent: share.iterationExponent,
    mnemonic: normal,
  };
  return { info, share };
}

// Positions of `need` of `have` shares: all but the last, then all but the one before, ...
// (the left-out sets in lexicographic order of descending positions, as shares.py).
function* choices(have, need) {
  const descending = Array.from({ length: have }, (_, i) => have - 1 - i);
  for (const leftOut of combinations(descending, have - need)) {
    yield Array.from({ length: have }, (_, i) => i).filter((position) => !leftOut.includes(position));
  }
}

// Python's itertools.combinations: `size` items of `items`, lexicographic by position.
function* combinations(items, size) {
  if (size > items.length) return;
  const at = Array.from({ length: size }, (_, i) => i);
  for (;;) {
    yield at.map((i) => items[i]);
    let i = size - 1;
    while (i >= 0 && at[i] === items.length - size + i) i--;
    if (i < 0) return;
    at[i]++;
    for (let j = i + 1; j < size; j++) at[j] = at[j - 1] + 1;
  }
}
