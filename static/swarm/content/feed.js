// The community feed in the page: binds PostSync (sync.js, pure) to window.swarm (sync
// frames, gossip on topic "post"), to the store (every stored entry) and to diagnostics
// (rejected entries, forks). Posting, editing and deleting sign new entries of our own log.
import { verifyPost } from "../protocol/posts.js";
import { POST_TOPIC, PostSync } from "./sync.js";

const NAME_SETTING = "postName";
const MAX_FORKS_SHOWN = 20;

export class PostService extends EventTarget {
  constructor({ peer, store, clock = Date.now }) {
    super();
    this.peer = peer;
    this.store = store;
    this.clock = clock;
    this.sync = new PostSync({ selfId: peer.peerId });
    this.name = "";
    this.inbox = Promise.resolve(); // frames and gossip handled in arrival order
    this.forks = []; // forks seen this session, newest first: { author, seq, at, otherText }
  }

  async start(settings = {}) {
    this.name = typeof settings[NAME_SETTING] === "string" ? settings[NAME_SETTING] : "";
    const loaded = this.sync.load(await this.store.loadPosts());
    if (loaded) this.peer.log("info", "posts", "posts_loaded", `${loaded} stored entr${loaded === 1 ? "y" : "ies"}`);
    // Checked before the node delivers or relays it: a forged post goes no further than us.
    this.peer.node.gossipChecks.set(POST_TOPIC, (data, now) => verifyPost(data, { now }));
    this.peer.addEventListener("peer-open", (e) => {
      this.sync.peerOpened(e.detail.peerId, e.detail.caps, this.clock());
      this.#flush();
    });
    this.peer.addEventListener("peer-close", (e) => this.sync.peerClosed(e.detail.peerId));
    this.peer.addEventListener("frame", (e) => {
      const { peerId, frame } = e.detail;
      if (frame.t === "sync_summary") this.#summaryOf(peerId, frame);
      if (frame.t === "sync_summary" || frame.t === "sync_entries") this.#queue(() => this.sync.receiveFrame(peerId, frame, this.clock()));
    });
    this.peer.addEventListener("message", (e) => {
      if (e.detail.topic === POST_TOPIC) this.#queue(() => this.sync.receiveGossip(e.detail.from, e.detail.data, this.clock()));
    });
    for (const p of this.peer.connectedPeers()) this.sync.peerOpened(p.peerId, p.caps, this.clock());
    this.#flush();
    return this;
  }

  #queue(work) {
    this.inbox = this.inbox
      .then(work)
      .then(() => this.#flush())
      .catch((error) => this.peer.log("error", "posts", "internal_error", String(error?.stack ?? error)));
  }

  #flush() {
    let changed = false;
    for (const action of this.sync.takeActions()) {
      if (action.type === "send") {
        if (this.peer.send(action.peerId, action.frame) && action.frame.t === "sync_entries") this.#sentEntries(action.peerId, action.frame.entries);
      } else if (action.type === "stored") {
        changed = true;
        this.store.putPost(action.entry).catch((error) => this.peer.log("warn", "posts", error.code ?? "store_failed", error.message));
      } else if (action.type === "publish") {
        this.peer.publish(POST_TOPIC, action.entry.envelope);
        // Gossip goes to every open connection that takes it (the outbox counts them).
        const reached = this.peer
          .connectedPeers()
          .filter((p) => p.caps?.includes("gossip"))
          .map((p) => p.peerId);
        this.dispatchEvent(new CustomEvent("published", { detail: { entry: action.entry, reached } }));
      } else if (action.type === "rejected") {
        this.peer.log("warn", "posts", action.code, `entry from ${action.peerId} rejected: ${action.message}`, action.peerId);
        if (action.violation) this.peer.contentViolation(action.peerId, action.code, action.message);
      } else if (action.type === "fork") {
        const { author, seq, evidence } = action.fork;
        this.peer.log("warn", "posts", "fork", `${author} signed two entries at seq ${seq}; the first seen is kept`, action.peerId);
        // Shown in the feed with what the branch not followed said (its signed entry, when we have it).
        const other = evidence?.[1]?.body;
        this.forks = [{ author, seq, at: this.clock(), otherText: typeof other?.text === "string" ? other.text : null }, ...this.forks].slice(
          0,
          MAX_FORKS_SHOWN,
        );
        changed = true;
      }
    }
    if (changed) this.dispatchEvent(new Event("change"));
  }

  posts() {
    return this.sync.posts();
  }

  // --- which peers have our entries (the outbox shows it) ---

  #reached(peerId, hashes) {
    if (hashes.length > 0) this.dispatchEvent(new CustomEvent("reached", { detail: { peerId, hashes } }));
  }

  // A peer's summary names the head of our log it holds: it has every entry up to there.
  #summaryOf(peerId, frame) {
    const head = Array.isArray(frame.heads) ? frame.heads.find((h) => h?.author === this.peer.peerId) : null;
    const log = head ? this.sync.logs.get(this.peer.peerId) : null;
    if (!log || log.entryAt(head.seq)?.hash !== head.hash) return;
    this.#reached(
      peerId,
      log.entries.filter((e) => e.seq <= head.seq).map((e) => e.hash),
    );
  }

  // Entries handed to a peer's open connection by post sync.
  #sentEntries(peerId, envelopes) {
    const log = this.sync.logs.get(this.peer.peerId);
    if (!log) return;
    const sent = new Set(envelopes);
    this.#reached(
      peerId,
      log.entries.filter((e) => sent.has(e.envelope)).map((e) => e.hash),
    );
  }

  async setName(name) {
    this.name = name;
    const settings = await this.peer.store.getSettings();
    await this.peer.store.putSettings({ ...settings, [NAME_SETTING]: name });
  }

  // Tabs of this browser share the identity and the stored log: each signs its next entry
  // under one lock, after reading what the others stored, so two tabs never sign two entries
  // with the same seq (a fork). Devices apart can still fork; the log rules decide then.
  async #publish(fields) {
    const sign = async () => {
      const log = this.sync.logs.get(this.peer.peerId);
      const newer = await this.store.loadPostsOf(this.peer.peerId, log?.length ?? 0);
      if (newer.length > 0 && this.sync.load(newer) > 0) this.dispatchEvent(new Event("change"));
      const entry = await this.sync.publish(this.peer.identity.signer, { name: this.name, ...fields }, this.clock());
      await this.store.putPost(entry);
      return entry;
    };
    const locks = globalThis.navigator?.locks;
    const entry = locks ? await locks.request(`swarm-postlog-${this.peer.peerId}`, sign) : await sign();
    this.#flush();
    return entry;
  }

  /** Write a post (text and/or attached manifest ids); resolves the signed entry. */
  post(text, attachments = []) {
    return this.#publish({ text, attachments });
  }

  edit(id, text, attachments) {
    const original = this.sync.postEntry(id);
    const current = this.posts().find((p) => p.id === id);
    return this.#publish({ kind: "edit", target: id, text, attachments: attachments ?? current?.attachments ?? original?.attachments ?? [] });
  }

  remove(id) {
    return this.#publish({ kind: "delete", target: id, text: "", attachments: [], name: "" });
  }
}
