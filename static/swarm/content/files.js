// File sharing in the page: share a file (encrypt, hash, store, sign the manifest, advertise),
// serve what we hold, fetch what a share link or a wrapped key names (downloads.js), keep the
// list of files. Binds the content frames of window.swarm (docs/protocol.md "Files") to the
// store; the UI (filesui.js) reads it and listens to its "change" events.
import { chunkCount, encryptChunks, MAX_FILE_SIZE, newFileId, newFileKey, shareFragment, TAG_BYTES } from "../protocol/chunks.js";
import { Download, assemble } from "./download.js";
import { checkHaveGossip, HaveGossip, TOPIC_HAVE } from "../protocol/have_gossip.js";
import { advertFor, checkKeep, KEEP_SETTING, keepPlan, keepSettings, keepState } from "./keeping.js";
import { isValidName, makeManifest, MAX_NAME_BYTES, normalizeMime, verifyManifest } from "../protocol/manifest.js";
import { Uploader } from "./uploader.js";
import { MAX_CHUNKS_PER_MANIFEST, MAX_HAVE_MANIFESTS } from "../protocol/wire.js";

const WRITE_BATCH = 32; // chunks per IndexedDB transaction when sharing
const MAX_WRITE_BATCH = 128; // chunks per transaction when fetching (16 MiB at most)
const ADVERT_EVERY_MS = 1_000;
const CHANGE_EVERY_MS = 200;
const KEEP_PLAINTEXTS = 3; // object URLs of opened files kept ready
const UPLOAD_RATE_WINDOW_MS = 2_000;
const GOSSIP_TICK_MS = 5_000; // how often the `have` gossip looks whether a publish is due
// Manifests one peer's adverts are kept for (as the super-peer, peers/superpeer/holder.py):
// the ids are the peer's to choose, and a flood of them must not fill the memory.
export const MAX_ADVERTS_PER_PEER = 4096;

export class FileError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "FileError";
    this.code = code;
  }
}

// Chunks verified on receipt are written in batches ("group commit"): one transaction at a
// time, holding everything that arrived while the previous one ran. A transaction per chunk
// would cost several times more.
class ChunkWriter {
  constructor(store) {
    this.store = store;
    this.pending = [];
    this.running = null; // the transaction in progress (a promise)
  }

  add(id, data) {
    return new Promise((resolve, reject) => {
      this.pending.push({ id, data, resolve, reject });
      this.running ??= this.#run();
    });
  }

  /** Resolves when everything added so far is written (or failed). */
  async flush() {
    while (this.running) await this.running;
  }

  async #run() {
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, MAX_WRITE_BATCH);
      try {
        await this.store.putChunks(batch);
        for (const item of batch) item.resolve();
      } catch (error) {
        for (const item of batch) item.reject(error);
      }
    }
    this.running = null;
  }
}

// A browser's File.name made acceptable to the manifest (docs/protocol.md "Manifest").
export function safeName(name) {
  let out = String(name ?? "").replace(/[\u0000-\u001f\u007f\u202a-\u202e\u2066-\u2069/\\]/g, "_");
  if (!out.isWellFormed()) out = out.toWellFormed();
  while (new TextEncoder().encode(out).length > MAX_NAME_BYTES) out = out.slice(0, -1);
  return isValidName(out) ? out : "file";
}

export class FileService extends EventTarget {
  constructor({ peer, store, clock = Date.now, origin = location.origin, linkQuery = "" }) {
    super();
    this.peer = peer;
    this.store = store;
    this.clock = clock;
    this.origin = origin;
    this.linkQuery = linkQuery; // "?community=x" when the community is not the server's default
    this.files = new Map(); // manifest id -> file record
    this.downloads = new Map(); // manifest id -> Download
    this.holders = new Map(); // manifest id -> Map(peer id -> chunks advertised)
    this.adverts = new Map(); // peer id -> manifests it has in `holders`
    this.sharing = new Map(); // temporary id -> { name, size, done, phase }
    this.blobs = new Map(); // manifest id -> object URL of the plaintext
    this.fresh = new Map(); // manifest id -> plaintext of a download just completed (until opened)
    this.writer = new ChunkWriter(store);
    this.served = new Map(); // manifest id -> { bytes, peers: Set, recent: [[at, bytes]] }
    this.uploader = new Uploader({ peer, store, onServed: (peerId, id, bytes) => this.#served(peerId, id, bytes) });
    this.dirty = new Set(); // manifests whose held count changed since the last advert
    this.serial = 0;
    this.keeping = keepSettings({}); // keep copies for the swarm: { keep, budget } (keeping.js)
    this.plan = keepPlan([], this.keeping);
    // `have` by gossip (havegossip.js): what we advertise directly, to the whole swarm; and
    // the holders others gossip, kept for a TTL.
    this.gossip = new HaveGossip({
      selfId: peer.peerId ?? null,
      holdings: () => this.#holdings(),
      publish: (topic, data) => this.peer.publish(topic, data),
    });
  }

  /** `settings`: the peer's stored settings (the keep opt-in and budget are read from them). */
  async start(settings = {}) {
    this.keeping = keepSettings(settings);
    for (const record of await this.store.listFiles()) this.files.set(record.id, record);
    this.plan = keepPlan(this.files.values(), this.keeping);
    this.peer.addEventListener("frame", (e) => this.#onFrame(e.detail));
    this.peer.addEventListener("peer-open", (e) => this.#peerOpened(e.detail.peerId));
    this.peer.addEventListener("peer-close", (e) => this.#peerClosed(e.detail.peerId));
    for (const record of this.files.values()) if (record.state === "fetching") this.#startDownload(record);
    this.peer.node?.gossipChecks.set(TOPIC_HAVE, (data) => void checkHaveGossip(data));
    this.peer.addEventListener("message", (e) => this.#onGossip(e.detail));
    if (typeof this.peer.publish === "function") {
      this.gossipTimer = setInterval(() => this.#gossipTick(), GOSSIP_TICK_MS);
      this.gossipTimer.unref?.(); // (node tests) never keeps the process alive
    }
    return this;
  }

  /** Holders of manifest `id` heard by gossip and not expired: Map(peer id -> {chunks, keep, expiresAt}). */
  gossipHolders(id) {
    return this.gossip.holders(id, this.clock());
  }

  log(level, code, message, peerId = null) {
    this.peer.log(level, "files", code, message, peerId);
  }

  list() {
    return [...this.files.values()].sort((a, b) => b.addedAt - a.addedAt);
  }

  shareLink(record) {
    // Holder hints: this page, then peers that advertised the whole file.
    const complete = [...(this.holders.get(record.id) ?? [])].filter(([, n]) => n >= (record.chunkCount ?? Infinity)).map(([id]) => id);
    const hints = [this.peer.peerId, ...complete].filter(Boolean);
    return `${this.origin}/f/${record.id}${this.linkQuery}#${shareFragment(record.key, hints)}`;
  }

  #served(peerId, id, bytes) {
    // A chunk is served whatever manifest the request names: count only files we hold.
    if (!this.files.has(id)) return;
    let entry = this.served.get(id);
    if (!entry) {
      entry = { bytes: 0, peers: new Set(), recent: [] };
      this.served.set(id, entry);
    }
    entry.bytes += bytes;
    entry.peers.add(peerId);
    const now = performance.now();
    entry.recent.push([now, bytes]);
    while (now - entry.recent[0][0] > UPLOAD_RATE_WINDOW_MS) entry.recent.shift();
    this.#changed();
  }

  /** What we uploaded of a file: { bytes, peers, rate (bytes/s over the last 2 s) }. */
  uploadOf(id) {
    const entry = this.served.get(id);
    if (!entry) return null;
    const now = performance.now();
    while (entry.recent.length && now - entry.recent[0][0] > UPLOAD_RATE_WINDOW_MS) entry.recent.shift();
    const recent = entry.recent.reduce((n, [, b]) => n + b, 0);
    return { bytes: entry.bytes, peers: entry.peers.size, rate: (recent * 1000) / UPLOAD_RATE_WINDOW_MS };
  }

  progressOf(id) {
    return this.downloads.get(id)?.progress() ?? null;
  }

  // --- keeping copies for the swarm (keeping.js) ---

  /** Turn "keep copies for the swarm" on or off and set the budget; saved with the settings. */
  async setKeeping(changes) {
    const next = checkKeep({ ...this.keeping, ...changes });
    this.keeping = next;
    const store = this.peer.store;
    if (store) await store.putSettings({ ...(await store.getSettings()), [KEEP_SETTING]: next });
    const plan = this.#replan();
    this.log("info", "keep_settings", `keep copies for the swarm: ${next.keep ? "on" : "off"}, budget ${next.budget} bytes, ${plan.kept.size} kept`);
    this.#advertise();
    this.#changed();
    return next;
  }

  /** "own", "kept", "refused" or "cached" (keeping.js keepState), and why when refused. */
  keepStateOf(id) {
    const record = this.files.get(id);
    if (!record) return { state: null, message: null };
    return { state: keepState(record, this.plan), message: this.plan.refused.get(id) ?? null };
  }

  // Recompute what is kept; files whose advert changes are marked for the next advert.
  #replan() {
    const before = this.plan;
    this.plan = keepPlan(this.files.values(), this.keeping);
    for (const id of new Set([...before.kept, ...this.plan.kept])) {
      if (before.kept.has(id) !== this.plan.kept.has(id) && this.files.has(id)) this.dirty.add(id);
    }
    for (const [id, message] of this.plan.refused) {
      if (!before.refused.has(id)) this.log("info", "not_kept", `${this.files.get(id)?.name ?? id}: ${message}`);
    }
    return this.plan;
  }

  // --- sharing ---

  /** Encrypt, store and sign a File; resolves its record (share link: shareLink(record)). */
  async share(file) {
    if (file.size > MAX_FILE_SIZE) throw new FileError("too_large", `files are at most ${MAX_FILE_SIZE / 1024 / 1024} MiB`);
    const name = safeName(file.name);
    const temp = `sharing-${++this.serial}`;
    const job = { name, size: file.size, done: 0, phase: "checking space" };
    this.sharing.set(temp, job);
    this.#changed();
    try {
      const count = chunkCount(file.size);
      await this.store.reserve(file.size + count * TAG_BYTES, `"${name}"`);
      const key = newFileKey();
      const fileId = newFileId();
      job.phase = "encrypting";
      const ids = [];
      let batch = [];
      for await (const chunk of encryptChunks(file, { key, fileId })) {
        ids.push(chunk.id);
        batch.push({ id: chunk.id, data: chunk.ciphertext });
        job.done += chunk.ciphertext.length - TAG_BYTES;
        if (batch.length >= WRITE_BATCH) {
          await this.store.putChunks(batch);
          batch = [];
          this.#changed();
        }
      }
      if (batch.length) await this.store.putChunks(batch);
      job.phase = "signing";
      const now = this.clock();
      const envelope = await makeManifest(this.peer.identity.signer, { fileId, size: file.size, chunks: ids.map((id) => ({ id })) }, { name, mime: normalizeMime(file.type), createdAt: now });
      const manifest = await verifyManifest(envelope);
      const record = {
        id: manifest.id,
        role: "shared",
        state: "complete",
        name,
        mime: manifest.mime,
        size: file.size,
        chunkCount: count,
        author: manifest.author,
        createdAt: manifest.createdAt,
        addedAt: now,
        fileId,
        key,
        envelope,
        held: count,
        sha256: null,
        recipients: [],
      };
      await this.saveRecord(record);
      this.heldChanged(record.id, count, { now: true });
      this.log("info", "file_shared", `${name}: ${count} chunks, manifest ${manifest.id}`);
      return record;
    } catch (error) {
      this.log("warn", error.code ?? "share_failed", `${name}: ${error.message}`);
      throw error;
    } finally {
      this.sharing.delete(temp);
      this.#changed();
    }
  }

  // --- fetching ---

  /** Fetch a file by manifest id with its key (from a share link or a wrapped key). */
  async download(manifestId, key, { fileId = null, from = null } = {}) {
    const existing = this.files.get(manifestId);
    if (existing && existing.state !== "offered" && existing.state !== "failed") return existing;
    const record = {
      ...(existing ?? {}),
      id: manifestId,
      role: "download",
      state: "fetching",
      reason: null,
      key,
      fileId: fileId ?? existing?.fileId ?? null,
      from: from ?? existing?.from ?? null,
      envelope: existing?.envelope ?? null,
      addedAt: existing?.addedAt ?? this.clock(),
      held: 0,
    };
    await this.saveRecord(record);
    this.#startDownload(record);
    return record;
  }

  #startDownload(record) {
    const download = new Download(this, record);
    this.downloads.set(record.id, download);
    download.start().catch((error) => this.failed(download, error.code ?? "error", error.message));
    this.#changed();
  }

  /** The plaintext of a complete file as an object URL (made once, then cached). */
  async open(id) {
    const cached = this.blobs.get(id);
    if (cached) return cached;
    const record = this.files.get(id);
    if (!record || record.state !== "complete") throw new FileError("not_ready", "the file is not complete");
    const fresh = this.fresh.get(id);
    if (fresh) {
      this.fresh.delete(id);
      return this.#blob(record, fresh);
    }
    const manifest = await verifyManifest(record.envelope, { expectedId: id });
    const { bytes, sha256, missing } = await assemble(this.store, manifest, record.key);
    if (missing.length > 0) {
      // Storage lost part of a complete file: fetch what is missing again.
      this.log("warn", "chunk_lost", `${record.name ?? id}: ${missing.length} chunk(s) missing from storage, fetching them again`);
      Object.assign(record, { state: "fetching", reason: null, held: record.chunkCount - missing.length });
      await this.saveRecord(record);
      this.#startDownload(record);
      throw new FileError("incomplete", `${missing.length} chunk(s) of this file were missing from browser storage; fetching them again`);
    }
    if (record.sha256 && record.sha256 !== sha256) throw new FileError("corrupt", "the stored file does not match its checksum");
    return this.#blob(record, bytes);
  }

  // Plaintexts are kept for the few files opened last only (they can be large).
  #blob(record, bytes) {
    const url = URL.createObjectURL(new Blob([bytes], { type: record.mime ?? "application/octet-stream" }));
    this.blobs.set(record.id, url);
    for (const [id, old] of this.blobs) {
      if (this.blobs.size <= KEEP_PLAINTEXTS) break;
      URL.revokeObjectURL(old);
      this.blobs.delete(id);
    }
    return url;
  }

  async remove(id) {
    const record = this.files.get(id);
    if (!record) return;
    this.downloads.get(id)?.stop();
    this.downloads.delete(id);
    const chunkIds = record.envelope ? record.envelope.body.chunks : [];
    await this.store.deleteFile(id, chunkIds);
    this.files.delete(id);
    const url = this.blobs.get(id);
    if (url) URL.revokeObjectURL(url);
    this.blobs.delete(id);
    this.fresh.delete(id);
    this.dirty.delete(id);
    this.#broadcast([{ id, chunks: 0 }]);
    this.#replan(); // room freed: a download refused before may fit now
    this.#advertise();
    this.log("info", "file_deleted", `${record.name ?? id} deleted`);
    this.#changed();
  }

  // --- hooks used by Download ---

  async saveRecord(record) {
    this.files.set(record.id, record);
    await this.store.putFile(record);
    this.#changed();
  }

  penalize(peerId, code, message) {
    this.log("warn", code, message, peerId);
    this.peer.contentViolation(peerId, code, message);
  }

  heldChanged(id, count, { now = false } = {}) {
    const record = this.files.get(id);
    if (record) record.held = count;
    this.dirty.add(id);
    if (now) this.#advertise();
    else this.advertTimer ??= setTimeout(() => this.#advertise(), ADVERT_EVERY_MS);
  }

  progressed() {
    this.#changed();
  }

  async completed(download, bytes, sha256) {
    const record = download.record;
    const served = download.progress().served;
    const sources = { ...(record.sources ?? {}) };
    for (const [peerId, n] of Object.entries(served)) sources[peerId] = (sources[peerId] ?? 0) + n;
    Object.assign(record, { state: "complete", sha256, held: record.chunkCount, reason: null, sources });
    const t = download.times;
    record.timings = { ...t, firstPeerAt: this.peer.firstPeerAt ?? null };
    this.lastTimes = { manifestMs: t.manifestAt && t.manifestAt - t.startAt, chunksMs: t.chunksAt - (t.manifestAt ?? t.startAt), assembleMs: t.doneAt - t.chunksAt };
    await this.saveRecord(record);
    // The Blob (a copy) is made when the file is opened; until then the plaintext is kept.
    this.fresh.set(record.id, bytes);
    for (const id of this.fresh.keys()) if (this.fresh.size > KEEP_PLAINTEXTS) this.fresh.delete(id);
    this.downloads.delete(record.id);
    this.#replan();
    this.heldChanged(record.id, record.chunkCount, { now: true });
    const from = Object.entries(served).map(([peerId, n]) => `${peerId.slice(0, 7)}:${n}`).join(" ");
    this.log("info", "download_complete", `${record.name}: sha256 ${sha256.slice(0, 16)}…, chunks from ${from || "(stored)"}`);
    this.dispatchEvent(new CustomEvent("complete", { detail: { id: record.id, sha256 } }));
  }

  async failed(download, code, message) {
    const record = download.record;
    download.stop();
    Object.assign(record, { state: "failed", reason: code, message, timings: { ...download.times, firstPeerAt: this.peer.firstPeerAt ?? null } });
    await this.saveRecord(record).catch(() => {});
    this.downloads.delete(record.id);
    this.log("warn", code, `download of ${record.name ?? record.id} failed: ${message}`);
    this.dispatchEvent(new CustomEvent("failed", { detail: { id: record.id, code, message } }));
  }

  // --- adverts ---

  // Own files are advertised as replicas; a download as one only when kept (keeping.js),
  // else as a cached copy (`keep: false`): a source, never counted.
  #holdings(ids = null) {
    const out = [];
    for (const record of this.files.values()) {
      if (ids && !ids.has(record.id)) continue;
      const entry = advertFor(record, this.plan, MAX_CHUNKS_PER_MANIFEST);
      if (entry) out.push(entry);
    }
    return out;
  }

  #sendHave(peerId, entries) {
    for (let i = 0; i < entries.length; i += MAX_HAVE_MANIFESTS) {
      this.peer.send(peerId, { t: "have", manifests: entries.slice(i, i + MAX_HAVE_MANIFESTS) });
    }
  }

  #broadcast(entries) {
    if (entries.length === 0) return;
    for (const p of this.peer.connectedPeers()) this.#sendHave(p.peerId, entries);
    this.gossip.changed(entries);
    this.#gossipTick();
  }

  // Publish the `have` gossip when due (rate-limited in HaveGossip), forget expired holders.
  #gossipTick() {
    if (typeof this.peer.publish !== "function") return;
    const now = this.clock();
    this.gossip.prune(now);
    this.gossip.tick(now, { connected: this.peer.connectedPeers().length > 0 });
  }

  #onGossip(message) {
    if (message?.topic !== TOPIC_HAVE) return;
    try {
      this.gossip.receive(message.origin, message.data, message.issuedAt, this.clock());
    } catch (error) {
      this.log("warn", error.code ?? "bad_have_gossip", `have gossip from ${message.origin}: ${error.message}`);
    }
  }

  #advertise() {
    clearTimeout(this.advertTimer);
    this.advertTimer = null;
    const ids = this.dirty;
    this.dirty = new Set();
    this.#broadcast(this.#holdings(ids));
  }

  // --- frames and peers ---

  #peerOpened(peerId) {
    this.#sendHave(peerId, this.#holdings());
    for (const download of this.downloads.values()) download.peerOpened(peerId);
  }

  #peerClosed(peerId) {
    this.uploader.peerClosed(peerId);
    for (const [id, holders] of this.holders) {
      holders.delete(peerId);
      if (holders.size === 0) this.holders.delete(id);
    }
    this.adverts.delete(peerId);
    for (const download of this.downloads.values()) download.peerClosed(peerId);
    this.#changed();
  }

  #onFrame({ peerId, frame }) {
    switch (frame.t) {
      case "have":
        for (const { id, chunks } of frame.manifests) {
          this.#advert(peerId, id, chunks);
          this.downloads.get(id)?.have(peerId, chunks);
        }
        break;
      case "manifest_req": {
        const record = this.files.get(frame.id);
        this.peer.send(peerId, { t: "manifest", id: frame.id, manifest: record?.envelope ?? null });
        break;
      }
      case "manifest":
        this.#guard(this.downloads.get(frame.id)?.onManifest(peerId, frame));
        break;
      case "chunk_req":
        this.uploader.request(peerId, frame);
        break;
      case "chunk":
        this.#guard(this.downloads.get(frame.manifest)?.onChunk(peerId, frame));
        break;
      case "chunk_missing":
        this.downloads.get(frame.manifest)?.onChunkMissing(peerId, frame);
        break;
      default:
    }
  }

  #advert(peerId, id, chunks) {
    const holders = this.holders.get(id) ?? new Map();
    const kept = this.adverts.get(peerId) ?? 0;
    if (chunks > 0 && !holders.has(peerId)) {
      if (kept >= MAX_ADVERTS_PER_PEER) return;
      this.adverts.set(peerId, kept + 1);
    } else if (chunks === 0 && holders.has(peerId)) {
      this.adverts.set(peerId, kept - 1);
    }
    if (chunks > 0) holders.set(peerId, chunks);
    else holders.delete(peerId);
    if (holders.size) this.holders.set(id, holders);
    else this.holders.delete(id);
  }

  #guard(promise) {
    promise?.catch((error) => this.log("error", "internal_error", String(error?.stack ?? error)));
  }

  #changed() {
    if (this.changeTimer) return;
    this.changeTimer = setTimeout(() => {
      this.changeTimer = null;
      this.dispatchEvent(new Event("change"));
    }, CHANGE_EVERY_MS);
  }
}
