// Replica adverts by gossip (docs/protocol.md "Gossip topics", docs/replication.md "Browser"):
// a browser publishes what it holds as gossip topic `have`, so peers it is not connected to
// (the super-peers among them) learn it too. The holder is the gossip's signing origin.
// Pure: the caller passes `now` and a `publish(topic, data)`; content/advertiser.js drives it.
import { BAD_BODY, ProtocolError } from "./errors.js";
import { checkHoldings, MAX_CHUNKS_PER_MANIFEST, MAX_HAVE_MANIFESTS } from "./wire.js";

export const TOPIC_HAVE = "have";
export const HAVE_GOSSIP_EVERY_MS = 4 * 60_000; // the full list again (gossip lives 10 minutes)
export const HAVE_GOSSIP_MIN_GAP_MS = 30_000; // changes are coalesced: one publish per 30 s at most
export const GOSSIP_HOLDING_TTL_MS = 10 * 60_000; // a gossiped holding not heard again is forgotten
export const MAX_GOSSIP_ADVERTS_PER_HOLDER = 4096; // as for direct adverts (content/holders.js)
export const MAX_GOSSIP_ADVERTS = 65_536; // across holders: throwaway keys must not fill the memory

/**
 * Check the `data` of a `have` gossip: exactly `{manifests: [{id, chunks, keep?}]}` with the
 * `have` frame's entry shape and limits. Returns the entries; throws ProtocolError(bad_body).
 */
export function checkHaveGossip(data) {
  if (data === null || typeof data !== "object" || Array.isArray(data) || Object.keys(data).join() !== "manifests") {
    throw new ProtocolError(BAD_BODY, "have gossip is {manifests}");
  }
  try {
    return checkHoldings(data.manifests, "have.manifests");
  } catch (error) {
    throw new ProtocolError(BAD_BODY, error.message);
  }
}

export class HaveGossip {
  /**
   * `holdings()`: what we advertise now ([{id, chunks, keep?}], as the direct `have`);
   * `publish(topic, data)`: sign and flood (may return a promise).
   */
  constructor({
    selfId = null,
    holdings,
    publish,
    everyMs = HAVE_GOSSIP_EVERY_MS,
    minGapMs = HAVE_GOSSIP_MIN_GAP_MS,
    ttlMs = GOSSIP_HOLDING_TTL_MS,
    maxPerHolder = MAX_GOSSIP_ADVERTS_PER_HOLDER,
    maxTotal = MAX_GOSSIP_ADVERTS,
  }) {
    this.selfId = selfId;
    this.holdings = holdings;
    this.publishFn = publish;
    this.everyMs = everyMs;
    this.minGapMs = minGapMs;
    this.ttlMs = ttlMs;
    this.maxPerHolder = maxPerHolder;
    this.maxTotal = maxTotal;
    this.pending = new Map(); // manifest id -> entry changed since the last publish (chunks 0: withdrawn)
    this.lastPublish = -Infinity;
    this.lastFull = -Infinity;
    this.published = 0; // messages
    this.heard = new Map(); // manifest id -> Map(holder -> { chunks, keep, issuedAt, expiresAt })
    this.perHolder = new Map(); // holder -> entries in `heard`
    this.size = 0;
  }

  // --- publishing ---

  /** Entries whose advert changed ([{id, chunks, keep?}], chunks 0 withdraws). */
  changed(entries) {
    for (const entry of entries) this.pending.set(entry.id, entry);
  }

  /**
   * Publish if due: the full list every `everyMs`, changes at most every `minGapMs`, and
   * only while `connected` (nobody would hear it otherwise). Resolves the messages sent
   * (`data` of each) once they are published.
   */
  async tick(now, { connected = true } = {}) {
    if (!connected || now - this.lastPublish < this.minGapMs) return [];
    let entries;
    if (now - this.lastFull >= this.everyMs) {
      const full = this.holdings();
      const ids = new Set(full.map((e) => e.id));
      // Withdrawals are not in the full list: say them too, or they would live until the TTL.
      entries = [...full, ...[...this.pending.values()].filter((e) => e.chunks === 0 && !ids.has(e.id))];
      this.lastFull = now;
    } else {
      entries = [...this.pending.values()];
    }
    this.pending.clear();
    if (entries.length === 0) return [];
    this.lastPublish = now;
    const sent = [];
    const publishing = [];
    for (let i = 0; i < entries.length; i += MAX_HAVE_MANIFESTS) {
      const manifests = entries.slice(i, i + MAX_HAVE_MANIFESTS).map(({ id, chunks, keep }) => {
        const entry = { id, chunks: Math.min(chunks, MAX_CHUNKS_PER_MANIFEST) };
        if (keep === false) entry.keep = false;
        return entry;
      });
      sent.push({ manifests });
      this.published += 1;
      publishing.push(Promise.resolve(this.publishFn(TOPIC_HAVE, { manifests })).catch(() => {}));
    }
    await Promise.all(publishing);
    return sent;
  }

  // --- receiving ---

  /**
   * A delivered `have` gossip from `origin` issued at `issuedAt`: its entries are recorded
   * until min(issuedAt, now) + ttl; an entry older than what we have is ignored.
   */
  receive(origin, data, issuedAt, now) {
    if (origin === this.selfId) return 0;
    const manifests = checkHaveGossip(data);
    const at = Math.min(issuedAt, now);
    let recorded = 0;
    for (const { id, chunks, keep = true } of manifests) {
      const holders = this.heard.get(id) ?? new Map();
      const known = holders.get(origin);
      if (known && known.issuedAt > at) continue;
      if (chunks === 0) {
        if (known) this.#forget(id, origin);
        continue;
      }
      if (!known) {
        if ((this.perHolder.get(origin) ?? 0) >= this.maxPerHolder || this.size >= this.maxTotal) continue;
        this.perHolder.set(origin, (this.perHolder.get(origin) ?? 0) + 1);
        this.size += 1;
      }
      holders.set(origin, { chunks, keep, issuedAt: at, expiresAt: at + this.ttlMs });
      this.heard.set(id, holders);
      recorded += 1;
    }
    return recorded;
  }

  /** Live gossiped holders of manifest `id`: Map(peer id -> { chunks, keep, expiresAt }). */
  holders(id, now) {
    const out = new Map();
    for (const [peerId, h] of this.heard.get(id) ?? []) if (h.expiresAt > now) out.set(peerId, h);
    return out;
  }

  /** Forget what expired. */
  prune(now) {
    for (const [id, holders] of [...this.heard]) {
      for (const [peerId, h] of [...holders]) if (h.expiresAt <= now) this.#forget(id, peerId);
    }
  }

  #forget(id, holder) {
    const holders = this.heard.get(id);
    if (!holders?.delete(holder)) return;
    if (holders.size === 0) this.heard.delete(id);
    const n = (this.perHolder.get(holder) ?? 1) - 1;
    if (n > 0) this.perHolder.set(holder, n);
    else this.perHolder.delete(holder);
    this.size -= 1;
  }
}
