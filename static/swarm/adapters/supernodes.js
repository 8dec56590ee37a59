// Supernodes in the page (docs/protocol.md "Supernodes"): binds SupernodeView to the node's
// gossip (topic `supernode`, checked before delivery and relay), publishes this page's own
// advert when the view says so, and says whether this page is a supernode (#swarm-status
// [data-supernode]). A supernode accepts twice the connections; every page relays signaling
// through the mesh already. The person can opt out (Controls card); it is kept in settings.
import { SupernodeView, TOPIC_SUPERNODE, signAdvert } from "../protocol/supernode.js";

export const OPT_IN_SETTING = "supernodeOptIn";
const TICK_MS = 5_000;
const SUPERNODE_MAX_FACTOR = 2;
const HANDOVER_GAP_MS = 5_000;

export class Supernodes extends EventTarget {
  constructor({ peer, clock = Date.now }) {
    super();
    this.peer = peer;
    this.clock = clock;
    this.optIn = true;
    this.self = false;
    this.startedAt = clock();
    this.baseMax = null;
    this.own = null; // this page's last advert
    this.handedAt = 0;
  }

  /** Before any connection opens (SwarmPeer.beforeConnect): the gossip check must be in place. */
  start(settings = {}) {
    const now = this.clock();
    this.optIn = settings[OPT_IN_SETTING] !== false;
    this.view = new SupernodeView({ community: this.peer.community, now, selfId: this.peer.peerId });
    this.baseMax = this.peer.node.mesh.options.max;
    this.peer.node.gossipChecks.set(TOPIC_SUPERNODE, (data, at) => this.view.accept(data, at));
    this.peer.addEventListener("message", (e) => {
      if (e.detail.topic === TOPIC_SUPERNODE) this.#tick();
    });
    // A newcomer counts this page's advert at once, not at the next republish: it is flooded
    // again when a peer connects (at most every 5 s; the others drop the copy as a replay).
    this.peer.addEventListener("peer-open", () => this.#handOver());
    this.timer = setInterval(() => this.#tick(), TICK_MS);
    return this;
  }

  /** The supernodes of this community as this page sees them, best first. */
  elected() {
    return this.view ? this.view.elected(this.clock()) : [];
  }

  isSupernode(peerId) {
    return this.elected().includes(peerId);
  }

  async setOptIn(optIn) {
    this.optIn = Boolean(optIn);
    const settings = await this.peer.store.getSettings();
    await this.peer.store.putSettings({ ...settings, [OPT_IN_SETTING]: this.optIn });
    await this.#tick();
  }

  // This page's numbers: uptime, upload rate so far, healthy connections, and how many peers
  // it knows to be live (its estimate of the swarm's size).
  #local(now) {
    const open = this.peer.connectedPeers();
    const uptime = Math.floor((now - this.startedAt) / 1000);
    const sent = open.reduce((sum, p) => sum + (p.bytesOut ?? 0), 0);
    const upKbps = uptime > 0 ? Math.floor((sent * 8) / 1000 / uptime) : 0;
    const healthy = open.filter((p) => p.health === "ok").length;
    const swarm = Math.max(1, this.peer.node.book.liveCount(now) + 1);
    return { uptime, upKbps, conns: healthy, swarm, optIn: this.optIn, superpeer: false };
  }

  async #tick() {
    if (!this.view || this.busy) return;
    this.busy = true;
    try {
      const now = this.clock();
      this.view.setLocal(this.#local(now));
      const body = this.view.advertDue(now);
      if (body) {
        const envelope = await signAdvert(this.peer.identity.signer, body);
        await this.view.accept(envelope, now);
        this.own = envelope;
        if (this.peer.connectedPeers().length > 0) await this.peer.publish(TOPIC_SUPERNODE, envelope);
      }
      this.#apply(this.view.isSupernode(this.peer.peerId, this.clock()));
    } catch (error) {
      this.peer.log("warn", "supernode", error?.code ?? "error", String(error?.message ?? error));
    } finally {
      this.busy = false;
    }
  }

  #handOver() {
    const now = this.clock();
    if (!this.own || now - this.handedAt < HANDOVER_GAP_MS || this.own.body.expires_at <= now) return;
    this.handedAt = now;
    this.peer.publish(TOPIC_SUPERNODE, this.own).catch(() => {});
  }

  // Elected: take more connections; unseated: back to the configured maximum.
  #apply(self) {
    if (self === this.self) return;
    this.self = self;
    this.peer.node.mesh.options.max = self ? this.baseMax * SUPERNODE_MAX_FACTOR : this.baseMax;
    this.peer.log(
      "info",
      "supernode",
      self ? "supernode_elected" : "supernode_unseated",
      self ? "this page is a supernode: it takes more connections" : "this page is no longer a supernode",
    );
    this.dispatchEvent(new Event("change"));
  }

  destroy() {
    clearInterval(this.timer);
  }
}
