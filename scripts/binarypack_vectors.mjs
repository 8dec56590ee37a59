// Writes tests/vectors/binarypack.json from the real npm packages: peerjs-js-binarypack 2.1.0
// (pack/unpack) and peerjs 1.5.5 (its chunker, chunkedMTU 16300). pytest checks the Python
// BinaryPack (peers/peerjs/binarypack.py) and chunker against it in both directions.
//   node scripts/binarypack_vectors.mjs          (rewrite the file)
//   node scripts/binarypack_vectors.mjs --check  (exit 1 if the file differs)
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { pack, unpack } from "peerjs-js-binarypack";

// peerjs's module build reads `window` while loading (browser detection); nothing else is used.
globalThis.window = globalThis;
const peerjs = await import("peerjs");
const util = peerjs.util ?? peerjs.default.util;

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "tests", "vectors", "binarypack.json");
const version = (name) => JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8")).version;

// Deterministic bytes, the same rule as tests/test_peerjs_binarypack.py's pattern().
function pattern(length) {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 7 + (i >> 8) + 3) & 0xff;
  return bytes;
}
const hex = (buffer) => Buffer.from(new Uint8Array(buffer)).toString("hex");
const sha256 = (buffer) => createHash("sha256").update(new Uint8Array(buffer)).digest("hex");

// Values as JSON: ArrayBuffers become {"$bytes": hex} or {"$pattern": length}.
function tag(value) {
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
    const bytes = new Uint8Array(value.buffer ?? value, value.byteOffset ?? 0, value.byteLength);
    return bytes.length > 4096 ? { $pattern: bytes.length } : { $bytes: hex(bytes) };
  }
  if (value === undefined) return { $undefined: true };
  if (typeof value === "string" && value.length > 4096 && value === value[0].repeat(value.length)) {
    return { $repeat: [value[0], value.length] };
  }
  if (Array.isArray(value)) return value.map(tag);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, tag(v)]));
  }
  return value;
}

const range = (n, f) => Array.from({ length: n }, (_, i) => f(i));
const CASES = [
  ["nil", null],
  ["undefined packs as nil", undefined],
  ["true", true],
  ["false", false],
  ["zero", 0],
  ["positive fixint max", 127],
  ["negative fixint min", -32],
  ["negative one", -1],
  ["uint8", 200],
  ["uint8 max", 255],
  ["int8", -100],
  ["int8 min", -128],
  ["uint16", 256],
  ["uint16 max", 65535],
  ["int16", -129],
  ["int16 min", -32768],
  ["uint32", 65536],
  ["uint32 max", 4294967295],
  ["int32", -32769],
  ["int32 min", -2147483648],
  ["int64 positive", 4294967296],
  ["int64 max safe", Number.MAX_SAFE_INTEGER],
  ["int64 negative", -2147483649],
  ["int64 min safe", Number.MIN_SAFE_INTEGER],
  ["double", 1.5],
  ["double negative", -0.1],
  ["double third", 1 / 3],
  ["double tiny", 1.2345e-300],
  ["double large fraction", 123456789.123],
  ["double pi", Math.PI],
  ["empty string", ""],
  ["fixstr", "hello"],
  ["fixstr max", "a".repeat(15)],
  ["str16", "b".repeat(16)],
  ["str16 max", "c".repeat(65535)],
  ["str32", "d".repeat(65536)],
  ["unicode", "héllo wörld ✓ 日本語 🐝"],
  ["empty bytes", new Uint8Array(0).buffer],
  ["fixraw", new Uint8Array([0, 1, 2, 255]).buffer],
  ["fixraw max", pattern(15).buffer],
  ["raw16", pattern(16).buffer],
  ["raw16 max", pattern(65535).buffer],
  ["raw32", pattern(65536).buffer],
  ["typed array view", new Uint8Array(pattern(40).buffer, 5, 20)],
  ["empty array", []],
  ["fixarray", [1, "two", null, true]],
  ["array16", range(16, (i) => i)],
  ["array16 large", range(3000, (i) => i % 300)],
  ["empty map", {}],
  ["fixmap", { a: 1, b: [2, 3], c: { d: "e" } }],
  ["map16", Object.fromEntries(range(16, (i) => [`k${i}`, i]))],
  ["map key order kept", { z: 1, a: 2, m: 3 }],
  ["nested", { list: [{ x: 1.25 }, [[], {}]], bin: new Uint8Array([9, 8, 7]).buffer, s: "ü" }],
  ["swarm-like frame", { t: "chunk", id: "a".repeat(64), i: 3, data: pattern(1000).buffer, ok: true }],
];

const values = CASES.map(([name, value]) => {
  const packed = pack(value);
  const entry = { name, value: tag(value) };
  if (packed.byteLength <= 4096) entry.packed = hex(packed);
  else Object.assign(entry, { packed_length: packed.byteLength, packed_sha256: sha256(packed) });
  // What JavaScript reads back, when it is not the value itself (undefined, views).
  const back = JSON.stringify(tag(unpack(packed)));
  if (back !== JSON.stringify(entry.value)) entry.unpacked = JSON.parse(back);
  return entry;
});

// Bytes that pack() never produces but unpack() reads: float32, uint64, reserved bytes.
const UNPACK_ONLY = [
  ["float32", "ca3fc00000"],
  ["float32 negative", "cac1200000"],
  ["uint64", "cf0000000100000000"],
  ["int64 via d3", "d3000000010000000f"],
  ["int8 positive via d0", "d005"],
  ["str16 short", "d80003616263"],
  ["raw32 short", "db00000002abcd"],
  ["array32", "dd000000020102"],
  ["map32", "df00000001b1610c"],
];
const unpackOnly = UNPACK_ONLY.map(([name, packed]) => ({
  name,
  packed,
  value: tag(unpack(new Uint8Array(Buffer.from(packed, "hex")).buffer)),
}));

// Doubles the JavaScript packer mis-encodes (its exponent comes from Math.log): the bytes it
// sends and what its own unpack reads back from them.
const floatDeviations = [];
for (const value of [2 ** 3 * (1 - 2 ** -53), 2 ** -1021 * (1 - 2 ** -53), 1e-310]) {
  const packed = pack(value);
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, value);
  if (hex(packed) !== `cb${hex(view.buffer)}`) {
    floatDeviations.push({ value, packed: hex(packed), unpacked: unpack(packed) });
  }
}

// PeerJS's binary DataConnection: pack(message); over chunkedMTU it is cut into chunk maps
// {__peerData: id, n, data, total}, each packed as one frame.
function framesOf(value) {
  const blob = pack(value);
  if (blob.byteLength <= util.chunkedMTU) return { id: null, frames: [blob] };
  const chunks = util.chunk(blob);
  return { id: chunks[0].__peerData, frames: chunks.map((chunk) => pack(chunk)) };
}
const CHUNKED = [
  ["at the MTU, one frame", pattern(16300 - 3).buffer],
  ["one byte over the MTU", pattern(16300 - 2).buffer],
  ["40000 bytes", pattern(40000).buffer],
  ["map with 50000 bytes", { name: "file", data: pattern(50000).buffer }],
  ["long string", "x".repeat(20000)],
  ["3 MiB", pattern(3 * 1024 * 1024).buffer],
];
const chunked = CHUNKED.map(([name, value]) => {
  const { id, frames } = framesOf(value);
  const entry = { name, value: tag(value), message_id: id, frame_count: frames.length };
  const total = frames.reduce((sum, frame) => sum + frame.byteLength, 0);
  if (total <= 40000) entry.frames = frames.map(hex);
  else entry.frame_sha256 = frames.map(sha256);
  return entry;
});

const json = [{ a: 1, b: [true, null, "x"] }, { text: "héllo ✓ 🐝", n: -12, nested: { k: [] } }, ['quote " and \\ and \n newline', 0.5]].map((value) => ({
  value,
  text: JSON.stringify(value),
}));

const doc = {
  about: "Generated by scripts/binarypack_vectors.mjs from the npm packages named here; do not edit.",
  packages: {
    "peerjs-js-binarypack": version("peerjs-js-binarypack"),
    peerjs: version("peerjs"),
  },
  chunked_mtu: util.chunkedMTU,
  pattern: "byte i = (i * 7 + (i >> 8) + 3) & 0xff",
  values,
  unpack_only: unpackOnly,
  js_float_deviations: floatDeviations,
  chunked,
  json,
};
const text = `${JSON.stringify(doc, null, 1)}\n`;
if (process.argv.includes("--check")) {
  const same = readFileSync(out, "utf8") === text;
  console.log(same ? `${out} is up to date` : `${out} differs from the packages' output`);
  process.exit(same ? 0 : 1);
}
writeFileSync(out, text);
console.log(
  `wrote ${out}: ${values.length} values, ${unpackOnly.length} unpack-only, ` +
    `${floatDeviations.length} float deviations, ${chunked.length} chunked messages`,
);
