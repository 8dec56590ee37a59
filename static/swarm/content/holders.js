// Who holds which file, as connected peers said in `have` frames (docs/protocol.md "Files"):
// manifest id -> peer id -> chunks held, and which of those copies are only cached (`keep:
// false`). A peer's entries go when it disconnects. The ids are the peer's to choose, so what
// one peer can make us keep is bounded (as the super-peer's, peers/superpeer/holder.py).
// Holders heard by gossip are advertiser.js's.
export const MAX_ADVERTS_PER_PEER = 4096; // manifests one peer's adverts are kept for

export class Holders {
  constructor() {
    this.byFile = new Map(); // manifest id -> Map(peer id -> chunks advertised)
    this.perPeer = new Map(); // peer id -> manifests it has in `byFile`
    this.cached = new Map(); // manifest id -> Set of peers whose copy is cached (`keep: false`), not kept
  }

  /** Map(peer id -> chunks) of the peers holding manifest `id`, or undefined. */
  get(id) {
    return this.byFile.get(id);
  }

  /** How many manifests have a holder. */
  get size() {
    return this.byFile.size;
  }

  /** Whether `peerId` said its copy of `id` is kept (a replica), not only cached. */
  keeps(id, peerId) {
    return !this.cached.get(id)?.has(peerId);
  }

  /** `peerId` holds `chunks` chunks of `id` (0: none any more), kept or only cached (`keep` false). */
  advert(peerId, id, chunks, keep = true) {
    const holders = this.byFile.get(id) ?? new Map();
    const kept = this.perPeer.get(peerId) ?? 0;
    if (chunks > 0 && !holders.has(peerId)) {
      if (kept >= MAX_ADVERTS_PER_PEER) return;
      this.perPeer.set(peerId, kept + 1);
    } else if (chunks === 0 && holders.has(peerId)) {
      this.perPeer.set(peerId, kept - 1);
    }
    if (chunks > 0) holders.set(peerId, chunks);
    else holders.delete(peerId);
    const cached = this.cached.get(id);
    if (chunks > 0 && !keep) this.cached.set(id, (cached ?? new Set()).add(peerId));
    else if (cached?.delete(peerId) && cached.size === 0) this.cached.delete(id);
    if (holders.size) this.byFile.set(id, holders);
    else this.byFile.delete(id);
  }

  /** The peers that advertised all `count` chunks of `id`. */
  complete(id, count) {
    return [...(this.byFile.get(id) ?? [])].filter(([, n]) => n >= count).map(([peerId]) => peerId);
  }

  peerClosed(peerId) {
    for (const [id, holders] of this.byFile) {
      holders.delete(peerId);
      if (holders.size === 0) this.byFile.delete(id);
      const cached = this.cached.get(id);
      if (cached?.delete(peerId) && cached.size === 0) this.cached.delete(id);
    }
    this.perPeer.delete(peerId);
  }
}
