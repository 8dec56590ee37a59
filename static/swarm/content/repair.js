// Repair by peers in the page (docs/replication.md "Repair by peers"): while the person keeps
// copies for the swarm (keeping.js), one RepairCore (protocol/repair.js) decides which
// under-target manifests this page copies, and the file service fetches each as a copy kept
// for the swarm without a key (files.js keepForSwarm: ciphertext checked and stored, counted
// in the budget, advertised as a replica, served, never opened).
//
// RepairPlanner is the pure part (explicit clock, no I/O): it owns the core while opted in,
// learns the manifests adverts name (asking a connected holder for each, bounded), replays
// the adverts heard before a manifest was known, says when to announce, when a fetch took too
// long, and what to announce when it stops. RepairService binds it to the page: `have` frames,
// `have` and `repair` gossip, hello capabilities (super-peers), departures, the file service's
// records, events and budget, and the timers.
import { CAP_SUPERPEER, MAX_CHUNKS_PER_MANIFEST } from "../protocol/wire.js";
import { verifyManifest } from "../protocol/manifest.js";
import { announcementData, DEFAULT_CONFIG, MAX_ACTIVE, parseAnnouncement, RepairCore, TOPIC_REPAIR } from "../protocol/repair.js";
import { checkHaveGossip, TOPIC_HAVE } from "../protocol/have_gossip.js";
import { isDigestId } from "../protocol/chunks.js";
import { isKeyless, storedSize } from "./keeping.js";

export { TOPIC_REPAIR } from "../protocol/repair.js";

export const MAX_MANIFESTS = 2048; // manifests the core is told of (own records and learned ones)
export const MAX_UNKNOWN = 512; // advertised manifests waiting to be learned
export const MAX_UNKNOWN_HOLDERS = 32; // adverts remembered per manifest not learned yet
export const MAX_ASKING = 4; // manifest requests in flight
export const ASK_TIMEOUT_MS = 15_000; // a holder that has not answered by then: ask another
export const ASK_AGAIN_MS = 60_000; // a manifest nobody gave: asked again after this
export const MAX_SUPERPEERS = 256;
export const DECLINED_SETTING = "repairDeclined"; // settings key: manifests whose keyless copy the person removed
export const MAX_DECLINED = 512; // the newest are remembered

/** Spare keep budget (bytes) a plan leaves: the budget less what the kept copies occupy; 0 when opted out. */
export function spareOf(plan) {
  return plan.keep ? Math.max(0, plan.budget - plan.used) : 0;
}

/**
 * The pure part: the core while opted in, manifest learning, announcements, fetch deadlines.
 * Times are integer milliseconds from the caller's clock.
 */
export class RepairPlanner {
  /**
   * `selfId`: this peer; `config`: {announceMs, warmupMs, workerGraceMs, fetchTimeoutMs}
   * (adapters/config.js REPAIR_DEFAULTS) and any RepairCore config (claimTimeoutMs, ...).
   */
  constructor({ selfId, config }) {
    this.selfId = selfId;
    this.announceMs = config.announceMs;
    this.fetchTimeoutMs = config.fetchTimeoutMs;
    this.coreConfig = Object.fromEntries(Object.keys(DEFAULT_CONFIG).flatMap((k) => (config[k] === undefined ? [] : [[k, config[k]]])));
    this.core = null; // a RepairCore while opted in
    this.nextAnnounce = 0;
    this.fetching = new Map(); // own repair fetches: manifest id -> started at
    this.known = new Set(); // manifests the core was told of
    this.unknown = new Map(); // manifest id -> {holders: Map(peer -> {chunks, keep, at}), askedAt, asking}
    this.declined = new Set(); // manifests the person removed: never fetched again by this page
  }

  get running() {
    return this.core !== null;
  }

  /** Opted in: a new core (its warm-up counts from `now`); announce at once. */
  start(now) {
    if (this.core) return;
    this.core = new RepairCore(this.selfId, now, this.coreConfig);
    this.nextAnnounce = now;
  }

  /**
   * Opted out: the core goes. Returns {announce: the one last `repair` data (spare 0,
   * slots 0), drop: own fetches to stop}; null when it was not running.
   */
  stop() {
    if (!this.core) return null;
    const drop = [...this.fetching.keys()];
    this.core = null;
    this.fetching.clear();
    this.known.clear();
    this.unknown.clear();
    return { announce: announcementData({ spare: 0, slots: 0, backfillAt: 0 }), drop };
  }

  /** This page's free keep budget (bytes, fetches in flight not subtracted) and slots. */
  setSelf(spare, maxActive = MAX_ACTIVE) {
    this.core?.setSelf({ optedIn: true, spare, maxActive });
  }

  /** A manifest this page holds or learned: `chunkCount` chunks, `size` bytes stored. */
  manifest(id, chunkCount, size, now) {
    if (!this.core || this.declined.has(id) || chunkCount < 1) return false;
    if (!this.known.has(id) && this.known.size >= MAX_MANIFESTS) return false;
    // An advert says at most MAX_CHUNKS_PER_MANIFEST chunks (wire.js): a bigger file's complete copy says that many.
    this.core.manifest(id, Math.min(chunkCount, MAX_CHUNKS_PER_MANIFEST), size);
    this.known.add(id);
    const waiting = this.unknown.get(id);
    this.unknown.delete(id);
    for (const [holder, h] of waiting?.holders ?? []) this.core.advert(holder, id, h.chunks, h.keep, Math.min(h.at, now));
    return true;
  }

  /** Whether the core knows manifest `id`. */
  knows(id) {
    return this.known.has(id);
  }

  /**
   * `have` entries ([{id, chunks, keep?}]) of `holder` heard at `at`: to the core for known
   * manifests; the others are remembered (bounded) until their manifest is learned.
   */
  adverts(holder, entries, at) {
    if (!this.core || holder === this.selfId) return;
    for (const { id, chunks, keep = true } of entries) {
      if (this.declined.has(id)) continue;
      if (this.known.has(id)) {
        this.core.advert(holder, id, chunks, keep, at);
        continue;
      }
      let waiting = this.unknown.get(id);
      if (!waiting) {
        if (chunks === 0 || this.unknown.size >= MAX_UNKNOWN || this.known.size >= MAX_MANIFESTS) continue;
        waiting = { holders: new Map(), askedAt: -Infinity, asking: null };
        this.unknown.set(id, waiting);
      }
      if (chunks === 0) waiting.holders.delete(holder);
      else if (waiting.holders.has(holder) || waiting.holders.size < MAX_UNKNOWN_HOLDERS) waiting.holders.set(holder, { chunks, keep, at });
      if (waiting.holders.size === 0) this.unknown.delete(id);
    }
  }

  /**
   * Manifest requests to send now: [[manifest id, holder]] with the holder among `connected`
   * (a Set of peer ids), the most complete first; at most MAX_ASKING in flight.
   */
  toAsk(connected, now) {
    if (!this.core) return [];
    let asking = 0;
    for (const w of this.unknown.values()) {
      if (w.asking !== null && now - w.askedAt < ASK_TIMEOUT_MS) asking += 1;
      else if (w.asking !== null) w.asking = null; // no answer: another holder may be asked
    }
    const out = [];
    for (const [id, w] of this.unknown) {
      if (asking >= MAX_ASKING) break;
      if (w.asking !== null || now - w.askedAt < ASK_AGAIN_MS) continue;
      const holder = [...w.holders].filter(([p]) => connected.has(p)).sort((a, b) => b[1].chunks - a[1].chunks)[0]?.[0];
      if (!holder) continue;
      w.asking = holder;
      w.askedAt = now;
      asking += 1;
      out.push([id, holder]);
    }
    return out;
  }

  /** Whether a manifest answer for `id` from `peerId` was asked for. */
  awaits(id, peerId) {
    return this.unknown.get(id)?.asking === peerId;
  }

  /** `peerId` had no (valid) manifest `id`: it is not asked again for it. */
  notGiven(id, peerId) {
    const w = this.unknown.get(id);
    if (!w || w.asking !== peerId) return;
    w.asking = null;
    w.holders.delete(peerId);
    w.askedAt = -Infinity;
    if (w.holders.size === 0) this.unknown.delete(id);
  }

  /** A `repair` gossip of `origin`; `superpeer`: its hello said super-peer (its backfill_at is evidence). */
  announcement(origin, data, issuedAt, now, superpeer) {
    if (!this.core || origin === this.selfId) return;
    this.core.announcement(origin, data, issuedAt, now, { superpeer });
  }

  /** `peerId` left (said bye, leaving). */
  holderGone(peerId) {
    if (!this.core) return;
    this.core.holderGone(peerId);
    for (const [id, w] of this.unknown) {
      w.holders.delete(peerId);
      if (w.asking === peerId) w.asking = null;
      if (w.holders.size === 0) this.unknown.delete(id);
    }
  }

  /** The person removed manifest `id` (a copy this page kept without a key): never fetched again. */
  decline(id) {
    this.declined.delete(id);
    this.declined.add(id);
    if (this.declined.size > MAX_DECLINED) this.declined.delete(this.declined.values().next().value);
    this.unknown.delete(id);
    if (this.fetching.delete(id)) this.core?.fetchEnded(id, true, 0);
    if (this.known.delete(id)) this.core?.forget(id);
  }

  /**
   * Decide: {fetch: ids to start, cancel: own fetches to drop (target met elsewhere),
   * expired: own fetches past fetchTimeoutMs (given up: failed), workerLive}.
   */
  tick(now) {
    if (!this.core) return { fetch: [], cancel: [], expired: [], workerLive: false };
    const expired = [];
    for (const [id, at] of this.fetching) {
      if (now - at < this.fetchTimeoutMs) continue;
      expired.push(id);
      this.fetchEnded(id, false, now);
    }
    const { fetch, cancel, workerLive } = this.core.tick(now);
    for (const id of cancel) this.fetching.delete(id);
    for (const id of fetch) this.fetching.set(id, now);
    return { fetch, cancel, expired, workerLive };
  }

  /** An own repair fetch ended (ok: the copy is complete). */
  fetchEnded(id, ok, now) {
    if (!this.fetching.delete(id)) return;
    this.core?.fetchEnded(id, ok, now);
  }

  /** The `repair` gossip data to publish now, if one is due (every announceMs while opted in). */
  announcementDue(now) {
    if (!this.core || now < this.nextAnnounce) return null;
    this.nextAnnounce = now + this.announceMs;
    return announcementData(this.core.ownAnnouncement(0));
  }
}

/**
 * The page's side: events in, the planner's decisions out to the file service and the gossip.
 * `peer`: window.swarm (peerId, config.repair, connectedPeers, send, publish, log, node,
 * "frame"/"message"/"peer-open"/"peer-close" events); `files`: the FileService.
 */
export class RepairService {
  constructor({ peer, files, clock = Date.now, config = null }) {
    this.peer = peer;
    this.files = files;
    this.clock = clock;
    this.config = config ?? peer.config?.repair;
    this.planner = new RepairPlanner({ selfId: peer.peerId, config: this.config });
    this.superpeers = new Set(); // peers whose hello said super-peer
    this.dropping = new Set(); // keyless records this service removes itself
    this.ownAdverts = new Set(); // manifests this page's own copies were last fed for
    this.last = { fetch: [], cancel: [], expired: [], workerLive: false, at: null };
    this.stats = { fetched: 0, failed: 0, cancelled: 0, announced: 0, asked: 0 };
  }

  /** Listen; with `timers` (the page), step every tickMs. Tests call step() on their clock. */
  start({ timers = true } = {}) {
    // Checked before delivery and relay, opted in or not (bad_body otherwise).
    this.peer.node?.gossipChecks?.set(TOPIC_REPAIR, (data) => void parseAnnouncement(data));
    this.peer.addEventListener("frame", (e) => this.#onFrame(e.detail));
    this.peer.addEventListener("message", (e) => this.#onMessage(e.detail));
    this.peer.addEventListener("peer-open", (e) => this.#caps(e.detail.peerId, e.detail.caps ?? []));
    this.peer.addEventListener("peer-close", (e) => {
      // Gone for good (said bye, leaving): its copies no longer count; other closes expire.
      if (e.detail.reason === "bye_leaving") this.planner.holderGone(e.detail.peerId);
    });
    for (const p of this.peer.connectedPeers()) this.#caps(p.peerId, p.caps ?? []);
    // Keyless copies left unfinished by an earlier page while the person no longer keeps copies: dropped.
    if (!this.files.keeping.keep) for (const r of this.files.swarmCopies()) if (r.state !== "complete") this.#remove(r.id);
    this.files.addEventListener("keeping", () => this.step());
    this.files.addEventListener("kept", (e) => this.#ended(e.detail.id, true));
    this.files.addEventListener("failed", (e) => this.#failed(e.detail.id));
    this.files.addEventListener("removed", (e) => this.#removed(e.detail));
    this.loaded = this.#loadDeclined();
    if (timers) {
      this.timer = setInterval(() => this.step(), this.config.tickMs);
      /** @type {any} */ (this.timer).unref?.();
    }
    this.step();
    return this;
  }

  stopTimers() {
    clearInterval(this.timer);
  }

  /** Whether this page takes part now (opted in to keep copies for the swarm). */
  get running() {
    return this.planner.running;
  }

  /** What the core sees of manifest `id` now (RepairCore.view), or null. */
  view(id) {
    if (!this.planner.core || !this.planner.knows(id)) return null;
    return this.planner.core.view(id, this.clock());
  }

  /** One round: follow the opt-in, feed this page's own state, learn, decide, act, announce. */
  step() {
    const now = this.clock();
    try {
      if (!this.#follow(now)) return;
      this.#feedSelf(now);
      this.#learn(now);
      const decision = this.planner.tick(now);
      this.last = { ...decision, at: now };
      for (const id of decision.cancel) this.#drop(id, "swarm_copy_cancelled", "target met by other copies");
      for (const id of decision.expired) this.#drop(id, "swarm_copy_timeout", `not complete after ${this.config.fetchTimeoutMs} ms`);
      this.stats.cancelled += decision.cancel.length;
      this.stats.failed += decision.expired.length;
      for (const id of decision.fetch) this.#fetch(id);
      // Announced while someone can hear it (the first one as soon as a peer is there).
      const data = this.peer.connectedPeers().length > 0 ? this.planner.announcementDue(now) : null;
      if (data) this.#publish(data);
    } catch (error) {
      this.peer.log("error", "repair", error.code ?? "internal_error", String(error?.stack ?? error));
    }
  }

  // Start or stop with the opt-in; true while running.
  #follow(now) {
    const keep = this.files.keeping.keep;
    if (keep && !this.planner.running) {
      this.planner.start(now);
      this.#seed(now);
      this.peer.log("info", "repair", "repair_started", "keeping copies for the swarm: this page takes part in repair");
    } else if (!keep && this.planner.running) {
      const { announce, drop } = this.planner.stop();
      for (const id of drop) this.#remove(id);
      this.ownAdverts.clear();
      this.#publish(announce);
      this.peer.log(
        "info",
        "repair",
        "repair_stopped",
        `no longer keeping copies for the swarm${drop.length ? `: ${drop.length} repair fetch(es) dropped` : ""}`,
      );
    }
    return this.planner.running;
  }

  // The adverts this page heard before it started: direct ones (while connected) and gossiped ones.
  #seed(now) {
    const direct = this.files.holders;
    for (const [id, holders] of direct.byFile) {
      for (const [peerId, chunks] of holders) this.planner.adverts(peerId, [{ id, chunks, keep: direct.keeps(id, peerId) }], now);
    }
    const live = this.files.clock();
    for (const [id, holders] of this.files.advertiser.gossip.heard) {
      for (const [peerId, h] of holders) {
        if (h.expiresAt > live) this.planner.adverts(peerId, [{ id, chunks: h.chunks, keep: h.keep }], h.issuedAt);
      }
    }
  }

  // This page's budget, the manifests of its records and its own adverts.
  #feedSelf(now) {
    this.planner.setSelf(spareOf(this.files.plan));
    const seen = new Set();
    for (const record of this.files.files.values()) {
      if (!record.envelope || !(record.chunkCount > 0)) continue;
      this.planner.manifest(record.id, record.chunkCount, storedSize(record), now);
      const entry = this.files.keeper.advertFor(record, MAX_CHUNKS_PER_MANIFEST);
      if (!entry || !this.planner.knows(record.id)) continue;
      seen.add(record.id);
      this.planner.core.advert(this.peer.peerId, record.id, entry.chunks, entry.keep !== false, now);
    }
    for (const id of this.ownAdverts) if (!seen.has(id) && this.planner.knows(id)) this.planner.core.advert(this.peer.peerId, id, 0, true, now);
    this.ownAdverts = seen;
  }

  #learn(now) {
    const connected = new Set(this.peer.connectedPeers().map((p) => p.peerId));
    for (const [id, holder] of this.planner.toAsk(connected, now)) {
      this.stats.asked += 1;
      if (!this.peer.send(holder, { t: "manifest_req", id })) this.planner.notGiven(id, holder);
    }
  }

  async #fetch(id) {
    this.stats.fetched += 1;
    try {
      const record = await this.files.keepForSwarm(id);
      // Already here (a download, a share, a keyless copy): nothing to fetch.
      if (!record) this.planner.fetchEnded(id, this.files.files.get(id)?.state === "complete", this.clock());
    } catch (error) {
      this.peer.log("warn", "repair", error.code ?? "swarm_copy_failed", `could not start a copy of ${id}: ${error.message}`);
      this.planner.fetchEnded(id, false, this.clock());
    }
  }

  #drop(id, code, why) {
    this.peer.log("info", "repair", code, `repair copy of ${id} dropped: ${why}`);
    this.#remove(id);
  }

  // Remove a keyless record this service started (a partial copy that is of no use now).
  #remove(id) {
    if (!isKeyless(this.files.files.get(id))) return;
    this.dropping.add(id);
    this.files.remove(id).finally(() => this.dropping.delete(id));
  }

  #ended(id, ok) {
    this.planner.fetchEnded(id, ok, this.clock());
    this.step();
  }

  #failed(id) {
    if (!this.planner.fetching.has(id)) return;
    this.stats.failed += 1;
    this.planner.fetchEnded(id, false, this.clock());
    this.#remove(id);
  }

  #removed({ id, role }) {
    if (this.dropping.has(id) || role !== "swarm") return;
    // The person removed a copy kept for the swarm (or it became their own): not fetched
    // again, also after a reload (kept with the settings).
    this.planner.decline(id);
    this.#saveDeclined().catch((error) => this.peer.log("warn", "repair", "settings_failed", `could not save the removed copies: ${error.message}`));
  }

  async #loadDeclined() {
    const settings = (await this.peer.store?.getSettings?.()) ?? {};
    const ids = settings[DECLINED_SETTING];
    if (!Array.isArray(ids)) return;
    for (const id of ids.slice(-MAX_DECLINED)) if (isDigestId(id)) this.planner.decline(id);
  }

  async #saveDeclined() {
    const store = this.peer.store;
    if (!store) return;
    await store.putSettings({ ...(await store.getSettings()), [DECLINED_SETTING]: [...this.planner.declined] });
  }

  #publish(data) {
    if (typeof this.peer.publish !== "function" || this.peer.connectedPeers().length === 0) return;
    this.stats.announced += 1;
    this.peer.publish(TOPIC_REPAIR, data).catch(() => {});
  }

  #caps(peerId, caps) {
    // A super-peer's backfill_at is believed (its hello capability says what it is).
    if (!caps.includes(CAP_SUPERPEER) || this.superpeers.has(peerId)) return;
    if (this.superpeers.size >= MAX_SUPERPEERS) this.superpeers.delete(this.superpeers.values().next().value);
    this.superpeers.add(peerId);
  }

  #onFrame({ peerId, frame }) {
    if (!this.planner.running) return;
    if (frame.t === "have") this.planner.adverts(peerId, frame.manifests, this.clock());
    else if (frame.t === "manifest" && this.planner.awaits(frame.id, peerId)) this.#manifest(peerId, frame);
  }

  async #manifest(peerId, frame) {
    const now = this.clock();
    if (frame.manifest === null) {
      this.planner.notGiven(frame.id, peerId);
      return;
    }
    try {
      // Signed by its author and naming its own id: checkable without the file's key.
      const manifest = await verifyManifest(frame.manifest, { now, expectedId: frame.id });
      const chunkCount = manifest.chunks.length;
      this.planner.manifest(frame.id, chunkCount, storedSize({ size: manifest.size, chunkCount }), now);
    } catch (error) {
      this.planner.notGiven(frame.id, peerId);
      this.peer.log("warn", "repair", error.code ?? "bad_manifest", `manifest ${frame.id} from ${peerId}: ${error.message}`, peerId);
    }
  }

  #onMessage(message) {
    if (!this.planner.running || message?.origin === this.peer.peerId) return;
    const now = this.clock();
    try {
      if (message.topic === TOPIC_HAVE) this.planner.adverts(message.origin, checkHaveGossip(message.data), Math.min(message.issuedAt, now));
      else if (message.topic === TOPIC_REPAIR)
        this.planner.announcement(message.origin, message.data, message.issuedAt, now, this.superpeers.has(message.origin));
    } catch (error) {
      this.peer.log("warn", "repair", error.code ?? "bad_body", `${message.topic} gossip from ${message.origin}: ${error.message}`);
    }
  }
}
