// tests/vectors/wire.json (packed by Python's msgpack) holds for static/swarm/protocol/wire.js and the
// gossip/hello/pex checks built on it.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { fromHex, hex } from "../../static/swarm/protocol/encoding.js";
import { ProtocolError } from "../../static/swarm/protocol/errors.js";
import { checkGossip, GossipLog } from "../../static/swarm/protocol/gossip.js";
import { PeerBook } from "../../static/swarm/protocol/peerbook.js";
import { verifyPexTickets } from "../../static/swarm/protocol/pex.js";
import { verifyTicket } from "../../static/swarm/protocol/ticket.js";
import { decodeFrame, encodeFrame, MAX_FRAME_BYTES, PROTOCOL_VERSION, WireError } from "../../static/swarm/protocol/wire.js";

const vectors = JSON.parse(readFileSync(new URL("../vectors/wire.json", import.meta.url), "utf8"));
const { semantic } = vectors;

function bytesOf(c) {
  const head = fromHex(c.hex);
  if (c.pad_to === undefined) return head;
  const out = new Uint8Array(c.pad_to);
  out.set(head);
  return out;
}

// JSON form of the vectors -> the values decodeFrame() returns.
function native(value) {
  if (Array.isArray(value)) return value.map(native);
  if (value !== null && typeof value === "object") {
    if ("$bin" in value) return fromHex(value.$bin);
    if ("$zeros" in value) return new Uint8Array(value.$zeros);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, native(v)]));
  }
  return value;
}

const rejectsWith = (code) => (error) => error instanceof ProtocolError && error.code === code;

test("the vectors cover every frame type and every wire error code", () => {
  const types = new Set(vectors.valid.map((c) => native(c.frame).t));
  for (const t of ["hello", "ping", "pong", "pex_req", "pex", "gossip", "have", "manifest_req", "manifest", "chunk_req", "chunk", "chunk_missing", "bye"]) {
    assert.ok(types.has(t), `no valid vector for ${t}`);
  }
  const codes = new Set(vectors.invalid.map((c) => c.error));
  for (const code of ["frame_too_large", "bad_msgpack", "bad_frame", "unknown_frame", "unsupported_frame"]) {
    assert.ok(codes.has(code), `no invalid vector for ${code}`);
  }
  assert.equal(vectors.max_frame_bytes, MAX_FRAME_BYTES);
});

for (const c of vectors.valid) {
  test(`valid frame ${c.name} decodes to its value`, () => {
    const frame = decodeFrame(bytesOf(c));
    assert.deepEqual(frame, native(c.frame));
    if (c.canonical !== false) assert.equal(hex(encodeFrame(frame)), hex(bytesOf(c)), "re-encoding differs");
  });
}

for (const c of vectors.invalid) {
  test(`invalid frame ${c.name} fails with ${c.error}`, () => {
    assert.throws(() => decodeFrame(bytesOf(c)), rejectsWith(c.error));
  });
}

test("decodeFrame accepts an ArrayBuffer (what a DataChannel delivers) and refuses text", () => {
  const c = vectors.valid.find((v) => v.name === "ping");
  const buffer = bytesOf(c).slice().buffer;
  assert.deepEqual(decodeFrame(buffer), native(c.frame));
  assert.throws(() => decodeFrame("ping"), rejectsWith("bad_frame"));
});

test("a frame of exactly 256 KiB decodes; encodeFrame refuses what receivers refuse", () => {
  const c = vectors.valid.find((v) => v.name === "chunk");
  const base = decodeFrame(bytesOf(c));
  assert.throws(() => encodeFrame({ ...base, data: new Uint8Array(64 * 1024 + 17) }), rejectsWith("bad_frame"));
  assert.throws(() => encodeFrame({ t: "ping", n: 1.5, ts: 0 }), rejectsWith("bad_frame"));
  assert.throws(() => encodeFrame({ t: "nope" }), rejectsWith("unknown_frame"));
  const pad = { t: "hello", v: 1, ticket: { pad: "" }, caps: [] };
  const overhead = encodeFrame(pad).length;
  pad.ticket.pad = "x".repeat(MAX_FRAME_BYTES - overhead - 4); // str8 -> str32 header grows by 4
  const exact = encodeFrame(pad);
  assert.equal(exact.length, MAX_FRAME_BYTES);
  assert.equal(decodeFrame(exact).ticket.pad.length, pad.ticket.pad.length);
  pad.ticket.pad += "x";
  assert.throws(() => encodeFrame(pad), rejectsWith("frame_too_large"));
});

test("WireError is a ProtocolError with a stable code", () => {
  try {
    decodeFrame(new Uint8Array());
    assert.fail("should throw");
  } catch (error) {
    assert.ok(error instanceof WireError && error instanceof ProtocolError);
    assert.equal(error.code, "bad_msgpack");
  }
});

// --- semantics on top of the codec ---

for (const c of semantic.hello) {
  test(`hello ${c.name} -> ${c.error ?? "accepted"}`, async () => {
    const frame = decodeFrame(bytesOf(c));
    const check = async () => {
      if (frame.v !== PROTOCOL_VERSION) throw new ProtocolError("unsupported_version", "version");
      const t = await verifyTicket(frame.ticket, { now: semantic.now, community: semantic.community });
      if (t.peerId !== c.remote_peer_id) throw new ProtocolError("peer_mismatch", "not the connection's peer");
      return t;
    };
    if (c.error === null) assert.equal((await check()).peerId, c.remote_peer_id);
    else await assert.rejects(check(), rejectsWith(c.error));
  });
}

for (const c of semantic.gossip) {
  test(`gossip ${c.name} -> ${c.error ?? "accepted"}`, async () => {
    const frame = decodeFrame(bytesOf(c));
    const run = checkGossip(frame, { now: semantic.now, community: semantic.community });
    if (c.error !== null) {
      await assert.rejects(run, rejectsWith(c.error));
      return;
    }
    const message = await run;
    assert.equal(message.id, c.id_hex);
    const relay = GossipLog.relayFrame(frame);
    assert.equal(relay === null ? null : hex(encodeFrame(relay)), c.relay_hex);
  });
}

for (const c of semantic.pex) {
  test(`pex ${c.name}: good tickets kept, bad ones dropped with their code`, async () => {
    const frame = decodeFrame(bytesOf(c));
    const book = new PeerBook({ selfId: "pself" });
    const { accepted, rejected } = await verifyPexTickets(frame.peers, { now: semantic.now, community: semantic.community, book });
    assert.deepEqual(accepted.map((t) => t.peerId).sort(), [...c.accepted].sort());
    assert.deepEqual(rejected.map((r) => r.code).sort(), [...c.rejected].sort());
  });
}

test("encodeChunkFrame writes the bytes encodeFrame writes, from data in parts", async () => {
  const { encodeChunkFrame } = await import("../../static/swarm/protocol/wire.js");
  const id = (n) => Buffer.from(new Uint8Array(32).fill(n)).toString("base64url");
  for (const index of [0, 1, 127, 128, 255, 256, 65535, 65536, 4095, 2 ** 32 - 1]) {
    for (const size of [0, 1, 255, 256, 65535, 65536, 65552]) {
      const data = Uint8Array.from({ length: size }, (_, i) => (i * 7 + index) & 255);
      const cut = Math.min(size, 65280);
      const frame = { t: "chunk", manifest: id(1), index, chunk: id(index & 255), data };
      const parts = [data.subarray(0, cut), data.subarray(cut)];
      assert.deepEqual(encodeChunkFrame(frame.manifest, index, frame.chunk, parts), encodeFrame(frame), `${index}/${size}`);
    }
  }
  assert.throws(() => encodeChunkFrame(id(1), 0, id(2), [new Uint8Array(65553)]), { code: "bad_frame" });
  assert.throws(() => encodeChunkFrame("x", 0, id(2), []), { code: "bad_frame" });
  assert.throws(() => encodeChunkFrame(id(1), -1, id(2), []), { code: "bad_frame" });
});
