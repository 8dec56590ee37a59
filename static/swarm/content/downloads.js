// The downloads in progress: one Download (download.js) per file being fetched, the one
// ChunkWriter they share, the DownloadHost they are given, the peers' events and content
// frames routed to them, and what a finished download leaves on its record (sources, timings).
// What the file service does with an outcome (events, adverts, keeping) is its own: it is
// told through the callbacks it passes in.
import { ChunkWriter } from "./chunk_writer.js";
import { Download } from "./download.js";

export class Downloads {
  /**
   * `peer`: window.swarm (send, connectedPeers, contentViolation, firstPeerAt); `store`: the
   * content store; `holders`: the direct adverts (holders.js); the callbacks: `log(level,
   * code, message, peerId)`, `save(record)`, `held(id, count)`, `changed()`, `completed(record,
   * {bytes, sha256, served})` after the record is saved complete, `failed(record, code, message)`
   * after it is saved failed.
   */
  constructor({ peer, store, clock, holders, log, save, held, changed, completed, failed }) {
    this.peer = peer;
    this.holders = holders;
    this.log = log;
    this.callbacks = { save, completed, failed };
    this.active = new Map(); // manifest id -> Download
    this.lastTimes = null; // where the time went in the last completed download (bench/transfer.py)
    const writer = new ChunkWriter(store);
    /** @type {import("./download.js").DownloadHost} */
    this.host = {
      clock,
      store,
      write: (id, data) => writer.add(id, data),
      flush: () => writer.flush(),
      send: (peerId, frame) => peer.send(peerId, frame),
      log,
      penalize: (peerId, code, message) => {
        log("warn", code, message, peerId);
        peer.contentViolation(peerId, code, message);
      },
      save,
      held,
      progressed: () => changed(),
      completed: (download, bytes, sha256) => this.#completed(download, bytes, sha256),
      failed: (download, code, message) => this.#failed(download, code, message),
    };
  }

  /** Start (or resume, from what the record and the store hold) fetching `record`. */
  start(record) {
    const download = new Download(this.host, record);
    this.active.set(record.id, download);
    const peers = this.peer.connectedPeers().map((p) => p.peerId);
    download.start({ peers, holders: this.holders.get(record.id) ?? [] }).catch((error) => this.#failed(download, error.code ?? "error", error.message));
  }

  /** The Download of manifest `id` while it is in progress. */
  get(id) {
    return this.active.get(id);
  }

  /** Stop fetching `id` (deleted). */
  stop(id) {
    this.active.get(id)?.stop();
    this.active.delete(id);
  }

  progressOf(id) {
    return this.active.get(id)?.progress() ?? null;
  }

  peerOpened(peerId) {
    for (const download of this.active.values()) download.peerOpened(peerId);
  }

  peerClosed(peerId) {
    for (const download of this.active.values()) download.peerClosed(peerId);
  }

  have(peerId, id, chunks) {
    this.active.get(id)?.have(peerId, chunks);
  }

  manifest(peerId, frame) {
    this.#guard(this.active.get(frame.id)?.onManifest(peerId, frame));
  }

  chunk(peerId, frame) {
    this.#guard(this.active.get(frame.manifest)?.onChunk(peerId, frame));
  }

  chunkMissing(peerId, frame) {
    this.active.get(frame.manifest)?.onChunkMissing(peerId, frame);
  }

  #guard(promise) {
    promise?.catch((error) => this.log("error", "internal_error", String(error?.stack ?? error)));
  }

  async #completed(download, bytes, sha256) {
    const record = download.record;
    const served = download.progress().served;
    const sources = { ...(record.sources ?? {}) };
    for (const [peerId, n] of Object.entries(served)) sources[peerId] = (sources[peerId] ?? 0) + n;
    Object.assign(record, { state: "complete", sha256, held: record.chunkCount, reason: null, sources });
    const t = download.times;
    record.timings = { ...t, firstPeerAt: this.peer.firstPeerAt ?? null };
    this.lastTimes = {
      manifestMs: t.manifestAt && t.manifestAt - t.startAt,
      chunksMs: t.chunksAt - (t.manifestAt ?? t.startAt),
      assembleMs: t.doneAt - t.chunksAt,
    };
    await this.callbacks.save(record);
    this.active.delete(record.id);
    await this.callbacks.completed(record, { bytes, sha256, served });
  }

  async #failed(download, code, message) {
    const record = download.record;
    download.stop();
    Object.assign(record, { state: "failed", reason: code, message, timings: { ...download.times, firstPeerAt: this.peer.firstPeerAt ?? null } });
    await this.callbacks.save(record).catch(() => {});
    this.active.delete(record.id);
    this.callbacks.failed(record, code, message);
  }
}
