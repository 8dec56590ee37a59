// The outbox core (docs/outbox.md), sans-IO: everything this person made that is not
// yet delivered, in the order it was made. Items go in with add(); the adapter
// (content/outbox.js) asks for what is due, reports what it did (sending through some peers,
// waiting for a reason, delivered to a peer, failed) and persists what changed. Ids are the
// items' own (a post's entry hash, a mail id), so adding or sending one again is harmless.
// Times are passed in: the core has no clock.

export const WAITING = "waiting";
export const SENDING = "sending";
export const DELIVERED = "delivered";
export const FAILED = "failed";
export const STATES = [WAITING, SENDING, DELIVERED, FAILED];

export const KIND_POST = "post"; // one of our post entries (ref: its hash)
export const KIND_KEY = "key"; // a file key wrapped for a named peer, sent as mail
export const KINDS = [KIND_POST, KIND_KEY];

// Sent but not acknowledged: sent again after these pauses (the last repeats).
export const RETRY_MS = [10_000, 30_000, 120_000, 600_000];
export const DEFAULT_LIFETIME_MS = 7 * 86_400_000;
export const MAX_ITEMS = 1000; // delivered and failed items beyond this are forgotten, oldest first

const OPEN = new Set([WAITING, SENDING]);

export class OutboxError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function checkNew({ id, kind }) {
  if (typeof id !== "string" || id.length === 0 || id.length > 128) throw new OutboxError("bad_item", "an outbox item needs an id");
  if (!KINDS.includes(kind)) throw new OutboxError("bad_item", `unknown outbox kind ${kind}`);
}

/**
 * An item: { id, kind, seq, state, createdAt, updatedAt, expiresAt, attempts, nextAt, target,
 * ref, label, payload, via: [peer ids it was handed to], deliveredTo: [peer ids], reason, message }.
 */
export class Outbox {
  constructor({ retryMs = RETRY_MS, maxItems = MAX_ITEMS } = {}) {
    this.retryMs = retryMs;
    this.maxItems = maxItems;
    this.items = new Map();
    this.nextSeq = 1;
    this.changed = new Set(); // ids to persist
    this.removed = new Set(); // ids to delete from storage
  }

  /**
   * Items read back from storage. An item that was sending when the tab went away is due at
   * once: the peers it was handed to may not have it, and sending it again is harmless.
   */
  load(records) {
    for (const record of records) {
      if (!record || typeof record.id !== "string" || !KINDS.includes(record.kind) || !STATES.includes(record.state)) continue;
      const item = { via: [], deliveredTo: [], ...record };
      if (item.state === SENDING) item.nextAt = 0;
      this.items.set(item.id, item);
      this.nextSeq = Math.max(this.nextSeq, (item.seq ?? 0) + 1);
    }
    return this.items.size;
  }

  get(id) {
    return this.items.get(id) ?? null;
  }

  /** Every item, oldest first. */
  list() {
    return [...this.items.values()].sort((a, b) => a.seq - b.seq);
  }

  /** Items not yet delivered or failed, oldest first. */
  open() {
    return this.list().filter((item) => OPEN.has(item.state));
  }

  /**
   * Add an item (waiting, due at once). The same id again changes nothing and returns the
   * item held: { item, added }.
   */
  add({ id, kind, target = null, ref = null, label = "", payload = null, expiresAt = null }, now) {
    checkNew({ id, kind });
    const held = this.items.get(id);
    if (held) return { item: held, added: false };
    const item = {
      id,
      kind,
      seq: this.nextSeq++,
      state: WAITING,
      createdAt: now,
      updatedAt: now,
      expiresAt: expiresAt ?? now + DEFAULT_LIFETIME_MS,
      attempts: 0,
      nextAt: now,
      target,
      ref,
      label,
      payload,
      via: [],
      deliveredTo: [],
      reason: null,
      message: "",
    };
    this.items.set(id, item);
    this.#touch(item, now);
    this.#trim();
    return { item, added: true };
  }

  /** Open items whose time has come, oldest first (the adapter sends them in this order). */
  due(now) {
    return this.open().filter((item) => item.nextAt <= now);
  }

  /** The earliest time an open item is due, or null. */
  nextDue() {
    let next = null;
    for (const item of this.items.values()) {
      if (OPEN.has(item.state) && (next === null || item.nextAt < next)) next = item.nextAt;
    }
    return next;
  }

  /**
   * Something changed (a peer connected, a key arrived): every item that is waiting, or was
   * last found with no way out (a reason), is due now.
   * @param {number} now
   * @param {(item: any) => boolean} [filter]
   */
  wake(now, filter = () => true) {
    for (const item of this.items.values()) {
      if ((item.state === WAITING || (item.state === SENDING && item.reason !== null)) && item.nextAt > now && filter(item)) {
        item.nextAt = now;
        this.#touch(item, now);
      }
    }
  }

  /** Handed to `via` (peer ids); due again after the next retry pause unless acknowledged. */
  sending(id, now, via = []) {
    const item = this.#open(id);
    if (!item) return null;
    item.attempts += 1;
    item.state = SENDING;
    item.via = [...new Set([...item.via, ...via])];
    item.reason = null;
    item.message = "";
    item.nextAt = now + this.retryMs[Math.min(item.attempts - 1, this.retryMs.length - 1)];
    this.#touch(item, now);
    return item;
  }

  /** Not sendable now (`reason` a code: no_route, no_key...); due at `retryAt` or on wake(). */
  waiting(id, now, reason, message = "", retryAt = null) {
    const item = this.#open(id);
    if (!item) return null;
    item.state = item.state === SENDING && item.via.length > 0 ? SENDING : WAITING;
    item.reason = reason;
    item.message = message;
    item.nextAt = retryAt ?? now + this.retryMs[Math.min(item.attempts, this.retryMs.length - 1)];
    this.#touch(item, now);
    return item;
  }

  /** `peerId` has it. A delivered item stays delivered; more peers may be added. */
  delivered(id, now, peerId) {
    const item = this.items.get(id);
    if (!item || item.state === FAILED) return null;
    const fresh = !item.deliveredTo.includes(peerId);
    if (fresh) item.deliveredTo = [...item.deliveredTo, peerId];
    if (item.state !== DELIVERED || fresh) {
      item.state = DELIVERED;
      item.reason = null;
      item.message = "";
      this.#touch(item, now);
    }
    return item;
  }

  /** Given up: the reason stays on the item for the person to see. */
  fail(id, now, reason, message = "") {
    const item = this.#open(id);
    if (!item) return null;
    item.state = FAILED;
    item.reason = reason;
    item.message = message;
    this.#touch(item, now);
    return item;
  }

  /** Open items past their time fail as `expired`; the items that did. */
  expire(now) {
    const out = [];
    for (const item of this.open()) {
      if (item.expiresAt <= now) out.push(this.fail(item.id, now, "expired", "not delivered in time"));
    }
    return out;
  }

  /** Forget a delivered or failed item (the person cleared it). */
  remove(id) {
    const item = this.items.get(id);
    if (!item || OPEN.has(item.state)) return false;
    this.items.delete(id);
    this.changed.delete(id);
    this.removed.add(id);
    return true;
  }

  /** { put: [items], remove: [ids] } since the last call: what the adapter must persist. */
  takeChanges() {
    const put = [...this.changed].map((id) => this.items.get(id)).filter(Boolean);
    const remove = [...this.removed];
    this.changed.clear();
    this.removed.clear();
    return { put, remove };
  }

  #open(id) {
    const item = this.items.get(id);
    return item && OPEN.has(item.state) ? item : null;
  }

  #touch(item, now) {
    item.updatedAt = now;
    this.changed.add(item.id);
  }

  #trim() {
    if (this.items.size <= this.maxItems) return;
    for (const item of this.list()) {
      if (this.items.size <= this.maxItems) break;
      if (!OPEN.has(item.state)) this.remove(item.id);
    }
  }
}
