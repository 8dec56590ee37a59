// The DataChannel wire protocol (docs/protocol.md "Wire frames"): one MessagePack map per
// message, {"t": type, ...fields}. decodeFrame() is the only way bytes from a peer become a
// frame; it fails with a stable code so the mesh can count and punish bad input.
import { Decoder, DecodeError, Encoder } from "@msgpack/msgpack";

import { PEER_ID_RE } from "./encoding.js";
import { BAD_FRAME, BAD_MSGPACK, FRAME_TOO_LARGE, ProtocolError, UNKNOWN_FRAME, UNSUPPORTED_FRAME } from "./errors.js";

export const PROTOCOL_VERSION = 1;
export const MAX_FRAME_BYTES = 256 * 1024;
export const ID_BYTES = 32;
export const MAX_PEX_PEERS = 50;
export const MAX_GOSSIP_TTL = 16;
export const MAX_CAPS = 16;
export const MAX_AGENT_BYTES = 64;
export const MAX_HAVE_MANIFESTS = 256;
export const MAX_CHUNKS_PER_MANIFEST = 4096;
export const MAX_CHUNK_DATA = 64 * 1024 + 16; // a 64 KiB chunk plus its AES-GCM tag
export const MAX_UINT32 = 0xffffffff;
// Post sync (docs/protocol.md "Post sync"): heads per summary frame, entries per answer.
export const MAX_SYNC_HEADS = 1024;
export const MAX_SYNC_ENTRIES = 256;
// Signaling through the mesh (docs/protocol.md "Signaling through the mesh"): the largest hop
// budget a signed message may grant (a frame's `hops` left is below it) and the peer ids a
// `reach` advert lists.
export const MAX_SIGNAL_HOPS = 6;
export const MAX_REACH_PEERS = 64;
// The DHT (docs/protocol.md "DHT"): contacts per answer (k), records per answer and per store.
export const MAX_DHT_NODES = 20;
export const MAX_DHT_RECORDS = 20;
export const MAX_DHT_STORE = 8;
const DHT_KIND_RE = /^(peer|provider)$/;
// A signed object may nest one level deeper than its body (the body's own limit is 16).
export const MAX_ENVELOPE_DEPTH = 17;
export const CAP_RE = /^[a-z0-9][a-z0-9_.-]{0,31}$/;
export const CAP_SUPERPEER = "superpeer"; // hello capability of a super-peer
export const REASON_RE = /^[a-z][a-z0-9_]{0,31}$/;
export const DIGEST_ID_RE = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;
// "" (from the first author) or a peer id: where a summary's range of authors starts.
const AFTER_RE = /^(|p[a-z2-7]{32})$/;
const RESERVED_RE = /^(dht|sync|shard)_[a-z0-9_]{1,24}$/;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

export class WireError extends ProtocolError {
  constructor(code, message) {
    super(code, message);
    this.name = "WireError";
  }
}

const fail = (message) => {
  throw new WireError(BAD_FRAME, message);
};

// --- field kinds: each checks a decoded value and returns it normalized ---

const int = (min, max) => (value, name) => {
  let n = value;
  if (typeof n === "bigint") {
    if (n < BigInt(min) || n > BigInt(max)) fail(`${name} is out of range`);
    n = Number(n);
  }
  if (!Number.isSafeInteger(n)) fail(`${name} must be an integer`);
  if (n < min || n > max) fail(`${name} is out of range`);
  return n;
};

const utf8Length = (text) => new TextEncoder().encode(text).length;

const str = (re, maxBytes) => (value, name) => {
  if (typeof value !== "string") fail(`${name} must be a string`);
  if (maxBytes !== undefined && utf8Length(value) > maxBytes) fail(`${name} is too long`);
  if (re && !re.test(value)) fail(`${name} is malformed`);
  return value;
};

/** @param {{ len?: number, max?: number }} limits */
const bin =
  ({ len, max }) =>
  (value, name) => {
    if (!(value instanceof Uint8Array)) fail(`${name} must be binary`);
    if (len !== undefined && value.length !== len) fail(`${name} must be ${len} bytes`);
    if (max !== undefined && value.length > max) fail(`${name} is longer than ${max} bytes`);
    return value;
  };

const list = (item, max) => (value, name) => {
  if (!Array.isArray(value)) fail(`${name} must be a list`);
  if (value.length > max) fail(`${name} has more than ${max} items`);
  return value.map((v, i) => item(v, `${name}[${i}]`));
};

const bool = (value, name) => {
  if (typeof value !== "boolean") fail(`${name} must be a boolean`);
  return value;
};

const nullable = (kind) => (value, name) => (value === null ? null : kind(value, name));

function isMap(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value) && !(value instanceof Uint8Array);
}

// JSON-safe data (what a signed envelope may hold): nil, bool, safe int, str, list, map.
function jsonValue(value, name, depth) {
  if (depth > MAX_ENVELOPE_DEPTH) fail(`${name} nests too deeply`);
  if (value === null || typeof value === "boolean" || typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "bigint") return int(-MAX_SAFE, MAX_SAFE)(value, name);
  if (Array.isArray(value)) return value.map((v) => jsonValue(v, name, depth + 1));
  if (isMap(value)) {
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === "__proto__") fail("the key __proto__ is not allowed");
      out[k] = jsonValue(v, name, depth + 1);
    }
    return out;
  }
  return fail(`${name} holds a value a signed object cannot carry`);
}

function fields(kinds) {
  return (value, name) => {
    if (!isMap(value)) fail(`${name} must be a map`);
    const out = {};
    for (const [key, kind] of kinds) {
      if (!Object.hasOwn(value, key)) fail(`${name}.${key} is missing`);
      out[key] = kind(value[key], `${name}.${key}`);
    }
    if (Object.keys(value).length !== kinds.length) fail(`${name} has an unknown field`);
    return out;
  };
}

const envelope = (value, name) => {
  if (!isMap(value)) fail(`${name} must be a map`);
  return jsonValue(value, name, 0);
};

const peerId = str(PEER_ID_RE);
const id32 = bin({ len: ID_BYTES });
// Manifest and chunk ids: canonical unpadded base64url of a SHA-256 digest (docs/protocol.md "Files").
const digestId = str(DIGEST_ID_RE);
const uint32 = int(0, MAX_UINT32);
const ms = int(0, MAX_SAFE);
// A replica advert: `chunks` verified chunks of manifest `id` (0 withdraws it); `keep`
// (optional, true when absent) false for a copy the holder does not keep (a cache).
const holdingFields = fields([
  ["id", digestId],
  ["chunks", int(0, MAX_CHUNKS_PER_MANIFEST)],
]);
const holding = (value, name) => {
  if (!isMap(value) || !Object.hasOwn(value, "keep")) return holdingFields(value, name);
  const { keep, ...rest } = value;
  const out = holdingFields(rest, name);
  if (bool(keep, `${name}.keep`) === false) out.keep = false;
  return out;
};

/**
 * A list of replica adverts as the `have` frame carries it (also the `have` gossip topic's
 * `manifests`): at most MAX_HAVE_MANIFESTS checked entries, `keep` only when false. Throws
 * WireError (bad_frame).
 */
export function checkHoldings(value, name = "manifests") {
  return list(holding, MAX_HAVE_MANIFESTS)(value, name);
}

// The head of one author's post log in a sync summary.
const head = fields([
  ["author", peerId],
  ["seq", ms],
  ["hash", digestId],
]);

const DHT_HEAD = [
  ["id", uint32, true],
  ["ticket", envelope, true],
];

// Field order here is the order senders write (after "t"); receivers accept any order.
// [name, kind, required]
const FRAMES = {
  hello: [
    ["v", int(1, 0xffff), true],
    ["ticket", envelope, true],
    ["caps", list(str(CAP_RE), MAX_CAPS), true],
    ["agent", str(null, MAX_AGENT_BYTES), false],
  ],
  ping: [
    ["n", uint32, true],
    ["ts", ms, true],
  ],
  pong: [
    ["n", uint32, true],
    ["ts", ms, true],
  ],
  pex_req: [["max", int(1, MAX_PEX_PEERS), true]],
  pex: [["peers", list(envelope, MAX_PEX_PEERS), true]],
  gossip: [
    ["id", id32, true],
    ["origin", peerId, true],
    ["ttl", int(0, MAX_GOSSIP_TTL), true],
    ["payload", envelope, true],
  ],
  have: [["manifests", list(holding, MAX_HAVE_MANIFESTS), true]],
  manifest_req: [["id", digestId, true]],
  manifest: [
    ["id", digestId, true],
    ["manifest", nullable(envelope), true],
  ],
  chunk_req: [
    ["manifest", digestId, true],
    ["index", uint32, true],
    ["chunk", digestId, true],
  ],
  chunk: [
    ["manifest", digestId, true],
    ["index", uint32, true],
    ["chunk", digestId, true],
    ["data", bin({ max: MAX_CHUNK_DATA }), true],
  ],
  chunk_missing: [
    ["manifest", digestId, true],
    ["index", uint32, true],
    ["chunk", digestId, true],
  ],
  sync_summary: [
    ["heads", list(head, MAX_SYNC_HEADS), true],
    ["after", str(AFTER_RE), true],
    ["end", bool, true],
  ],
  sync_entries: [
    ["entries", list(envelope, MAX_SYNC_ENTRIES), true],
    ["complete", bool, true],
  ],
  // One signed swarm/shard/v1 message for peer `to` (docs/protocol.md "Guardians and
  // recovery"); its size, signature and fields are checked by the shard layer.
  shard_msg: [
    ["to", peerId, true],
    ["msg", envelope, true],
  ],
  // One signed swarm/mail/v1 message (a mail or an ack) for peer `to` (docs/protocol.md
  // "Mail"); its size, signature and fields are checked by the mail layer.
  mail: [
    ["to", peerId, true],
    ["msg", envelope, true],
  ],
  // One signed swarm/meshsig/v1 message relayed hop by hop; `hops` is how many more times it
  // may be forwarded (docs/protocol.md "Signaling through the mesh"). Its size, signature and
  // fields are checked by the mesh signaling layer (meshsignal.js).
  signal: [
    ["hops", int(0, MAX_SIGNAL_HOPS - 1), true],
    ["msg", envelope, true],
  ],
  // The sender's other neighbours that take signal frames (its reach in one hop).
  reach: [["peers", list(peerId, MAX_REACH_PEERS), true]],
  // The DHT (docs/protocol.md "DHT"): `id` pairs an answer with its request, `ticket` is the
  // sender's presence ticket; contacts travel as presence tickets, records are checked by the
  // DHT layer (dht.js).
  dht_find_node: [...DHT_HEAD, ["target", id32, true]],
  dht_find_value: [...DHT_HEAD, ["kind", str(DHT_KIND_RE), true], ["key", id32, true]],
  dht_store: [...DHT_HEAD, ["kind", str(DHT_KIND_RE), true], ["records", list(envelope, MAX_DHT_STORE), true]],
  dht_nodes: [...DHT_HEAD, ["nodes", list(envelope, MAX_DHT_NODES), true]],
  dht_value: [...DHT_HEAD, ["records", list(envelope, MAX_DHT_RECORDS), true], ["nodes", list(envelope, MAX_DHT_NODES), true]],
  dht_stored: [...DHT_HEAD, ["codes", list(str(REASON_RE), MAX_DHT_STORE), true]],
  bye: [["reason", str(REASON_RE), true]],
};

export const FRAME_TYPES = Object.freeze(Object.keys(FRAMES));

// Check a frame-shaped value against its schema; returns a fresh, normalized frame with
// "t" first and fields in schema order (so encoding is deterministic).
export function checkFrame(value) {
  if (!isMap(value)) fail("a frame must be a map");
  const type = value.t;
  if (typeof type !== "string") fail("t must be a string");
  const schema = FRAMES[type];
  if (schema === undefined || !Object.hasOwn(FRAMES, type)) {
    if (RESERVED_RE.test(type)) throw new WireError(UNSUPPORTED_FRAME, `frame type ${type} is reserved`);
    throw new WireError(UNKNOWN_FRAME, "unknown frame type");
  }
  const out = { t: type };
  const known = new Set(["t"]);
  for (const [name, kind, required] of schema) {
    known.add(name);
    if (!Object.hasOwn(value, name) || value[name] === undefined) {
      if (required) fail(`${type}.${name} is missing`);
      continue;
    }
    out[name] = kind(value[name], `${type}.${name}`);
  }
  for (const key of Object.keys(value)) {
    if (!known.has(key) && value[key] !== undefined) fail(`${type} has an unknown field`);
  }
  return out;
}

// --- MessagePack, strictly: no floats, no extension types, string keys, valid UTF-8 ---

// ignoreBOM keeps a leading U+FEFF in the string, as Python's decoder does.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

// @msgpack/msgpack decodes invalid UTF-8 without complaint and floats as plain numbers
// (1.0 -> 1); Python's msgpack refuses the first and keeps the second a float. Overriding
// these hooks of the pinned decoder makes both sides reject the same frames.
// (Typed loosely: the package declares these hooks private.)
const HookedDecoder = /** @type {new (options?: import("@msgpack/msgpack").DecoderOptions) => any} */ (Decoder);

class StrictDecoder extends HookedDecoder {
  decodeUtf8String(byteLength, headerOffset) {
    const start = this.pos + headerOffset;
    if (this.bytes.byteLength < start + byteLength) return super.decodeUtf8String(byteLength, headerOffset);
    let text;
    try {
      text = strictUtf8.decode(this.bytes.subarray(start, start + byteLength));
    } catch {
      throw new WireError(BAD_MSGPACK, "a string is not valid UTF-8");
    }
    this.pos = start + byteLength;
    return text;
  }

  readF32() {
    throw new WireError(BAD_FRAME, "floats are not allowed");
  }

  readF64() {
    throw new WireError(BAD_FRAME, "floats are not allowed");
  }

  decodeExtension() {
    throw new WireError(BAD_FRAME, "extension types are not allowed");
  }
}

const decoder = new StrictDecoder({
  useBigInt64: true,
  maxStrLength: MAX_FRAME_BYTES,
  maxBinLength: MAX_FRAME_BYTES,
  maxArrayLength: MAX_FRAME_BYTES,
  maxMapLength: MAX_FRAME_BYTES / 2,
  mapKeyConverter: (key) => {
    if (typeof key !== "string") throw new WireError(BAD_FRAME, "map keys must be strings");
    return key;
  },
});
const encoder = new Encoder();

function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new WireError(BAD_FRAME, "frames are binary messages");
}

/** Decode and check one frame; throws WireError with a stable code. */
export function decodeFrame(data) {
  const bytes = asBytes(data);
  if (bytes.length > MAX_FRAME_BYTES) {
    throw new WireError(FRAME_TOO_LARGE, `frame is ${bytes.length} bytes (limit ${MAX_FRAME_BYTES})`);
  }
  let value;
  try {
    value = decoder.decode(bytes);
  } catch (error) {
    if (error instanceof WireError) throw error;
    if (error instanceof DecodeError && /__proto__/.test(error.message)) {
      throw new WireError(BAD_FRAME, "the key __proto__ is not allowed");
    }
    throw new WireError(BAD_MSGPACK, `not one MessagePack value: ${error.message}`);
  }
  return checkFrame(value);
}

/** Check and encode one frame; refuses what a receiver would refuse. */
export function encodeFrame(frame) {
  const bytes = encoder.encode(checkFrame(frame));
  if (bytes.length > MAX_FRAME_BYTES) {
    throw new WireError(FRAME_TOO_LARGE, `frame is ${bytes.length} bytes (limit ${MAX_FRAME_BYTES})`);
  }
  return bytes;
}

// --- the chunk frame, encoded without copying its data twice ---

const ascii = (text) => Array.from(text, (c) => c.charCodeAt(0));
const CHUNK_HEAD = [0x85, 0xa1, ...ascii("t"), 0xa5, ...ascii("chunk"), 0xa8, ...ascii("manifest")];

function uintBytes(n) {
  if (n < 0x80) return [n];
  if (n < 0x100) return [0xcc, n];
  if (n < 0x10000) return [0xcd, n >> 8, n & 0xff];
  return [0xce, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

function binHeader(n) {
  if (n < 0x100) return [0xc4, n];
  if (n < 0x10000) return [0xc5, n >> 8, n & 0xff];
  return [0xc6, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

/**
 * The bytes of {t: "chunk", manifest, index, chunk, data} with data given in parts (a stored
 * chunk is read in two): the same bytes as encodeFrame, the data copied once, straight into
 * the frame. The uploader sends a chunk per frame, so this is its hot path.
 */
export function encodeChunkFrame(manifest, index, chunk, parts) {
  digestId(manifest, "chunk.manifest");
  uint32(index, "chunk.index");
  digestId(chunk, "chunk.chunk");
  const length = parts.reduce((n, p) => n + p.length, 0);
  if (length > MAX_CHUNK_DATA) fail(`chunk.data is longer than ${MAX_CHUNK_DATA} bytes`);
  const head = [
    ...CHUNK_HEAD,
    0xd9,
    43,
    ...ascii(manifest),
    0xa5,
    ...ascii("index"),
    ...uintBytes(index),
    0xa5,
    ...ascii("chunk"),
    0xd9,
    43,
    ...ascii(chunk),
    0xa4,
    ...ascii("data"),
    ...binHeader(length),
  ];
  const out = new Uint8Array(head.length + length);
  out.set(head);
  let at = head.length;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
