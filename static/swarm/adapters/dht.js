// The DHT in the page (docs/protocol.md "DHT", "In the page"): runs the sans-IO Dht core
// (protocol/dht.js) over the page's connections with a real clock, and puts it to use.
//
// - Frames: the node hands dht_* frames up as "frame" events; they go to the core in order per
//   peer. The core's sends go on the open connection to that peer; a request for a peer the
//   page is not connected to waits here (DhtCourier, adapters/dht_courier.js) while the page
//   dials it (SwarmPeer.dial: the signaling server, or the mesh when the server is out of
//   reach) and goes out once the connection opens; a dial that fails is the core's `unreachable`. Connections dialed only
//   for the DHT are closed again when idle, unless the mesh needs them or they carry other traffic.
// - Contacts: every connection whose hello lists `dht` is `seen` with its verified ticket; the
//   first one starts a lookup of this page's own id (Kademlia's join: bootstrap from any one
//   peer), whose contacts also go to the peer book as live tickets (the mesh can dial them
//   when beacons and capsules are gone).
// - Publishing: every new presence ticket of the page is its peer record (setTicket); every
//   file the page holds (the `have` entries of the file service) is provided (provider
//   records, republished by the core every 15 min), at most MAX_PROVIDED of them.
// - Uses: findPeer (SwarmPeer.connectTo falls back to it for a peer it knows no ticket of),
//   and downloads that find no holder among the connected peers ask for providers and dial them.
import { CAP_DHT, Dht } from "../protocol/dht.js";
import { ERRAND_CONTENT, ERRAND_DHT } from "../protocol/errand.js";
import { UNEXPECTED_FRAME } from "../protocol/errors.js";
import { PEER_UNAVAILABLE } from "../protocol/mesh.js";
import { verifyTicket } from "../protocol/ticket.js";
import { DhtCourier } from "./dht_courier.js";

export const MAX_PROVIDED = 64; // the per-publisher bound of every node's store (DHT_LIMITS.maxPerPublisher)
const SYNC_MS = 5_000; // provider records and downloads are looked at this often
const TICK_MAX_MS = 1_000;
const GONE_MAX = 4096; // peers remembered as gone (oldest forgotten first)
const IN_USE_BYTES = 64 * 1024; // traffic over an idle period that keeps a DHT-dialed connection open
const JOIN_DELAY_MS = 500; // after the first contact: the join lookup and the peer record
const PROVIDER_RETRY_MS = 20_000; // a download still without holders asks the DHT again after this
const MAX_PROVIDER_DIALS = 4; // providers of one file dialed per lookup
// One provider record stored per sync at most: each store reaches the same few closest nodes,
// which take one dht_store per second from a peer (bursts of 10) and count more as a violation.
const PROVIDE_AT_ONCE = 1;

/** A contact ticket's issued_at (0 when it has none). */
const issuedAtOf = (ticket) => (Number.isInteger(ticket?.body?.issued_at) ? ticket.body.issued_at : 0);

/**
 * Which manifests to provide, from the file service's `have` entries ({id, chunks}): those
 * with chunks, most chunks first (then by id), at most `max`. Returns Map(id -> chunks).
 */
export function providedSet(entries, max = MAX_PROVIDED) {
  const held = entries.filter((e) => e.chunks > 0);
  held.sort((a, b) => b.chunks - a.chunks || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return new Map(held.slice(0, max).map((e) => [e.id, e.chunks]));
}

export class PageDht extends EventTarget {
  /** `peer`: the SwarmPeer (before connect); `files`: the FileService (what is held, the downloads). */
  constructor({ peer, files = null, clock = Date.now, courier = {} }) {
    super();
    this.peer = peer;
    this.files = files;
    this.clock = clock;
    this.courier = new DhtCourier(courier);
    this.inbox = new Map(); // peer id -> promise of its frames in order
    this.waiters = new Map(); // lookup id -> resolve
    this.early = new Map(); // lookup id -> done, finished before its waiter was registered
    this.provided = new Map(); // manifest -> chunks provided (a store that reached someone)
    this.providing = new Set();
    this.asked = new Map(); // manifest -> when its providers were last looked up
    this.joined = false;
    this.lateAnswers = 0; // answers to no request (mostly after their request timed out)
    this.moved = new Map(); // peer id -> bytes its connections had moved at the last idle look
    this.lookups = []; // the last lookups, newest last: {kind, ok, code, hops, messages, found}
    // peer id -> issuedAt of the newest ticket of it known when signaling answered that it is
    // not there: not dialed again until a newer ticket of it (or its connection) comes, as the
    // peer book does; the same for a ticket the book knows stale (the super-peer's DHT too).
    this.gone = new Map();
    this.dialed = new Map(); // peer id -> issuedAt of the contact being dialed
    this.goneSkipped = 0;
    this.timer = null;
  }

  async start() {
    const peer = this.peer;
    const now = this.clock();
    this.core = await Dht.create({ peerId: peer.peerId, community: peer.community, signer: peer.identity.signer, ticket: peer.node.mesh.ticket, now });
    peer.addEventListener("frame", (e) => {
      const { peerId, frame } = /** @type {CustomEvent} */ (e).detail;
      if (typeof frame?.t === "string" && frame.t.startsWith("dht_")) this.#receive(peerId, frame);
    });
    peer.addEventListener("peer-open", (e) => this.#opened(/** @type {CustomEvent} */ (e).detail));
    peer.addEventListener("peer-close", (e) => {
      const { peerId, reason } = /** @type {CustomEvent} */ (e).detail;
      this.courier.closed(peerId);
      // It said it is leaving: out of the table, so that no answer names it to others (who
      // would each dial it), and its ticket is not dialed again.
      if (reason === "bye_leaving") this.#markGone(peerId, 0);
    });
    peer.addEventListener("dial-failed", (e) => {
      const { peerId, reason } = /** @type {CustomEvent} */ (e).detail;
      const dialed = this.dialed.get(peerId) ?? 0;
      this.dialed.delete(peerId);
      if (reason === PEER_UNAVAILABLE) this.#markGone(peerId, dialed);
      this.#unreachable(peerId);
    });
    peer.addEventListener("ticket", (e) => this.#ticket(/** @type {CustomEvent} */ (e).detail));
    this.syncTimer = setInterval(() => this.#sync(), SYNC_MS);
    this.#wake();
    return this;
  }

  /** Contacts, records, lookups: what the Peers card and tests read. */
  summary() {
    const memory = this.core.memory();
    return {
      contacts: memory.contacts,
      records: memory.records,
      provided: this.provided.size,
      lookups: this.lookups.slice(-10),
      stats: { ...this.core.stats },
    };
  }

  /** Look up `peerId`'s presence ticket; resolves {ok, code, ticket, hops, messages}. */
  async findPeer(peerId) {
    const id = await this.core.findPeer(peerId, this.clock());
    const done = await this.#await(id);
    return { ok: done.ok, code: done.code, ticket: done.records[0]?.envelope ?? null, hops: done.hops, messages: done.messages };
  }

  /** Look up who provides `manifest`; resolves {ok, code, providers: [{peerId, chunks}], hops, messages}. */
  async findProviders(manifest) {
    const id = await this.core.findProviders(manifest, this.clock());
    const done = await this.#await(id);
    const providers = done.records.map((r) => ({ peerId: r.peerId, chunks: r.chunks }));
    return { ok: done.ok, code: done.code, providers, hops: done.hops, messages: done.messages };
  }

  #await(id) {
    const promise = new Promise((resolve) => this.waiters.set(id, resolve));
    const early = this.early.get(id);
    if (early) {
      this.early.delete(id);
      this.#done(early);
    }
    this.#flush();
    return promise;
  }

  // --- inputs ---

  #receive(peerId, frame) {
    const prior = this.inbox.get(peerId) ?? Promise.resolve();
    const next = prior
      .then(() => this.core.receive(peerId, frame, this.clock()))
      .then(() => this.#flush())
      .catch((error) => this.peer.log("error", "dht", "internal_error", String(error?.stack ?? error), peerId));
    this.inbox.set(peerId, next);
    next.then(() => {
      if (this.inbox.get(peerId) === next) this.inbox.delete(peerId);
    });
  }

  async #opened({ peerId, caps }) {
    const now = this.clock();
    this.gone.delete(peerId);
    this.dialed.delete(peerId);
    for (const frame of this.courier.opened(peerId, now)) this.peer.send(peerId, frame);
    if (!caps?.includes(CAP_DHT)) return;
    const conn = this.peer.node.mesh.open().find((c) => c.peerId === peerId);
    const ticket = conn?.ticket?.envelope;
    if (!ticket) return;
    await this.core.seen(ticket, now);
    this.#flush();
    if (!this.joined) {
      this.joined = true;
      setTimeout(() => this.#join(), JOIN_DELAY_MS);
    }
  }

  // Kademlia's join from whatever peer came first: a lookup of this page's own id fills the
  // table (those who answer enter it), its contacts go to the peer book, and the peer record
  // is stored at the closest nodes.
  async #join() {
    try {
      const id = await this.core.findNode(this.core.id, this.clock());
      this.#await(id).then((done) => this.#learn(done.contacts));
      await this.core.setTicket(this.peer.node.mesh.ticket, this.clock());
      this.#flush();
      this.peer.log("info", "dht", "dht_joined", `DHT joined with ${this.core.table.size} contact(s)`);
      this.#sync();
    } catch (error) {
      this.peer.log("warn", "dht", error?.code ?? "error", String(error?.message ?? error));
    }
  }

  // Contacts from a lookup: live tickets into the peer book (candidates for the mesh).
  async #learn(tickets) {
    const now = this.clock();
    const live = [];
    for (const envelope of tickets) {
      try {
        live.push(await verifyTicket(envelope, { now, community: this.peer.community }));
      } catch {
        // a contact whose ticket is no longer live as presence: not a dial candidate
      }
    }
    if (live.length) this.peer.node.addCandidates(live, "dht", now);
  }

  async #ticket(envelope) {
    if (!this.core || !this.joined) {
      if (this.core) this.core.ticket = envelope; // sent in frames from now on
      return;
    }
    await this.core.setTicket(envelope, this.clock());
    this.#flush();
  }

  #unreachable(peerId) {
    if (!this.courier.failed(peerId)) return;
    this.core.unreachable(peerId, this.clock());
    this.#flush();
  }

  // --- outputs ---

  #flush() {
    for (let actions = this.core.takeActions(); actions.length > 0; actions = this.core.takeActions()) {
      for (const action of actions) {
        if (action.type === "send") this.#send(action);
        else if (action.type === "done") this.#done(action);
        else if (action.type === "drop") this.#drop(action);
      }
    }
  }

  #markGone(peerId, issuedAt) {
    const known = this.core?.table.get(peerId);
    let at = issuedAt;
    if (known) {
      at = Math.max(at, known.issuedAt);
      this.core.table.remove(peerId); // a spare takes its place
    }
    at = Math.max(at, this.gone.get(peerId) ?? 0);
    this.gone.delete(peerId);
    this.gone.set(peerId, at);
    while (this.gone.size > GONE_MAX) this.gone.delete(this.gone.keys().next().value);
  }

  /** True when `ticket` is no newer than the one signaling said was not there (here or in the peer book). */
  isGone(peerId, ticket) {
    const issuedAt = issuedAtOf(ticket);
    const at = this.gone.get(peerId);
    if (at !== undefined && issuedAt <= at) return true;
    return this.peer.node.book?.staleSince?.(peerId, issuedAt) ?? false;
  }

  #send({ peerId, ticket, frame }) {
    const now = this.clock();
    const connected = this.peer.node.mesh.open().some((c) => c.peerId === peerId);
    if (!connected && ticket !== null && this.isGone(peerId, ticket)) {
      // Not dialed: its request fails now and the lookup asks the next contact.
      this.goneSkipped += 1;
      this.core.unreachable(peerId, now);
      return;
    }
    const how = this.courier.route(peerId, frame, { connected, answer: ticket === null, now });
    if (how === "send") {
      if (!this.peer.send(peerId, frame) && this.courier.failed(peerId)) this.core.unreachable(peerId, now);
      return;
    }
    if (how === "dial" || how === "queued") this.dialed.set(peerId, Math.max(this.dialed.get(peerId) ?? 0, issuedAtOf(ticket)));
    if (how === "dial") this.#dial(peerId);
  }

  #dial(peerId) {
    if (!this.peer.dial(peerId, { errand: ERRAND_DHT })) queueMicrotask(() => this.#unreachable(peerId));
  }

  #done(action) {
    const resolve = this.waiters.get(action.lookup);
    if (action.kind !== "node" || !action.ok) {
      const found = action.records.length;
      this.lookups.push({ kind: action.kind, ok: action.ok, code: action.code, hops: action.hops, messages: action.messages, found });
      if (this.lookups.length > 50) this.lookups.shift();
    }
    if (!resolve) {
      this.early.set(action.lookup, action);
      if (this.early.size > 64) this.early.delete(this.early.keys().next().value);
      return;
    }
    this.waiters.delete(action.lookup);
    resolve(action);
  }

  // A violation counts against the connection like a bad frame, except an answer to no request:
  // on a slow machine or network that is mostly an honest answer that came after the request
  // timed out (5 s, dialing included), and the node's frame limits bound the rest.
  #drop({ code, violation, peerId, reason }) {
    if (!violation || !peerId) return;
    if (code === UNEXPECTED_FRAME) {
      this.lateAnswers += 1;
      return;
    }
    this.peer.log("warn", "dht", code, reason, peerId);
    this.peer.contentViolation(peerId, code, `dht: ${reason}`);
  }

  // --- time ---

  #wake() {
    clearTimeout(this.timer);
    if (this.destroyed) return;
    const now = this.clock();
    this.core
      .tick(now)
      .then(() => {
        const { expired, dial } = this.courier.sweep(now);
        for (const peerId of expired) {
          this.dialed.delete(peerId);
          this.core.unreachable(peerId, now);
        }
        for (const peerId of dial) this.#dial(peerId);
        this.#flush();
        this.#closeIdle(now);
      })
      .catch((error) => this.peer.log("error", "dht", "internal_error", String(error?.stack ?? error)))
      .finally(() => {
        const at = Math.min(this.core.nextDeadline(this.clock()), this.clock() + TICK_MAX_MS);
        this.timer = setTimeout(() => this.#wake(), Math.max(10, at - this.clock()));
      });
  }

  // Connections dialed for the DHT go again once idle, unless the mesh needs them or they
  // came to carry other traffic (more than IN_USE_BYTES since the last look: chunks for a
  // download or a super-peer's pin; pings alone stay far below it). Closing those cut pins
  // (the full browser suite's super-peer kill test).
  #closeIdle(now) {
    const mesh = this.peer.node.mesh;
    for (const peerId of this.courier.idle(now)) {
      const moved = mesh
        .open()
        .filter((c) => c.peerId === peerId)
        .reduce((n, c) => n + c.bytesIn + c.bytesOut, 0);
      const before = this.moved.get(peerId) ?? 0;
      this.moved.set(peerId, moved);
      if (moved - before > IN_USE_BYTES) {
        this.courier.ours.set(peerId, now); // in use: looked at again after another idleMs
        continue;
      }
      this.courier.closed(peerId);
      this.moved.delete(peerId);
      if (mesh.open().length > mesh.options.target) this.peer.disconnect(peerId, "dht_idle");
    }
  }

  // What the page holds is provided; downloads without a holder ask for providers.
  async #sync() {
    if (!this.joined || this.destroyed || !this.files) return;
    try {
      await this.#provideHeld();
      await this.#findHolders();
    } catch (error) {
      this.peer.log("warn", "dht", error?.code ?? "error", String(error?.message ?? error));
    }
  }

  async #provideHeld() {
    const want = providedSet(this.files.advertiser.holdings(null));
    for (const manifest of [...this.provided.keys()]) {
      if (!want.has(manifest)) {
        this.core.unprovide(manifest);
        this.provided.delete(manifest);
      }
    }
    let started = 0;
    for (const [manifest, chunks] of want) {
      if (this.provided.get(manifest) === chunks || this.providing.has(manifest)) continue;
      if (this.providing.size >= PROVIDE_AT_ONCE || started >= PROVIDE_AT_ONCE) break;
      started += 1;
      this.providing.add(manifest);
      const id = await this.core.provide(manifest, chunks, this.clock());
      this.#await(id).then((done) => {
        this.providing.delete(manifest);
        if (done.ok) {
          this.provided.set(manifest, chunks);
          this.peer.log("info", "dht", "dht_provided", `provider record of ${manifest.slice(0, 10)}… stored near its key`);
        } else this.core.unprovide(manifest); // tried again at the next sync
      });
    }
  }

  async #findHolders() {
    const now = this.clock();
    for (const [manifest, download] of this.files.downloads.active) {
      if ((this.files.holders.get(manifest)?.size ?? 0) > 0) continue;
      const progress = download.progress();
      if (progress && progress.sources.length > 0 && !progress.waiting) continue;
      if (now - (this.asked.get(manifest) ?? 0) < PROVIDER_RETRY_MS) continue;
      this.asked.set(manifest, now);
      this.findProviders(manifest).then((found) => this.#dialProviders(manifest, found));
    }
  }

  #dialProviders(manifest, found) {
    const others = found.providers.filter((p) => p.peerId !== this.peer.peerId).sort((a, b) => b.chunks - a.chunks);
    this.peer.log(
      "info",
      "dht",
      found.ok ? "dht_providers" : "dht_no_providers",
      found.ok
        ? `${others.length} provider(s) of ${manifest.slice(0, 10)}… found in ${found.hops} hop(s)`
        : `no provider of ${manifest.slice(0, 10)}… (${found.code})`,
    );
    for (const p of others.slice(0, MAX_PROVIDER_DIALS)) {
      if (this.peer.node.mesh.open().some((c) => c.peerId === p.peerId)) continue;
      this.peer.dial(p.peerId, { errand: ERRAND_CONTENT, manifest });
    }
  }

  destroy() {
    this.destroyed = true;
    clearTimeout(this.timer);
    clearInterval(this.syncTimer);
  }
}
