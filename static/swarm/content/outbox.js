// The outbox in the page (docs/outbox.md): binds the core (outbox_core.js)
// to storage, to the feed (our post entries and which peers have them) and to mail (file keys
// wrapped for named peers, sent until the recipient acknowledges). Items survive reloads and
// crashes of the tab; what was being sent when the tab went away is sent again with the same
// id and bytes, so nobody gets it twice.
import { PEER_ID_RE } from "../protocol/encoding.js";
import { DELIVERED, KIND_KEY, KIND_POST, Outbox } from "./outbox_core.js";
import { MAIL_LIFETIME_MS, newMailId } from "../protocol/mail.js";

export const TOPIC_WRAPPED_MAIL = "wrapped-key"; // mail topic: {manifest, wrapped}
const KEY_RETRY_MS = 30_000; // asking again for the key of a peer that is away
const CHECK_MS = 5_000; // expiry and due items, besides the events that wake the outbox

function postLabel(entry) {
  if (entry.kind === "delete") return "delete a post";
  const text = entry.text.trim().replace(/\s+/g, " ");
  const short = text.length > 60 ? `${text.slice(0, 59)}…` : text;
  return entry.kind === "edit" ? `edit: ${short}` : short || "post";
}

export class OutboxService extends EventTarget {
  constructor({ peer, store, mail, keys, files, posts, clock = Date.now }) {
    super();
    this.peer = peer;
    this.store = store;
    this.mail = mail;
    this.keys = keys;
    this.files = files;
    this.posts = posts;
    this.clock = clock;
    this.core = new Outbox();
    this.queue = Promise.resolve(); // pumps and saves never overlap
    this.timer = null;
  }

  async start() {
    const loaded = this.core.load(await this.store.loadOutbox());
    if (loaded) this.peer.log("info", "outbox", "outbox_loaded", `${loaded} outbox item(s)`);
    this.mail.on(TOPIC_WRAPPED_MAIL, (from, data) => this.keys.takeWrapped(from, data));
    this.mail.addEventListener("acked", (e) => this.#run(() => this.#acked(e.detail.from, e.detail.ids)));
    this.posts.addEventListener("published", (e) => this.#run(() => this.#published(e.detail.entry, e.detail.reached)));
    this.posts.addEventListener("reached", (e) => this.#run(() => this.#reached(e.detail.peerId, e.detail.hashes)));
    this.keys.addEventListener("key", (e) => this.#wake((item) => item.target === e.detail.peerId));
    this.peer.addEventListener("peer-open", () => this.#wake());
    this.timer = setInterval(() => this.#run(() => this.#pump()), CHECK_MS);
    this.#run(() => this.#pump());
    return this;
  }

  /** Every item, newest first (the #outbox card). */
  items() {
    return this.core.list().reverse();
  }

  get(id) {
    return this.core.get(id);
  }

  /**
   * Send the key of a file we hold to `peerId`, sealed in mail: now if the peer or a
   * super-peer is connected, else when one is. Resolves the outbox item at once.
   */
  shareKey(manifestId, peerId) {
    if (typeof peerId !== "string" || !PEER_ID_RE.test(peerId)) throw Object.assign(new Error("not a peer id"), { code: "bad_peer_id" });
    if (peerId === this.peer.peerId) throw Object.assign(new Error("that is your own peer id"), { code: "bad_peer_id" });
    const record = this.files.files.get(manifestId);
    if (!record?.key || !record.fileId) throw Object.assign(new Error("only a file you hold can be shared"), { code: "not_held" });
    const now = this.clock();
    const { item } = this.core.add(
      {
        id: newMailId(),
        kind: KIND_KEY,
        target: peerId,
        ref: manifestId,
        label: record.name ?? manifestId,
        payload: { manifest: manifestId, envelope: null },
        expiresAt: now + MAIL_LIFETIME_MS,
      },
      now,
    );
    this.#run(() => this.#pump());
    return item;
  }

  /** Send what is due now (also runs every few seconds and whenever a peer or a key arrives). */
  pump() {
    return this.#run(() => this.#pump());
  }

  /** Forget delivered and failed items. */
  clearFinished() {
    return this.#run(async () => {
      for (const item of this.core.list()) this.core.remove(item.id);
    });
  }

  // --- events ---

  #published(entry, reached) {
    if (entry.author !== this.peer.peerId) return;
    const now = this.clock();
    this.core.add({ id: entry.hash, kind: KIND_POST, ref: entry.hash, label: postLabel(entry), expiresAt: Number.MAX_SAFE_INTEGER }, now);
    if (reached.length === 0)
      this.core.waiting(entry.hash, now, "no_peers", "no peer is connected: it goes out on the next connection", Number.MAX_SAFE_INTEGER);
    for (const peerId of reached) this.core.delivered(entry.hash, now, peerId);
  }

  #reached(peerId, hashes) {
    const now = this.clock();
    for (const hash of hashes) {
      const item = this.core.get(hash);
      if (item?.kind === KIND_POST) this.core.delivered(hash, now, peerId);
    }
  }

  #acked(from, ids) {
    const now = this.clock();
    for (const id of ids) {
      const item = this.core.get(id);
      if (item?.kind === KIND_KEY && item.target === from && item.state !== DELIVERED) {
        this.core.delivered(id, now, from);
        this.peer.log("info", "outbox", "delivered", `${item.label}: key delivered to ${from}`, from);
      }
    }
  }

  #wake(filter = undefined) {
    this.#run(() => {
      this.core.wake(this.clock(), filter);
      return this.#pump();
    });
  }

  // --- sending ---

  async #pump() {
    const now = this.clock();
    for (const item of this.core.expire(now)) this.peer.log("warn", "outbox", "expired", `${item.label}: not delivered in time`, item.target);
    for (const item of this.core.due(now)) {
      if (item.kind === KIND_KEY) await this.#sendKey(item);
      else if (item.kind === KIND_POST) this.#postDue(item);
    }
    await this.#save();
    this.#schedule();
  }

  // Our posts go out by gossip and post sync, not from here: an item is due only to say why it waits.
  #postDue(item) {
    const now = this.clock();
    const peers = this.peer.connectedPeers().map((p) => p.peerId);
    // Connected: post sync is sending it; a peer's summary that lists it marks it delivered.
    if (peers.length > 0) this.core.sending(item.id, now, peers);
    else this.core.waiting(item.id, now, "no_peers", "no peer is connected: it goes out on the next connection", Number.MAX_SAFE_INTEGER);
  }

  async #sendKey(item) {
    const now = this.clock();
    const { target } = item;
    if (!item.payload.envelope) {
      const record = this.files.files.get(item.payload.manifest);
      if (!record?.key) {
        this.core.fail(item.id, now, "not_held", "the file is no longer here");
        return;
      }
      if (!this.keys.knows(target)) {
        this.keys.requestKey(target);
        this.core.waiting(item.id, now, "no_key", `waiting for ${target}'s encryption key (it has not been seen online)`, now + KEY_RETRY_MS);
        return;
      }
      const wrapped = await this.keys.wrapFor(item.payload.manifest, target);
      // Kept before it is sent: a send after a crash repeats the same message (same id, same bytes).
      item.payload = {
        ...item.payload,
        envelope: await this.mail.make(target, TOPIC_WRAPPED_MAIL, { manifest: item.payload.manifest, wrapped }, { id: item.id }),
      };
      this.core.changed.add(item.id);
      await this.#save();
    }
    const via = this.mail.send(target, item.payload.envelope);
    if (via.length > 0) this.core.sending(item.id, this.clock(), via);
    else this.core.waiting(item.id, this.clock(), "no_route", "neither the peer nor a super-peer is connected");
  }

  #schedule() {
    clearTimeout(this.wakeTimer);
    const next = this.core.nextDue();
    if (next === null || next === Number.MAX_SAFE_INTEGER) return;
    const delay = Math.max(0, next - this.clock());
    if (delay >= CHECK_MS) return; // the interval will see it
    this.wakeTimer = setTimeout(() => this.#run(() => this.#pump()), delay);
  }

  async #save() {
    const { put, remove } = this.core.takeChanges();
    if (put.length === 0 && remove.length === 0) return;
    await this.store.saveOutbox(put, remove);
    this.dispatchEvent(new Event("change"));
  }

  #run(work) {
    const run = this.queue.then(work).then(() => this.#save());
    this.queue = run.catch((error) => this.peer.log("error", "outbox", error?.code ?? "internal_error", String(error?.stack ?? error)));
    return run;
  }

  destroy() {
    clearInterval(this.timer);
    clearTimeout(this.wakeTimer);
  }
}
