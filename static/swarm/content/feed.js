// The community feed in the page: binds PostSync (sync.js, pure) to window.swarm (sync
// frames, gossip on topic "post"), to the store (every stored entry) and to diagnostics
// (rejected entries, forks). Posting, editing and deleting sign new entries of our own log.
import { verifyPost } from "../protocol/posts.js";
import { POST_TOPIC, PostSync } from "./sync.js";

const NAME_SETTING = "postName";

export class PostService extends EventTarget {
  constructor({ peer, store, clock = Date.now }) {
    super();
    this.peer = peer;
    this.store = store;
    this.clock = clock;
    this.sync = new PostSync({ selfId: peer.peerId });
    this.name = "";
    this.inbox = Promise.resolve(); // frames and gossip handled in arrival order
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
      if (action.type === "send") this.peer.send(action.peerId, action.frame);
      else if (action.type === "stored") {
        changed = true;
        this.store.putPost(action.entry).catch((error) => this.peer.log("warn", "posts", error.code ?? "store_failed", error.message));
      } else if (action.type === "publish") {
        this.peer.publish(POST_TOPIC, action.entry.envelope);
      } else if (action.type === "rejected") {
        this.peer.log("warn", "posts", action.code, `entry from ${action.peerId} rejected: ${action.message}`, action.peerId);
        if (action.violation) this.peer.contentViolation(action.peerId, action.code, action.message);
      } else if (action.type === "fork") {
        const { author, seq } = action.fork;
        this.peer.log("warn", "posts", "fork", `${author} signed two entries at seq ${seq}; the first seen is kept`, action.peerId);
      }
    }
    if (changed) this.dispatchEvent(new Event("change"));
  }

  posts() {
    return this.sync.posts();
  }

  async setName(name) {
    this.name = name;
    const settings = await this.peer.store.getSettings();
    await this.peer.store.putSettings({ ...settings, [NAME_SETTING]: name });
  }

  async #publish(fields) {
    const entry = await this.sync.publish(this.peer.identity.signer, { name: this.name, ...fields }, this.clock());
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
