// A minimal swarm peer for tests and benchmarks: the real peerjs client and the pure swarm
// modules (identity, ticket, signal token, wire codec, chunks, manifest), no UI. It says
// hello like any browser peer, shares files (have / manifest / chunk answers) and
// downloads them (manifest_req, pipelined chunk_req, every chunk verified and decrypted).
import { Peer } from "peerjs";

import { encryptFile, parseShareFragment, shareFragment } from "/static/swarm/protocol/chunks.js";
import { generateSigner } from "/static/swarm/protocol/ed25519.js";
import { b64urlDecode, b64urlEncode, hex, peerIdForKey, sha256 } from "/static/swarm/protocol/encoding.js";
import { makeGossip } from "/static/swarm/protocol/gossip.js";
import { decryptFile, makeManifest, verifyManifest } from "/static/swarm/protocol/manifest.js";
import { makePost } from "/static/swarm/protocol/posts.js";
import { makeSignalToken } from "/static/swarm/protocol/signal_token.js";
import { makeTicket } from "/static/swarm/protocol/ticket.js";
import { decodeFrame, encodeFrame } from "/static/swarm/protocol/wire.js";

const WINDOW = 16;
// On a json connection each frame travels as unpadded base64url text in JSON strings;
// every piece but the last starts with "+" (docs/protocol.md "Over a json DataConnection").
const PIECE_CHARS = 16296;

export function jsonPieces(bytes) {
  const text = b64urlEncode(bytes);
  if (text.length <= PIECE_CHARS) return [text];
  const pieces = [];
  for (let i = 0; i < text.length; i += PIECE_CHARS - 1) pieces.push(text.slice(i, i + PIECE_CHARS - 1));
  return pieces.map((p, i) => (i < pieces.length - 1 ? `+${p}` : p));
}

function randomBytes(size) {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(size, i + 65536)));
  return out;
}

class Link {
  constructor(harness, conn) {
    this.harness = harness;
    this.conn = conn;
    this.peer = conn.peer;
    this.serialization = conn.serialization;
    this.hello = null;
    this.bye = null;
    this.have = {};
    this.counts = {};
    this.other = []; // messages that are not frames
    this.pending = []; // json: the pieces of a frame so far
    this.waiters = new Map(); // key -> resolve
    this.closed = false;
    conn.on("data", (data) => this.#receive(data));
    conn.on("close", () => {
      this.closed = true;
      for (const resolve of this.waiters.values()) resolve(null);
      this.waiters.clear();
    });
  }

  send(frame) {
    this.sendBytes(encodeFrame(frame));
  }

  sendBytes(bytes) {
    if (this.serialization !== "json") this.conn.send(bytes);
    else for (const piece of jsonPieces(bytes)) this.conn.send(piece);
  }

  #receive(data) {
    if (this.serialization === "json" && typeof data === "string") {
      this.counts.json_messages = (this.counts.json_messages ?? 0) + 1;
      if (data.startsWith("+")) {
        this.pending.push(data.slice(1));
        return;
      }
      const text = this.pending.join("") + data;
      this.pending = [];
      try {
        data = b64urlDecode(text, "frame", "bad_frame");
      } catch (error) {
        this.counts[`error_${error.code}`] = (this.counts[`error_${error.code}`] ?? 0) + 1;
        return;
      }
    } else if (!(data instanceof ArrayBuffer || ArrayBuffer.isView(data))) {
      this.other.push(data);
      return;
    }
    let frame;
    try {
      frame = decodeFrame(data);
    } catch (error) {
      this.counts[`error_${error.code}`] = (this.counts[`error_${error.code}`] ?? 0) + 1;
      return;
    }
    this.counts[frame.t] = (this.counts[frame.t] ?? 0) + 1;
    const h = this.harness;
    if (frame.t === "hello") this.hello = { v: frame.v, caps: frame.caps, agent: frame.agent ?? null, peerId: frame.ticket.body.peer_id };
    else if (frame.t === "bye") this.bye = frame.reason;
    else if (frame.t === "ping") this.send({ t: "pong", n: frame.n, ts: frame.ts });
    else if (frame.t === "have") for (const m of frame.manifests) this.have[m.id] = m.chunks;
    else if (frame.t === "manifest_req") {
      const held = h.files.get(frame.id);
      this.send({ t: "manifest", id: frame.id, manifest: held ? held.envelope : null });
    } else if (frame.t === "chunk_req") {
      const held = h.files.get(frame.manifest);
      const chunk = held?.chunks[frame.index];
      h.served += 1;
      h.firstServedAt ??= Date.now();
      h.lastServedAt = Date.now();
      if (chunk && chunk.id === frame.chunk) {
        this.send({ t: "chunk", manifest: frame.manifest, index: frame.index, chunk: frame.chunk, data: chunk.ciphertext });
      } else {
        this.send({ t: "chunk_missing", manifest: frame.manifest, index: frame.index, chunk: frame.chunk });
      }
    } else if (frame.t === "manifest") this.#resolve(`manifest:${frame.id}`, frame);
    else if (frame.t === "chunk" || frame.t === "chunk_missing") this.#resolve(`chunk:${frame.manifest}:${frame.index}`, frame);
  }

  #resolve(key, frame) {
    const resolve = this.waiters.get(key);
    if (resolve) {
      this.waiters.delete(key);
      resolve(frame);
    }
  }

  ask(frame, key) {
    return new Promise((resolve) => {
      this.waiters.set(key, resolve);
      this.send(frame);
    });
  }
}

const harness = {
  peer: null,
  peerId: null,
  links: {},
  files: new Map(), // manifest id -> { envelope, chunks }
  served: 0,
  firstServedAt: null,
  lastServedAt: null,
  errors: [],

  async start({ host, port, path, key, community }) {
    harness.community = community;
    harness.signer = await generateSigner();
    harness.peerId = await peerIdForKey(harness.signer.publicKey);
    const token = await makeSignalToken(harness.signer, { peerId: harness.peerId });
    harness.peer = new Peer(harness.peerId, { host, port, path, key, token, config: { iceServers: [] } });
    harness.peer.on("error", (err) => harness.errors.push(`${err.type}: ${err.message}`));
    harness.peer.on("connection", (conn) => harness._adopt(conn));
    await new Promise((resolve, reject) => {
      harness.peer.on("open", resolve);
      harness.peer.on("error", reject);
    });
    return harness.peerId;
  },

  async helloFrame() {
    const ticket = await makeTicket(harness.signer, { peerId: harness.peerId, community: harness.community, now: Date.now() });
    return { t: "hello", v: 1, ticket, caps: [], agent: "test-page/1" };
  },

  async _adopt(conn) {
    const link = new Link(harness, conn);
    harness.links[conn.connectionId] = link;
    const opened = conn.open ? Promise.resolve() : new Promise((r) => conn.on("open", r));
    await opened;
    link.send(await harness.helloFrame());
    harness._advertise(link);
    return conn.connectionId;
  },

  async connect(peerId, serialization = "raw") {
    const conn = harness.peer.connect(peerId, { serialization, reliable: true });
    await new Promise((resolve, reject) => {
      conn.on("open", resolve);
      conn.on("error", (err) => reject(`${err.type}: ${err.message}`));
    });
    return harness._adopt(conn);
  },

  state(connId) {
    const l = harness.links[connId];
    return { open: l.conn.open, closed: l.closed, hello: l.hello, bye: l.bye, have: l.have, counts: l.counts, other: l.other };
  },

  // Wait until fn(state) is truthy (polled), or fail after timeoutMs.
  async until(connId, predicate, timeoutMs = 20000) {
    const test = new Function("s", `return (${predicate})(s)`);
    const deadline = Date.now() + timeoutMs;
    while (!test(harness.state(connId))) {
      if (Date.now() > deadline) throw new Error(`timed out: ${predicate} ${JSON.stringify(harness.state(connId))}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    return harness.state(connId);
  },

  _advertise(link) {
    if (harness.files.size === 0) return;
    const manifests = [...harness.files].map(([id, f]) => ({ id, chunks: f.chunks.length }));
    link.send({ t: "have", manifests });
  },

  // Seal `size` random bytes as a file, keep it, advertise it. Returns ids and the plaintext hash.
  async share(size, name = "shared.bin") {
    const plain = randomBytes(size);
    const sealed = await encryptFile(new Blob([plain]));
    const envelope = await makeManifest(harness.signer, sealed, { name, mime: "application/octet-stream", createdAt: Date.now() });
    const manifest = await verifyManifest(envelope);
    harness.files.set(manifest.id, { envelope, chunks: sealed.chunks });
    for (const link of Object.values(harness.links)) if (link.conn.open) harness._advertise(link);
    return { manifestId: manifest.id, key: shareFragment(sealed.key).slice(2), sha256: hex(await sha256(plain)), chunks: sealed.chunks.length };
  },

  // Download a manifest from the given connections (chunks spread over them), verify, decrypt.
  async download(connIds, manifestId, keyText, window = WINDOW) {
    const links = connIds.map((id) => harness.links[id]);
    const startedAt = Date.now();
    const start = performance.now();
    const answer = await links[0].ask({ t: "manifest_req", id: manifestId }, `manifest:${manifestId}`);
    if (!answer?.manifest) throw new Error(`manifest ${manifestId} is not held by ${links[0].peer}`);
    const manifest = await verifyManifest(answer.manifest, { expectedId: manifestId });
    const total = manifest.chunks.length;
    const parts = new Array(total);
    let next = 0;
    let bytes = 0;
    let last = performance.now();
    let maxGap = 0; // longest wait between two chunks arriving: a stall shows here
    const worker = async (link) => {
      while (next < total) {
        const index = next++;
        const frame = await link.ask({ t: "chunk_req", manifest: manifestId, index, chunk: manifest.chunks[index] }, `chunk:${manifestId}:${index}`);
        if (frame?.t !== "chunk") throw new Error(`chunk ${index}: ${frame ? frame.t : "connection closed"}`);
        parts[index] = frame.data;
        bytes += frame.data.length;
        const now = performance.now();
        maxGap = Math.max(maxGap, now - last);
        last = now;
      }
    };
    const workers = [];
    for (const link of links) for (let i = 0; i < window; i++) workers.push(worker(link));
    await Promise.all(workers);
    const received = performance.now();
    const plain = await decryptFile(manifest, parseShareFragment(`k=${keyText}`), parts);
    return {
      sha256: hex(await sha256(plain)),
      size: plain.length,
      bytes,
      ms: received - start,
      maxGapMs: maxGap,
      startedAt,
      endedAt: startedAt + (received - start),
    };
  },

  // Flood a gossip message of `topic` to every open link; `data` null means a new signed post.
  async gossip(topic, data = null, text = "") {
    const payload = data ?? (await makePost(harness.signer, { seq: 0, prev: null, createdAt: Date.now(), text }));
    const frame = await makeGossip(harness.signer, { origin: harness.peerId, community: harness.community, topic, data: payload, now: Date.now() });
    for (const link of Object.values(harness.links)) if (link.conn.open) link.send(frame);
    return payload;
  },

  close() {
    harness.peer?.destroy();
  },
};

window.harness = harness;
window.harnessReady = true;
