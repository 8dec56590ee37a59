// What this page says it holds (docs/protocol.md "Files", docs/replication.md "Browser"):
// `have` frames to each connected peer (all of it when a peer connects, then what changed,
// coalesced over ADVERT_EVERY_MS), and the same by gossip on topic `have` (HaveGossip,
// protocol/have_gossip.js) for the peers it is not connected to; it also keeps the holders
// others gossip. What is held comes from `holdings(ids)`, the file service's records.
import { checkHaveGossip, HaveGossip, TOPIC_HAVE } from "../protocol/have_gossip.js";
import { MAX_HAVE_MANIFESTS } from "../protocol/wire.js";

const ADVERT_EVERY_MS = 1_000;
const GOSSIP_TICK_MS = 5_000; // how often the `have` gossip looks whether a publish is due

export class Advertiser {
  /**
   * `peer`: window.swarm (send, connectedPeers, publish, node.gossipChecks, "message"
   * events); `holdings(ids)`: the `have` entries of the files in `ids` (a Set; null: all);
   * `log(level, code, message)`.
   */
  constructor({ peer, clock, holdings, log }) {
    this.peer = peer;
    this.clock = clock;
    this.holdings = holdings;
    this.log = log;
    this.dirty = new Set(); // manifests whose advert changed since the last one
    this.timer = null;
    this.gossip = new HaveGossip({
      selfId: peer.peerId ?? null,
      holdings: () => this.holdings(null),
      publish: (topic, data) => this.peer.publish(topic, data),
    });
  }

  start() {
    this.peer.node?.gossipChecks.set(TOPIC_HAVE, (data) => void checkHaveGossip(data));
    this.peer.addEventListener("message", (e) => this.#onGossip(e.detail));
    if (typeof this.peer.publish === "function") {
      this.gossipTimer = setInterval(() => this.#gossipTick(), GOSSIP_TICK_MS);
      /** @type {any} */ (this.gossipTimer).unref?.(); // (node tests) never keeps the process alive
    }
  }

  /** Holders of manifest `id` heard by gossip and not expired: Map(peer id -> {chunks, keep, expiresAt}). */
  gossipHolders(id) {
    return this.gossip.holders(id, this.clock());
  }

  /** The advert of `id` changed: sent at once (`now`) or with the next batch. */
  changed(id, { now = false } = {}) {
    this.dirty.add(id);
    if (now) this.advertise();
    else this.timer ??= setTimeout(() => this.advertise(), ADVERT_EVERY_MS);
  }

  /** The adverts of `ids` changed: sent with the next advertise(). */
  mark(ids) {
    for (const id of ids) this.dirty.add(id);
  }

  /** Send what changed since the last advert. */
  advertise() {
    clearTimeout(this.timer);
    this.timer = null;
    const ids = this.dirty;
    this.dirty = new Set();
    this.#broadcast(this.holdings(ids));
  }

  /** We hold nothing of `id` any more (deleted): say so at once. */
  withdraw(id) {
    this.dirty.delete(id);
    this.#broadcast([{ id, chunks: 0 }]);
  }

  peerOpened(peerId) {
    this.#sendHave(peerId, this.holdings(null));
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
    // The page config can turn the flooded adverts off (have_gossip: false; docs/configuration.md).
    if (typeof this.peer.publish !== "function" || this.peer.config?.haveGossip === false) return;
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
}
