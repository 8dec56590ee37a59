// SLIP-39 (Shamir's Secret-Sharing for Mnemonic Codes), written from the specification: the
// browser's counterpart of the PyPI package shamir-mnemonic that peers/protocol/shares.py uses.
// Mnemonic words with an RS1024 checksum, Shamir over GF(256) with a digest share, and the
// 4-round Feistel cipher on PBKDF2-HMAC-SHA256 (WebCrypto). It passes the official vectors
// (tests/vectors/slip39_official.json). shares.js builds the swarm's identity shares on it.
import { BAD_DIGEST, BAD_KEY, BAD_SET_ID, BAD_SHARE, BAD_THRESHOLD, DUPLICATE_SHARE, ProtocolError, SHARE_SET_MISMATCH, TOO_FEW_SHARES } from "./errors.js";
import { WORDLIST } from "./slip39_words.js";

const RADIX_BITS = 10;
const RADIX = 1 << RADIX_BITS;
const ID_BITS = 15;
const ID_EXP_WORDS = 2; // identifier (15 bits), extendable flag (1), iteration exponent (4)
const PARAM_WORDS = 2; // group index, group threshold - 1, group count - 1, member index, member threshold - 1 (4 bits each)
const CHECKSUM_WORDS = 3;
const METADATA_WORDS = ID_EXP_WORDS + PARAM_WORDS + CHECKSUM_WORDS;
const MIN_SECRET_BYTES = 16;
const MIN_WORDS = METADATA_WORDS + Math.ceil((MIN_SECRET_BYTES * 8) / RADIX_BITS);
const MAX_SHARE_COUNT = 16;
const DIGEST_BYTES = 4;
const DIGEST_INDEX = 254;
const SECRET_INDEX = 255;
const BASE_ITERATIONS = 10_000;
const ROUNDS = 4;
const CUSTOMIZATION = "shamir";
const CUSTOMIZATION_EXTENDABLE = "shamir_extendable";
// The RS1024 generator (SLIP-39 "Checksum").
const RS1024_GEN = [0xe0e040, 0x1c1c080, 0x3838100, 0x7070200, 0xe0e0009, 0x1c0c2412, 0x38086c24, 0x3090fc48, 0x21b1f890, 0x3f3f120];

const WORD_INDEX = new Map(WORDLIST.map((word, i) => [word, i]));
const ascii = (text) => Array.from(text, (c) => c.charCodeAt(0));

/** A refused share or set of shares: `share` names the position at fault, `have`/`need` come with too_few_shares. */
export class ShareError extends ProtocolError {
  constructor(code, message, { share = null, have = null, need = null } = {}) {
    super(code, message);
    this.name = "ShareError";
    this.share = share;
    this.have = have;
    this.need = need;
  }
}

// --- RS1024 over GF(1024) ---------------------------------------------------------------

function polymod(values) {
  let chk = 1;
  for (const value of values) {
    const top = chk >>> 20;
    chk = ((chk & 0xfffff) << 10) ^ value;
    for (let i = 0; i < 10; i++) {
      if ((top >>> i) & 1) chk ^= RS1024_GEN[i];
    }
  }
  return chk;
}

function customization(extendable) {
  return ascii(extendable ? CUSTOMIZATION_EXTENDABLE : CUSTOMIZATION);
}

function checksumWords(data, extendable) {
  const residue = polymod([...customization(extendable), ...data, 0, 0, 0]) ^ 1;
  return [(residue >>> 20) & 1023, (residue >>> 10) & 1023, residue & 1023];
}

// --- share values as 10-bit words (big endian, zero bits in front) ----------------------

function bytesToWords(bytes) {
  const count = Math.ceil((bytes.length * 8) / RADIX_BITS);
  const out = [];
  let acc = 0;
  let bits = count * RADIX_BITS - bytes.length * 8; // the leading zero padding
  for (const byte of bytes) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= RADIX_BITS) {
      bits -= RADIX_BITS;
      out.push((acc >>> bits) & (RADIX - 1));
      acc &= (1 << bits) - 1;
    }
  }
  return out;
}

function wordsToBytes(words, padding) {
  const out = new Uint8Array((words.length * RADIX_BITS - padding) / 8);
  let acc = 0;
  let bits = 0;
  let skip = padding;
  let at = 0;
  for (const word of words) {
    acc = (acc << RADIX_BITS) | word;
    bits += RADIX_BITS;
    if (skip > 0) {
      bits -= skip;
      if (acc >>> bits !== 0) throw new ShareError(BAD_SHARE, "the padding bits of the share value are not zero");
      acc &= (1 << bits) - 1;
      skip = 0;
    }
    while (bits >= 8) {
      bits -= 8;
      out[at++] = (acc >>> bits) & 0xff;
      acc &= (1 << bits) - 1;
    }
  }
  return out;
}

// --- mnemonics ----------------------------------------------------------------------------

/**
 * A share from its mnemonic: words of the SLIP-39 list (any case, separated by whitespace),
 * a valid checksum, zero padding and group threshold <= group count. Throws bad_share.
 */
export function decodeMnemonic(mnemonic) {
  if (typeof mnemonic !== "string") throw new ShareError(BAD_SHARE, "a share is a string of words");
  const words = mnemonic.trim().toLowerCase().split(/\s+/);
  const data = words.map((word, i) => {
    const index = WORD_INDEX.get(word);
    if (index === undefined) throw new ShareError(BAD_SHARE, `word ${i + 1} (${JSON.stringify(word)}) is not a SLIP-39 word`);
    return index;
  });
  if (data.length < MIN_WORDS) throw new ShareError(BAD_SHARE, `a share has at least ${MIN_WORDS} words`);
  const padding = (RADIX_BITS * (data.length - METADATA_WORDS)) % 16;
  if (padding > 8) throw new ShareError(BAD_SHARE, "no share value has this many words");
  const idExp = data[0] * RADIX + data[1];
  const extendable = ((idExp >>> 4) & 1) === 1;
  if (polymod([...customization(extendable), ...data]) !== 1) throw new ShareError(BAD_SHARE, "the share's checksum does not hold (a word is wrong)");
  const params = data[2] * RADIX + data[3];
  const share = {
    identifier: idExp >>> 5,
    extendable,
    iterationExponent: idExp & 15,
    groupIndex: (params >>> 16) & 15,
    groupThreshold: ((params >>> 12) & 15) + 1,
    groupCount: ((params >>> 8) & 15) + 1,
    memberIndex: (params >>> 4) & 15,
    memberThreshold: (params & 15) + 1,
    value: wordsToBytes(data.slice(ID_EXP_WORDS + PARAM_WORDS, -CHECKSUM_WORDS), padding),
  };
  if (share.groupThreshold > share.groupCount) throw new ShareError(BAD_SHARE, "the share's group threshold is above its group count");
  return share;
}

/** The mnemonic of a share (the fields decodeMnemonic gives). */
export function encodeMnemonic(share) {
  const idExp = (share.identifier << 5) | (share.extendable ? 16 : 0) | share.iterationExponent;
  const params =
    (share.groupIndex << 16) | ((share.groupThreshold - 1) << 12) | ((share.groupCount - 1) << 8) | (share.memberIndex << 4) | (share.memberThreshold - 1);
  const data = [idExp >>> 10, idExp & 1023, params >>> 10, params & 1023, ...bytesToWords(share.value)];
  return [...data, ...checksumWords(data, share.extendable)].map((i) => WORDLIST[i]).join(" ");
}

// --- Shamir over GF(256), x^8 + x^4 + x^3 + x + 1 ------------------------------------------

const EXP = new Uint8Array(255);
const LOG = new Uint8Array(256);
for (let i = 0, x = 1; i < 255; i++) {
  EXP[i] = x;
  LOG[x] = i;
  x ^= x << 1; // times (x + 1), a generator of the field
  if (x & 0x100) x ^= 0x11b;
}

// f(x) for the polynomials through the points (share.x, share.data[i]) (Lagrange).
function interpolate(points, x) {
  const known = points.find((p) => p.x === x);
  if (known) return Uint8Array.from(known.data);
  const out = new Uint8Array(points[0].data.length);
  for (const p of points) {
    let logBasis = 0;
    for (const q of points) {
      if (q !== p) logBasis += LOG[x ^ q.x] - LOG[p.x ^ q.x];
    }
    logBasis = ((logBasis % 255) + 255) % 255;
    for (let i = 0; i < out.length; i++) {
      if (p.data[i] !== 0) out[i] ^= EXP[(LOG[p.data[i]] + logBasis) % 255];
    }
  }
  return out;
}

async function hmacSha256(key, message) {
  const hmacKey = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, message));
}

function sameBytes(a, b) {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

const systemRandom = (n) => crypto.getRandomValues(new Uint8Array(n));

/** `count` points {x, data} of which any `threshold` give `secret` back (SLIP-39 "Splitting"). */
export async function splitSecret(threshold, count, secret, randomBytes = systemRandom) {
  if (!Number.isInteger(threshold) || !Number.isInteger(count) || threshold < 1 || threshold > count || count > MAX_SHARE_COUNT) {
    throw new ShareError(BAD_THRESHOLD, `need 1 <= threshold <= count <= ${MAX_SHARE_COUNT}`);
  }
  if (threshold === 1) return Array.from({ length: count }, (_, x) => ({ x, data: Uint8Array.from(secret) }));
  const points = [];
  for (let x = 0; x < threshold - 2; x++) points.push({ x, data: randomBytes(secret.length) });
  const randomPart = randomBytes(secret.length - DIGEST_BYTES);
  const digest = (await hmacSha256(randomPart, secret)).subarray(0, DIGEST_BYTES);
  const digestShare = new Uint8Array(secret.length);
  digestShare.set(digest);
  digestShare.set(randomPart, DIGEST_BYTES);
  const base = [...points, { x: DIGEST_INDEX, data: digestShare }, { x: SECRET_INDEX, data: secret }];
  for (let x = threshold - 2; x < count; x++) points.push({ x, data: interpolate(base, x) });
  return points;
}

/** The secret from `threshold` points with distinct x; bad_digest when they do not agree. */
export async function recoverSecret(threshold, points) {
  if (threshold === 1) return Uint8Array.from(points[0].data);
  const secret = interpolate(points, SECRET_INDEX);
  const digestShare = interpolate(points, DIGEST_INDEX);
  const digest = await hmacSha256(digestShare.subarray(DIGEST_BYTES), secret);
  if (!sameBytes(digest.subarray(0, DIGEST_BYTES), digestShare.subarray(0, DIGEST_BYTES))) {
    throw new ShareError(BAD_DIGEST, "the shares do not combine: at least one of them was altered");
  }
  return secret;
}

// --- the master secret cipher (SLIP-39 "Encryption of the master secret") -----------------

function passphraseBytes(passphrase) {
  if (typeof passphrase !== "string" || !/^[\x20-\x7e]*$/.test(passphrase)) {
    throw new ProtocolError(BAD_KEY, "a SLIP-39 passphrase is printable ASCII");
  }
  return Uint8Array.from(ascii(passphrase));
}

async function feistel(input, passphrase, iterationExponent, identifier, extendable, rounds) {
  if (input.length % 2 !== 0 || input.length < MIN_SECRET_BYTES) {
    throw new ShareError(BAD_SHARE, `a master secret is an even number of bytes, at least ${MIN_SECRET_BYTES}`);
  }
  const pass = passphraseBytes(passphrase);
  const salt = extendable ? [] : [...ascii(CUSTOMIZATION), identifier >>> 8, identifier & 0xff];
  const iterations = (BASE_ITERATIONS << iterationExponent) / ROUNDS;
  const half = input.length / 2;
  let left = input.subarray(0, half);
  let right = input.subarray(half);
  for (const round of rounds) {
    const password = await crypto.subtle.importKey("raw", Uint8Array.from([round, ...pass]), "PBKDF2", false, ["deriveBits"]);
    const f = new Uint8Array(
      await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt: Uint8Array.from([...salt, ...right]), iterations }, password, half * 8),
    );
    [left, right] = [right, left.map((byte, i) => byte ^ f[i])];
  }
  const out = new Uint8Array(input.length);
  out.set(right);
  out.set(left, half);
  return out;
}

export function encrypt(masterSecret, passphrase, iterationExponent, identifier, extendable) {
  return feistel(masterSecret, passphrase, iterationExponent, identifier, extendable, [0, 1, 2, 3]);
}

export function decrypt(encrypted, passphrase, iterationExponent, identifier, extendable) {
  return feistel(encrypted, passphrase, iterationExponent, identifier, extendable, [3, 2, 1, 0]);
}

// --- whole sets ---------------------------------------------------------------------------

/**
 * Mnemonics of one group: `count` members of which `threshold` recover `masterSecret`.
 * `randomBytes(n)` gives the polynomial's random bytes (crypto.getRandomValues by default;
 * the shared vectors pass the reference implementation's bytes to get its mnemonics).
 */
export async function splitMasterSecret(
  masterSecret,
  { threshold, count, identifier, extendable = true, iterationExponent = 1, passphrase = "", randomBytes = systemRandom },
) {
  if (!Number.isInteger(identifier) || identifier < 0 || identifier >= 1 << ID_BITS) {
    throw new ShareError(BAD_SET_ID, `an identifier is an integer in 0..${(1 << ID_BITS) - 1}`);
  }
  if (threshold === 1 && count > 1) throw new ShareError(BAD_THRESHOLD, "a threshold of 1 is for a single share");
  const encrypted = await encrypt(masterSecret, passphrase, iterationExponent, identifier, extendable);
  const points = await splitSecret(threshold, count, encrypted, randomBytes);
  const common = { identifier, extendable, iterationExponent, groupIndex: 0, groupThreshold: 1, groupCount: 1, memberThreshold: threshold };
  return points.map((p) => encodeMnemonic({ ...common, memberIndex: p.x, value: p.data }));
}

const COMMON_FIELDS = ["identifier", "extendable", "iterationExponent", "groupThreshold", "groupCount"];

/**
 * The master secret from decoded shares (decodeMnemonic) and the passphrase, per SLIP-39
 * "Combining the shares". The same mnemonic given twice counts once; beyond a group's member
 * threshold, or the group threshold, the first ones are used.
 */
export async function recoverMasterSecret(shares, passphrase = "") {
  if (!Array.isArray(shares) || shares.length === 0) throw new ShareError(TOO_FEW_SHARES, "no shares", { have: 0 });
  const first = shares[0];
  const groups = new Map();
  shares.forEach((share, position) => {
    if (COMMON_FIELDS.some((field) => share[field] !== first[field]) || share.value.length !== first.value.length) {
      throw new ShareError(SHARE_SET_MISMATCH, `share ${position + 1} is of another set`, { share: position });
    }
    const group = groups.get(share.groupIndex) ?? [];
    groups.set(share.groupIndex, group);
    if (group.length > 0 && share.memberThreshold !== group[0].memberThreshold) {
      throw new ShareError(SHARE_SET_MISMATCH, `share ${position + 1} has another member threshold`, { share: position });
    }
    const twin = group.find((other) => other.memberIndex === share.memberIndex);
    if (!twin) group.push(share);
    else if (!sameBytes(twin.value, share.value)) {
      throw new ShareError(DUPLICATE_SHARE, `share ${position + 1} has the index of an earlier one`, { share: position });
    }
  });
  const complete = [...groups.values()].filter((group) => group.length >= group[0].memberThreshold);
  if (complete.length < first.groupThreshold) {
    const [only] = groups.values();
    const single = first.groupThreshold === 1;
    throw new ShareError(TOO_FEW_SHARES, single ? `${only.length} shares of ${only[0].memberThreshold} needed` : "too few complete groups", {
      have: single ? only.length : complete.length,
      need: single ? only[0].memberThreshold : first.groupThreshold,
    });
  }
  const groupPoints = [];
  for (const group of complete.slice(0, first.groupThreshold)) {
    const threshold = group[0].memberThreshold;
    const members = group.slice(0, threshold).map((share) => ({ x: share.memberIndex, data: share.value }));
    groupPoints.push({ x: group[0].groupIndex, data: await recoverSecret(threshold, members) });
  }
  const encrypted = await recoverSecret(first.groupThreshold, groupPoints);
  return decrypt(encrypted, passphrase, first.iterationExponent, first.identifier, first.extendable);
}
