// One file being fetched: binds a Transfer (transfer.js, the pure scheduler) to the wire,
// the checks and the store. Every manifest is verified (signature, id asked for) and every
// chunk re-hashed before the transfer hears of it; state lives in IndexedDB (the file record
// and the chunks already stored), so a reload resumes where it stopped. A Download knows
// its owner only through a DownloadHost (downloads.js makes it): nothing else reaches it.
// A copy kept for the swarm without a key (repair by peers) is fetched the same way and
// stored, never decrypted: it completes with no plaintext.
import { asBytes, CHUNK_SIZE, decryptChunk, digestId, importFileKey } from "../protocol/chunks.js";
import { BAD_CHUNK, CHUNK_MISMATCH, DECRYPT_FAILED, ProtocolError, WRONG_FILE } from "../protocol/errors.js";
import { ciphertextLength, verifyManifest } from "../protocol/manifest.js";
import { Transfer } from "../protocol/transfer.js";
import { isKeyless } from "./keeping.js";
import { assemble } from "./opening.js";

const MAX_LOST_ROUNDS = 3; // re-fetches of chunks the store lost before the download fails
export const STORE_FAILED = "store_failed";
const wall = () => performance.timeOrigin + performance.now();

/**
 * Everything a Download uses from outside, and nothing more.
 * @typedef {object} DownloadHost
 * @property {() => number} clock now, ms
 * @property {{heldIndices: Function, reserve: Function, getChunks: Function}} store the content store (contentstore.js)
 * @property {(id: string, data: Uint8Array) => Promise<void>} write stores a verified chunk (batched)
 * @property {() => Promise<void>} flush resolves once every chunk written so far is stored
 * @property {(peerId: string, frame: object) => boolean} send a wire frame; false when the peer is gone
 * @property {(level: string, code: string, message: string, peerId?: string) => void} log
 * @property {(peerId: string, code: string, message: string) => void} penalize bad content from a peer
 * @property {(record: object) => Promise<void>} save persists the file record (changed in place)
 * @property {(id: string, count: number) => void} held the number of chunks held changed
 * @property {(download: Download) => void} progressed after every step
 * @property {(download: Download, bytes: Uint8Array|null, sha256: string|null) => Promise<void>} completed (null, null: a keyless copy)
 * @property {(download: Download, code: string, message: string) => Promise<void>} failed
 */

export class Download {
  /** `host`: a DownloadHost; `record`: the file record (updated in place, saved through the host). */
  constructor(host, record) {
    this.host = host;
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
    // A copy kept for the swarm without a key (keeping.js SWARM_ROLE): the ciphertext is
    // checked against the signed manifest and stored, never decrypted nor assembled.
    this.keyless = isKeyless(record);
  }

  /** Begin with the connected peers' ids and the holders already advertised (peer id -> chunks). */
  async start({ peers = [], holders = [] } = {}) {
    const now = this.host.clock();
    this.cryptoKey = this.keyless ? null : await importFileKey(this.record.key);
    if (this.record.envelope) {
      this.manifest = await verifyManifest(this.record.envelope, { expectedId: this.id });
      this.#allocate();
      const held = await this.host.store.heldIndices(this.manifest.chunks);
      for (const i of held) this.heldAtStart[i] = 1;
      this.transfer = new Transfer({ manifestId: this.id, now, chunkCount: this.manifest.chunks.length, held });
    } else {
      this.transfer = new Transfer({ manifestId: this.id, now });
    }
    for (const peerId of peers) this.transfer.peerOpened(peerId, now);
    for (const [peerId, chunks] of holders) this.transfer.have(peerId, chunks, now);
    this.#step();
  }

  // --- inputs from the owner (downloads.js) ---

  peerOpened(peerId) {
    this.transfer?.peerOpened(peerId, this.host.clock());
    this.#step();
  }

  peerClosed(peerId) {
    this.transfer?.peerClosed(peerId, this.host.clock());
    this.#step();
  }

  have(peerId, chunks) {
    this.transfer?.have(peerId, chunks, this.host.clock());
    this.#step();
  }

  async onManifest(peerId, frame) {
    const t = this.transfer;
    if (!t?.awaitsManifestFrom(peerId)) return;
    const now = this.host.clock();
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
      t.manifestRejected(peerId, error.code, error.message, this.host.clock());
      this.#step();
      return;
    }
    if (!t.awaitsManifestFrom(peerId)) return;
    if (this.manifest) {
      // A probe while waiting for a source: the peer holds the file, so it becomes one.
      t.manifestReady(peerId, this.manifest.chunks.length, [], this.host.clock());
      this.#step();
      return;
    }
    if (this.record.fileId && this.record.fileId !== manifest.fileId) {
      // A key wrapped for another file than the manifest names: it could never open.
      this.#fail(WRONG_FILE, "the key received is for another file than this manifest");
      return;
    }
    let saved;
    try {
      // What is held already and whether it fits, at once (two IndexedDB and quota round
      // trips that the first chunk would otherwise wait for in turn).
      const need = manifest.chunks.reduce((n, _, i) => n + ciphertextLength(manifest, i), 0);
      const [held] = await Promise.all([
        this.host.store.heldIndices(manifest.chunks),
        this.host.store.reserve(need, `${manifest.name} (${(manifest.size / 1e6).toFixed(1)} MB)`),
      ]);
      this.manifest = manifest;
      this.#allocate();
      for (const i of held) this.heldAtStart[i] = 1;
      Object.assign(this.record, {
        envelope: manifest.envelope,
        name: manifest.name,
        mime: manifest.mime,
        size: manifest.size,
        chunkCount: manifest.chunks.length,
        author: manifest.author,
        createdAt: manifest.createdAt,
        fileId: manifest.fileId,
      });
      // Chunks are asked for while the record is saved: a reload before it is saved starts
      // again from the manifest, and chunks stored meanwhile are found held then.
      saved = this.host.save(this.record);
      this.times.manifestAt = wall();
      t.manifestReady(peerId, manifest.chunks.length, held, this.host.clock());
    } catch (error) {
      this.#fail(error.code ?? "error", error.message);
      return;
    }
    this.#step();
    try {
      await saved;
    } catch (error) {
      this.#fail(error.code ?? "error", error.message);
    }
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
    const now = this.host.clock();
    if (code) {
      this.stats.rejected += 1;
      t.chunkRejected(peerId, index, code, message, now);
    } else if (t.chunkAccepted(peerId, index, data.length, now)) {
      this.times.firstChunkAt ??= wall();
      this.host.write(expected, data).catch((error) => this.#writeFailed(error));
      if (!this.keyless) this.#open(index, data);
      this.host.held(this.id, t.heldCount);
    } else {
      this.stats.duplicates += 1;
    }
    this.#step();
  }

  onChunkMissing(peerId, frame) {
    this.transfer?.chunkMissing(peerId, frame.index, this.host.clock());
    this.#step();
  }

  /** Stop fetching (deleted, or the page is leaving). */
  stop() {
    clearTimeout(this.timer);
    this.stopped = true;
  }

  #allocate() {
    this.heldAtStart = new Uint8Array(this.manifest.chunks.length);
    if (this.keyless) return;
    this.plain = new Uint8Array(this.manifest.size);
    this.opened = new Uint8Array(this.manifest.chunks.length);
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
    return this.transfer ? this.transfer.progress(this.host.clock()) : null;
  }

  // --- the transfer's outputs ---

  #step() {
    const t = this.transfer;
    if (!t || this.stopped) return;
    for (const action of t.takeActions()) {
      if (action.type === "manifest_req") this.#send(action.peerId, { t: "manifest_req", id: this.id });
      else if (action.type === "chunk_req")
        this.#send(action.peerId, { t: "chunk_req", manifest: this.id, index: action.index, chunk: this.manifest.chunks[action.index] });
      else if (action.type === "penalize") this.host.penalize(action.peerId, action.code, `${this.record.name ?? this.id}: ${action.message}`);
      else if (action.type === "dropped")
        this.host.log("info", action.code, `source dropped from ${this.record.name ?? this.id}: ${action.message}`, action.peerId);
      else if (action.type === "complete") this.#finish();
      else if (action.type === "failed") this.#fail(action.code, action.message);
    }
    this.host.progressed(this);
    if (t.done) {
      clearTimeout(this.timer);
      return;
    }
    // One timer at the transfer's next deadline, moved only when that comes sooner.
    const now = this.host.clock();
    const at = Math.max(now + 5, t.nextDeadline(now));
    if (this.timer && this.timerAt <= at) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = null;
      t.tick(this.host.clock());
      this.#step();
    }, at - now);
  }

  #send(peerId, frame) {
    if (!this.host.send(peerId, frame)) {
      // Gone between the decision and the send: the transfer hears it at once.
      queueMicrotask(() => this.peerClosed(peerId));
    }
  }

  async #finish() {
    if (this.finishing) return;
    this.finishing = true;
    try {
      this.times.chunksAt = wall();
      await Promise.all([this.host.flush(), ...this.opening]);
      if (this.failed || this.stopped) return;
      // Everything counted must be in storage (what is served to others and opened later),
      // also the chunks already decrypted here.
      const stored = new Uint8Array(this.manifest.chunks.length);
      for (const i of await this.host.store.heldIndices(this.manifest.chunks)) stored[i] = 1;
      const absent = [];
      stored.forEach((held, i) => {
        if (!held) absent.push(i);
      });
      if (absent.length > 0) {
        this.#refetch(absent);
        return;
      }
      if (this.keyless) {
        // Every chunk hashed to its id on arrival and is stored: the copy is complete.
        this.times.doneAt = wall();
        await this.host.completed(this, null, null);
        return;
      }
      const { bytes, sha256, missing } = await assemble(this.host.store, this.manifest, this.cryptoKey, { into: this.plain, opened: this.opened });
      if (missing.length > 0) {
        this.#refetch(missing);
        return;
      }
      this.times.doneAt = wall();
      await this.host.completed(this, bytes, sha256);
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
    else this.host.log("warn", "store_write_failed", `${this.record.name ?? this.id}: ${error.message}`);
  }

  // Chunks counted as held but not in the store at the end (a write lost with a reload, a
  // store that dropped them): back to the transfer, fetched again. A store that keeps losing
  // what it was given is a fault of the store: fail, say so.
  #refetch(missing) {
    this.lostRounds = (this.lostRounds ?? 0) + 1;
    const where = (i) => (this.heldAtStart?.[i] ? "stored before this page started" : "received by this page");
    const sample = missing
      .slice(0, 3)
      .map((i) => `${i} (${where(i)})`)
      .join(", ");
    this.host.log(
      "warn",
      "chunk_lost",
      `${this.record.name ?? this.id}: ${missing.length} chunk(s) missing from storage at the end, fetching them again: ${sample}`,
    );
    if (this.lostRounds > MAX_LOST_ROUNDS) {
      this.#fail(STORE_FAILED, `browser storage lost ${missing.length} chunk(s) again after ${MAX_LOST_ROUNDS} re-fetches`);
      return;
    }
    const now = this.host.clock();
    for (const index of missing) this.transfer.chunkLost(index, now);
    this.finishing = false;
    this.#step();
  }

  async #fail(code, message) {
    if (this.failed) return;
    this.failed = true;
    this.stop();
    await this.host.failed(this, code, message);
  }
}
