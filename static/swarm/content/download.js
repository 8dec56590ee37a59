// One file being fetched: binds a Transfer (transfer.js, the pure scheduler) to the wire,
// the checks and the store. Every manifest is verified (signature, id asked for) and every
// chunk re-hashed before the transfer hears of it; state lives in IndexedDB (the file record
// and the chunks already stored), so a reload resumes where it stopped.
import { asBytes, digestId, importFileKey, decryptChunk, CHUNK_SIZE } from "../protocol/chunks.js";
import { hex } from "../protocol/encoding.js";
import { BAD_CHUNK, CHUNK_MISMATCH, DECRYPT_FAILED, ProtocolError, WRONG_FILE } from "../protocol/errors.js";
import { ciphertextLength, verifyManifest } from "../protocol/manifest.js";
import { Transfer } from "../protocol/transfer.js";

const ASSEMBLE_BATCH = 64;
const MAX_LOST_ROUNDS = 3; // re-fetches of chunks the store lost before the download fails
export const STORE_FAILED = "store_failed";
const wall = () => performance.timeOrigin + performance.now();

/**
 * Decrypt a stored file in order: { bytes, sha256 (hex of the plaintext), missing }. `into`
 * and `opened` (per index, 1 = already decrypted there) skip chunks decrypted as they
 * arrived. Chunks not in the store are listed in `missing` (then there is no sha256): the
 * caller fetches them again, a lost chunk is never the end of a download.
 */
export async function assemble(store, manifest, key, { into = null, opened = null } = {}) {
  const cryptoKey = key instanceof CryptoKey ? key : await importFileKey(key);
  const out = into ?? new Uint8Array(manifest.size);
  const missing = [];
  for (let start = 0; start < manifest.chunks.length; start += ASSEMBLE_BATCH) {
    const indices = [];
    for (let i = start; i < Math.min(start + ASSEMBLE_BATCH, manifest.chunks.length); i++) if (!opened?.[i]) indices.push(i);
    if (indices.length === 0) continue;
    const datas = await store.getChunks(indices.map((i) => manifest.chunks[i]));
    const plains = await Promise.all(datas.map((data, k) => (data === undefined ? null : decryptChunk(cryptoKey, manifest.fileId, indices[k], data))));
    plains.forEach((plain, k) => {
      if (plain === null) missing.push(indices[k]);
      else out.set(plain, indices[k] * CHUNK_SIZE);
    });
  }
  if (missing.length > 0) return { bytes: null, sha256: null, missing };
  const sha256 = hex(new Uint8Array(await crypto.subtle.digest("SHA-256", out)));
  return { bytes: out, sha256, missing };
}

export class Download {
  /** `service`: the FileService (peer, store, writer, holders, hooks); `record`: the file record. */
  constructor(service, record) {
    this.service = service;
    this.record = record;
    this.id = record.id;
    this.manifest = null;
    this.transfer = null;
    this.timer = null;
    this.finishing = false;
    this.stats = { unexpected: 0, rejected: 0, duplicates: 0 };
    // Where the time goes (ms since the epoch): saved with the record as `timings`.
    this.times = { openedAt: performance.timeOrigin, startAt: wall(), manifestAt: null, firstChunkAt: null, chunksAt: null, doneAt: null };
    // Chunks are decrypted as they arrive (a wrong key shows at the first one, and the end
    // only has to hash); chunks stored before a reload are read back at the end.
    this.plain = null;
    this.opened = null;
    this.opening = new Set();
  }

  get peer() {
    return this.service.peer;
  }

  async start() {
    const now = this.service.clock();
    this.cryptoKey = await importFileKey(this.record.key);
    if (this.record.envelope) {
      this.manifest = await verifyManifest(this.record.envelope, { expectedId: this.id });
      this.#allocate();
      const held = await this.service.store.heldIndices(this.manifest.chunks);
      for (const i of held) this.heldAtStart[i] = 1;
      this.transfer = new Transfer({ manifestId: this.id, now, chunkCount: this.manifest.chunks.length, held });
    } else {
      this.transfer = new Transfer({ manifestId: this.id, now });
    }
    for (const p of this.peer.connectedPeers()) this.transfer.peerOpened(p.peerId, now);
    for (const [peerId, chunks] of this.service.holders.get(this.id) ?? []) this.transfer.have(peerId, chunks, now);
    this.#step();
  }

  // --- inputs from the FileService ---

  peerOpened(peerId) {
    this.transfer?.peerOpened(peerId, this.service.clock());
    this.#step();
  }

  peerClosed(peerId) {
    this.transfer?.peerClosed(peerId, this.service.clock());
    this.#step();
  }

  have(peerId, chunks) {
    this.transfer?.have(peerId, chunks, this.service.clock());
    this.#step();
  }

  async onManifest(peerId, frame) {
    const t = this.transfer;
    if (!t?.awaitsManifestFrom(peerId)) return;
    const now = this.service.clock();
    if (frame.manifest === null) {
      t.manifestAbsent(peerId, now);
      this.#step();
      return;
    }
    let manifest;
    try {
      manifest = await verifyManifest(frame.manifest, { now, expectedId: this.id });
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      t.manifestRejected(peerId, error.code, error.message, this.service.clock());
      this.#step();
      return;
    }
    if (!t.awaitsManifestFrom(peerId)) return;
    if (this.manifest) {
      // A probe while waiting for a source: the peer holds the file, so it becomes one.
      t.manifestReady(peerId, this.manifest.chunks.length, [], this.service.clock());
      this.#step();
      return;
    }
    if (this.record.fileId && this.record.fileId !== manifest.fileId) {
      // A key wrapped for another file than the manifest names: it could never open.
      this.#fail(WRONG_FILE, "the key received is for another file than this manifest");
      return;
    }
    try {
      const held = await this.service.store.heldIndices(manifest.chunks);
      const need = manifest.chunks.reduce((n, _, i) => n + ciphertextLength(manifest, i), 0);
      await this.service.store.reserve(need, `${manifest.name} (${(manifest.size / 1e6).toFixed(1)} MB)`);
      this.manifest = manifest;
      this.#allocate();
      for (const i of held) this.heldAtStart[i] = 1;
      Object.assign(this.record, { envelope: manifest.envelope, name: manifest.name, mime: manifest.mime, size: manifest.size, chunkCount: manifest.chunks.length, author: manifest.author, createdAt: manifest.createdAt, fileId: manifest.fileId });
      await this.service.saveRecord(this.record);
      this.times.manifestAt = wall();
      t.manifestReady(peerId, manifest.chunks.length, held, this.service.clock());
    } catch (error) {
      this.#fail(error.code ?? "error", error.message);
      return;
    }
    this.#step();
  }

  async onChunk(peerId, frame) {
    const t = this.transfer;
    const { index } = frame;
    if (!t?.expects(peerId, index) || !this.manifest) {
      this.stats.unexpected += 1;
      return;
    }
    const expected = this.manifest.chunks[index];
    const data = asBytes(frame.data);
    let code = null;
    let message = "";
    if (frame.chunk !== expected) [code, message] = [CHUNK_MISMATCH, `chunk ${index} is labelled with another id`];
    else if (data.length !== ciphertextLength(this.manifest, index)) [code, message] = [BAD_CHUNK, `chunk ${index} has the wrong length`];
    else if ((await digestId(data)) !== expected) [code, message] = [CHUNK_MISMATCH, `chunk ${index} does not hash to its id`];
    const now = this.service.clock();
    if (code) {
      this.stats.rejected += 1;
      t.chunkRejected(peerId, index, code, message, now);
    } else if (t.chunkAccepted(peerId, index, data.length, now)) {
      this.times.firstChunkAt ??= wall();
      this.service.writer.add(expected, data).catch((error) => this.#writeFailed(error));
      this.#open(index, data);
      this.service.heldChanged(this.id, t.heldCount);
    } else {
      this.stats.duplicates += 1;
    }
    this.#step();
  }

  onChunkMissing(peerId, frame) {
    this.transfer?.chunkMissing(peerId, frame.index, this.service.clock());
    this.#step();
  }

  /** Stop fetching (deleted, or the page is leaving). */
  stop() {
    clearTimeout(this.timer);
    this.stopped = true;
  }

  #allocate() {
    this.plain = new Uint8Array(this.manifest.size);
    this.opened = new Uint8Array(this.manifest.chunks.length);
    this.heldAtStart = new Uint8Array(this.manifest.chunks.length);
  }

  #open(index, data) {
    const opening = decryptChunk(this.cryptoKey, this.manifest.fileId, index, data).then(
      (plain) => {
        this.plain.set(plain, index * CHUNK_SIZE);
        this.opened[index] = 1;
      },
      () => this.#fail(DECRYPT_FAILED, "the key in the link does not open this file"),
    );
    this.opening.add(opening);
    opening.finally(() => this.opening.delete(opening));
  }

  progress() {
    return this.transfer ? this.transfer.progress(this.service.clock()) : null;
  }

  // --- the transfer's outputs ---

  #step() {
    const t = this.transfer;
    if (!t || this.stopped) return;
    for (const action of t.takeActions()) {
      if (action.type === "manifest_req") this.#send(action.peerId, { t: "manifest_req", id: this.id });
      else if (action.type === "chunk_req") this.#send(action.peerId, { t: "chunk_req", manifest: this.id, index: action.index, chunk: this.manifest.chunks[action.index] });
      else if (action.type === "penalize") this.service.penalize(action.peerId, action.code, `${this.record.name ?? this.id}: ${action.message}`);
      else if (action.type === "dropped") this.service.log("info", action.code, `source dropped from ${this.record.name ?? this.id}: ${action.message}`, action.peerId);
      else if (action.type === "complete") this.#finish();
      else if (action.type === "failed") this.#fail(action.code, action.message);
    }
    this.service.progressed(this);
    if (t.done) {
      clearTimeout(this.timer);
      return;
    }
    // One timer at the transfer's next deadline, moved only when that comes sooner.
    const now = this.service.clock();
    const at = Math.max(now + 5, t.nextDeadline(now));
    if (this.timer && this.timerAt <= at) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = null;
      t.tick(this.service.clock());
      this.#step();
    }, at - now);
  }

  #send(peerId, frame) {
    if (!this.peer.send(peerId, frame)) {
      // Gone between the decision and the send: the transfer hears it at once.
      queueMicrotask(() => this.peerClosed(peerId));
    }
  }

  async #finish() {
    if (this.finishing) return;
    this.finishing = true;
    try {
      this.times.chunksAt = wall();
      await Promise.all([this.service.writer.flush(), ...this.opening]);
      if (this.failed || this.stopped) return;
      // Everything counted must be in storage (what is served to others and opened later),
      // also the chunks already decrypted here.
      const stored = new Uint8Array(this.manifest.chunks.length);
      for (const i of await this.service.store.heldIndices(this.manifest.chunks)) stored[i] = 1;
      const absent = [];
      stored.forEach((held, i) => held || absent.push(i));
      if (absent.length > 0) {
        this.#refetch(absent);
        return;
      }
      const { bytes, sha256, missing } = await assemble(this.service.store, this.manifest, this.cryptoKey, { into: this.plain, opened: this.opened });
      if (missing.length > 0) {
        this.#refetch(missing);
        return;
      }
      this.times.doneAt = wall();
      await this.service.completed(this, bytes, sha256);
    } catch (error) {
      const code = error.code === DECRYPT_FAILED ? DECRYPT_FAILED : (error.code ?? "error");
      const message = code === DECRYPT_FAILED ? "the key in the link does not open this file" : error.message;
      await this.#fail(code, message);
    }
  }

  // A full store ends the download (nothing more fits); any other failed write only loses
  // those chunks, which the check at the end finds and fetches again.
  #writeFailed(error) {
    if (error.code === "storage_full") this.#fail(error.code, error.message);
    else this.service.log("warn", "store_write_failed", `${this.record.name ?? this.id}: ${error.message}`);
  }

  // Chunks counted as held but not in the store at the end (a write lost with a reload, a
  // store that dropped them): back to the transfer, fetched again. A store that keeps losing
  // what it was given is a fault of the store: fail, say so.
  #refetch(missing) {
    this.lostRounds = (this.lostRounds ?? 0) + 1;
    const where = (i) => (this.heldAtStart?.[i] ? "stored before this page started" : "received by this page");
    const sample = missing.slice(0, 3).map((i) => `${i} (${where(i)})`).join(", ");
    this.service.log("warn", "chunk_lost", `${this.record.name ?? this.id}: ${missing.length} chunk(s) missing from storage at the end, fetching them again: ${sample}`);
    if (this.lostRounds > MAX_LOST_ROUNDS) {
      this.#fail(STORE_FAILED, `browser storage lost ${missing.length} chunk(s) again after ${MAX_LOST_ROUNDS} re-fetches`);
      return;
    }
    const now = this.service.clock();
    for (const index of missing) this.transfer.chunkLost(index, now);
    this.finishing = false;
    this.#step();
  }

  async #fail(code, message) {
    if (this.failed) return;
    this.failed = true;
    this.stop();
    await this.service.failed(this, code, message);
  }
}
