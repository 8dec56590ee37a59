// The files of this page (docs/protocol.md "Files"): the file records and their life, from a
// share or a download to their removal, and the content frames of window.swarm routed to the
// part that owns each concern: sharing (sharing.js), fetching (downloads.js), serving and its
// counts (uploader.js), what we advertise and the holders gossiped (advertiser.js), the
// holders connected peers advertise (holders.js), keeping for the swarm (keeping.js), opening
// (opening.js). The UI (ui/files.js) reads it and listens to its "change", "complete" and
// "failed" events. Copies kept for the swarm without a key (role SWARM_ROLE, started by the
// repair adapter, content/repair.js) live here too: fetched, counted, advertised and served
// like downloads, never opened, listed apart (swarmCopies()); they end with "kept" events.
import { shareFragment } from "../protocol/chunks.js";
import { ERRAND_CONTENT } from "../protocol/errand.js";
import { CAP_SUPERPEER, MAX_CHUNKS_PER_MANIFEST } from "../protocol/wire.js";
import { Advertiser } from "./advertiser.js";
import { Downloads } from "./downloads.js";
import { FileError } from "./errors.js";
import { Holders } from "./holders.js";
import { isKeyless, KEEP_SETTING, Keeper, SWARM_ROLE } from "./keeping.js";
import { Opener } from "./opening.js";
import { Sharing } from "./sharing.js";
import { Uploader, UploadStats } from "./uploader.js";

export { FileError } from "./errors.js";

const CHANGE_EVERY_MS = 200;
const MAX_GOSSIP_HINTS = 4; // gossiped holders dialed first when a download starts

export class FileService extends EventTarget {
  constructor({ peer, store, clock = Date.now, origin = location.origin, linkQuery = "" }) {
    super();
    this.peer = peer;
    this.store = store;
    this.clock = clock;
    this.origin = origin;
    this.linkQuery = linkQuery; // "?community=x" when the community is not the server's default
    this.files = new Map(); // manifest id -> file record
    const log = (level, code, message, peerId = null) => this.log(level, code, message, peerId);
    const changed = () => this.#changed();
    this.holders = new Holders();
    this.keeper = new Keeper();
    this.sharer = new Sharing({ store, clock, changed, log });
    this.opener = new Opener(store);
    this.uploads = new UploadStats();
    // Super-peers (pins, replication) are served in the background of people's downloads.
    this.uploader = new Uploader({
      peer,
      store,
      onServed: (peerId, id, bytes) => this.#served(peerId, id, bytes),
      background: (peerId) => Boolean(peer.node?.mesh.open().some((c) => c.peerId === peerId && c.caps?.includes(CAP_SUPERPEER))),
    });
    this.advertiser = new Advertiser({ peer, clock, log, holdings: (ids) => this.#holdings(ids) });
    this.downloads = new Downloads({
      peer,
      store,
      clock,
      log,
      changed,
      holders: this.holders,
      save: (record) => this.saveRecord(record),
      held: (id, count) => this.#held(id, count),
      completed: (record, outcome) => this.#completed(record, outcome),
      failed: (record, code, message) => this.#failed(record, code, message),
    });
  }

  /** `settings`: the peer's stored settings (the keep opt-in and budget are read from them). */
  async start(settings = {}) {
    for (const record of await this.store.listFiles()) this.files.set(record.id, record);
    this.keeper.load(settings, this.files.values());
    this.peer.addEventListener("frame", (e) => this.#onFrame(e.detail));
    this.peer.addEventListener("peer-open", (e) => this.#peerOpened(e.detail.peerId));
    this.peer.addEventListener("peer-close", (e) => this.#peerClosed(e.detail.peerId));
    for (const record of this.files.values()) if (record.state === "fetching") this.#startDownload(record);
    this.advertiser.start();
    return this;
  }

  /** Files being shared (encrypted, stored, signed): temporary id -> { name, size, done, phase }. */
  get sharing() {
    return this.sharer.jobs;
  }

  /** Whether files move here now (a share being made, a download, chunks being served):
   * background work such as the offline copy waits for it (adapters/offline.js). */
  get busy() {
    return this.downloads.active.size > 0 || this.sharer.jobs.size > 0 || this.uploader.busy;
  }

  /** The keep settings: { keep, budget } (keeping.js). */
  get keeping() {
    return this.keeper.settings;
  }

  /** The keep plan: { kept, refused, used, budget, keep } (keeping.js keepPlan). */
  get plan() {
    return this.keeper.plan;
  }

  /** Where the time went in the last completed download (bench/transfer.py). */
  get lastTimes() {
    return this.downloads.lastTimes;
  }

  /** Holders of manifest `id` heard by gossip and not expired: Map(peer id -> {chunks, keep, expiresAt}). */
  gossipHolders(id) {
    return this.advertiser.gossipHolders(id);
  }

  log(level, code, message, peerId = null) {
    this.peer.log(level, "files", code, message, peerId);
  }

  /** The person's files (shared, downloaded, offered), newest first; not the keyless copies. */
  list() {
    return [...this.files.values()].filter((r) => !isKeyless(r)).sort((a, b) => b.addedAt - a.addedAt);
  }

  /** Copies kept for the swarm without a key (repair), oldest first. */
  swarmCopies() {
    return [...this.files.values()].filter(isKeyless).sort((a, b) => a.addedAt - b.addedAt);
  }

  /**
   * Fetch the ciphertext of manifest `id` to keep for the swarm without its key (repair by
   * peers: content/repair.js): from the holders, checked against the signed manifest, stored,
   * never opened. Resolves the new record, or null when this page already has that file.
   */
  async keepForSwarm(id) {
    if (this.files.has(id)) return null;
    const record = {
      id,
      role: SWARM_ROLE,
      state: "fetching",
      reason: null,
      key: null,
      fileId: null,
      from: null,
      envelope: null,
      addedAt: this.clock(),
      held: 0,
      name: null,
    };
    await this.saveRecord(record);
    this.log("info", "swarm_copy_started", `keeping a copy of ${id} for the swarm (no key)`);
    this.#startDownload(record);
    return record;
  }

  shareLink(record) {
    // Holder hints: this page, then peers that advertised the whole file.
    const hints = [this.peer.peerId, ...this.holders.complete(record.id, record.chunkCount ?? Infinity)].filter(Boolean);
    return `${this.origin}/f/${record.id}${this.linkQuery}#${shareFragment(record.key, hints)}`;
  }

  /** What we uploaded of a file: { bytes, peers, rate (bytes/s over the last 2 s) }. */
  uploadOf(id) {
    return this.uploads.of(id, performance.now());
  }

  progressOf(id) {
    return this.downloads.progressOf(id);
  }

  /** Turn "keep copies for the swarm" on or off and set the budget; saved with the settings. */
  async setKeeping(changes) {
    const next = this.keeper.set(changes);
    const store = this.peer.store;
    if (store) await store.putSettings({ ...(await store.getSettings()), [KEEP_SETTING]: next });
    const plan = this.#replan();
    this.log("info", "keep_settings", `keep copies for the swarm: ${next.keep ? "on" : "off"}, budget ${next.budget} bytes, ${plan.kept.size} kept`);
    this.advertiser.advertise();
    this.dispatchEvent(new Event("keeping"));
    this.#changed();
    return next;
  }

  /** "own", "kept", "refused" or "cached" (keeping.js keepState), and why when refused. */
  keepStateOf(id) {
    const record = this.files.get(id);
    return record ? this.keeper.stateOf(record) : { state: null, message: null };
  }

  /** Encrypt, store and sign a File; resolves its record (share link: shareLink(record)). */
  async share(file) {
    return this.sharer.share(file, {
      signer: () => this.peer.identity.signer,
      keep: async (record) => {
        await this.saveRecord(record);
        this.#held(record.id, record.chunkCount, { now: true });
      },
    });
  }

  /** Fetch a file by manifest id with its key (from a share link or a wrapped key). */
  async download(manifestId, key, { fileId = null, from = null } = {}) {
    const existing = this.files.get(manifestId);
    const keyless = isKeyless(existing);
    if (existing && !keyless && existing.state !== "offered" && existing.state !== "failed") return existing;
    // A copy kept for the swarm without a key becomes this download: the chunks it holds stay.
    if (keyless) this.downloads.stop(manifestId);
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

  /** The plaintext of a complete file as an object URL (made once, then cached). */
  async open(id) {
    const cached = this.opener.cached(id);
    if (cached) return cached;
    const record = this.files.get(id);
    if (isKeyless(record)) throw new FileError("no_key", "this copy is kept for the swarm: this page has no key to open it");
    if (record?.state !== "complete") throw new FileError("not_ready", "the file is not complete");
    const { url, missing } = await this.opener.open(record);
    if (url) return url;
    // Storage lost part of a complete file: fetch what is missing again.
    this.log("warn", "chunk_lost", `${record.name ?? id}: ${missing.length} chunk(s) missing from storage, fetching them again`);
    Object.assign(record, { state: "fetching", reason: null, held: record.chunkCount - missing.length });
    await this.saveRecord(record);
    this.#startDownload(record);
    throw new FileError("incomplete", `${missing.length} chunk(s) of this file were missing from browser storage; fetching them again`);
  }

  /** Delete a file and its chunks (`keepChunks`: the record only, its chunks stay stored). */
  async remove(id, { keepChunks = false } = {}) {
    const record = this.files.get(id);
    if (!record) return;
    this.downloads.stop(id);
    const chunkIds = record.envelope && !keepChunks ? record.envelope.body.chunks : [];
    await this.store.deleteFile(id, chunkIds);
    this.files.delete(id);
    this.opener.forget(id);
    this.advertiser.withdraw(id);
    this.#replan(); // room freed: a download refused before may fit now
    this.advertiser.advertise();
    this.log("info", "file_deleted", `${record.name ?? id} deleted`);
    this.dispatchEvent(new CustomEvent("removed", { detail: { id, role: record.role } }));
    this.#changed();
  }

  /** Store a new or changed file record (keyshare.js saves the keys it receives here). */
  async saveRecord(record) {
    this.files.set(record.id, record);
    await this.store.putFile(record);
    this.#changed();
  }

  /** Whether this page holds anything of manifest `id` it can serve (a full page still takes a download of it). */
  holds(id) {
    return this.#holdings(new Set([id])).length > 0;
  }

  #startDownload(record) {
    // Peers that gossiped holding this file are dialed first, like a share link's holders
    // (the most complete first); a peer signaling says is gone is not redialed.
    const hints = [...this.gossipHolders(record.id)]
      .filter(([peerId]) => peerId !== this.peer.peerId)
      .sort((a, b) => b[1].chunks - a[1].chunks)
      .slice(0, MAX_GOSSIP_HINTS)
      .map(([peerId]) => peerId);
    if (hints.length) this.peer.node?.addHints?.(hints, this.clock(), { errand: ERRAND_CONTENT, manifest: record.id });
    this.downloads.start(record);
    this.#changed();
  }

  #held(id, count, { now = false } = {}) {
    const record = this.files.get(id);
    if (record) record.held = count;
    this.advertiser.changed(id, { now });
  }

  async #completed(record, { bytes, sha256, served }) {
    if (isKeyless(record)) {
      // Nothing to open: counted in the budget, advertised (kept when it fits), served.
      this.#replan();
      this.#held(record.id, record.chunkCount, { now: true });
      this.log("info", "swarm_copy_complete", `${record.name ?? record.id}: ${record.chunkCount} chunks kept for the swarm (no key)`);
      this.dispatchEvent(new CustomEvent("kept", { detail: { id: record.id } }));
      return;
    }
    this.opener.keep(record.id, bytes);
    this.#replan();
    this.#held(record.id, record.chunkCount, { now: true });
    const from = Object.entries(served)
      .map(([peerId, n]) => `${peerId.slice(0, 7)}:${n}`)
      .join(" ");
    this.log("info", "download_complete", `${record.name}: sha256 ${sha256.slice(0, 16)}…, chunks from ${from || "(stored)"}`);
    this.dispatchEvent(new CustomEvent("complete", { detail: { id: record.id, sha256 } }));
  }

  #failed(record, code, message) {
    this.log("warn", code, `download of ${record.name ?? record.id} failed: ${message}`);
    this.dispatchEvent(new CustomEvent("failed", { detail: { id: record.id, code, message } }));
  }

  #served(peerId, id, bytes) {
    // A chunk is served whatever manifest the request names: count only files we hold.
    if (!this.files.has(id)) return;
    this.uploads.add(peerId, id, bytes, performance.now());
    this.#changed();
  }

  // Recompute what is kept; files whose advert changes go with the next advert.
  #replan() {
    const { changed, refused } = this.keeper.replan(this.files.values());
    this.advertiser.mark(changed);
    for (const [id, message] of refused) this.log("info", "not_kept", `${this.files.get(id)?.name ?? id}: ${message}`);
    return this.keeper.plan;
  }

  // Own files are advertised as replicas; a download as one only when kept (keeping.js),
  // else as a cached copy (`keep: false`): a source, never counted.
  #holdings(ids) {
    const out = [];
    for (const record of this.files.values()) {
      if (ids && !ids.has(record.id)) continue;
      const entry = this.keeper.advertFor(record, MAX_CHUNKS_PER_MANIFEST);
      if (entry) out.push(entry);
    }
    return out;
  }

  #peerOpened(peerId) {
    this.advertiser.peerOpened(peerId);
    this.downloads.peerOpened(peerId);
  }

  #peerClosed(peerId) {
    this.uploader.peerClosed(peerId);
    this.holders.peerClosed(peerId);
    this.downloads.peerClosed(peerId);
    this.#changed();
  }

  #onFrame({ peerId, frame }) {
    switch (frame.t) {
      case "have":
        for (const { id, chunks, keep = true } of frame.manifests) {
          this.holders.advert(peerId, id, chunks, keep);
          this.downloads.have(peerId, id, chunks);
        }
        break;
      case "manifest_req": {
        const record = this.files.get(frame.id);
        this.peer.send(peerId, { t: "manifest", id: frame.id, manifest: record?.envelope ?? null });
        break;
      }
      case "manifest":
        this.downloads.manifest(peerId, frame);
        break;
      case "chunk_req":
        this.uploader.request(peerId, frame);
        break;
      case "chunk":
        this.downloads.chunk(peerId, frame);
        break;
      case "chunk_missing":
        this.downloads.chunkMissing(peerId, frame);
        break;
      default:
    }
  }

  #changed() {
    if (this.changeTimer) return;
    this.changeTimer = setTimeout(() => {
      this.changeTimer = null;
      this.dispatchEvent(new Event("change"));
    }, CHANGE_EVERY_MS);
  }
}
