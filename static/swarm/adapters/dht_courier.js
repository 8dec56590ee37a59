// The page DHT's courier (adapters/dht.js runs it): what happens to the core's sends for
// peers the page is or is not connected to. Pure, no IO (tests/js/dht_page.test.js).
/**
 * What the page does with the core's sends, without IO (node --test covers it): frames for a
 * connected peer go out; frames for another peer wait while it is dialed (at most `maxDials`
 * dials at once, the others queued in order), at most `waitMs` (the core's request timeout);
 * answers (no ticket) to a peer no longer connected are dropped. It also remembers which
 * connections were dialed for the DHT and when they were last used.
 */
export class DhtCourier {
  constructor({ maxDials = 4, waitMs = 5_000, idleMs = 60_000, maxQueued = 32 } = {}) {
    this.maxDials = maxDials;
    this.waitMs = waitMs;
    this.idleMs = idleMs;
    this.maxQueued = maxQueued;
    this.queued = new Map(); // peer id -> [{frame, at}]
    this.dialing = new Map(); // peer id -> since
    this.ours = new Map(); // peer id -> last used (connections opened for the DHT)
  }

  /** "send" (connected), "dial" (dial it now), "queued" (waits for a dial slot or the open), "drop". */
  route(peerId, frame, { connected, answer, now }) {
    if (connected) {
      if (this.ours.has(peerId)) this.ours.set(peerId, now);
      return "send";
    }
    if (answer) return "drop";
    const queue = this.queued.get(peerId) ?? [];
    if (queue.length >= this.maxQueued) return "drop";
    queue.push({ frame, at: now });
    this.queued.set(peerId, queue);
    if (this.dialing.has(peerId) || this.dialing.size >= this.maxDials) return "queued";
    this.dialing.set(peerId, now);
    return "dial";
  }

  /** A connection to `peerId` opened: the frames waiting for it, in order. */
  opened(peerId, now) {
    const wasDialed = this.dialing.delete(peerId);
    const frames = (this.queued.get(peerId) ?? []).map((q) => q.frame);
    this.queued.delete(peerId);
    if (wasDialed && frames.length) this.ours.set(peerId, now);
    return frames;
  }

  /** A dial of `peerId` failed (or the page cannot dial): true when frames were waiting (the core hears `unreachable`). */
  failed(peerId) {
    const had = this.queued.has(peerId) || this.dialing.has(peerId);
    this.queued.delete(peerId);
    this.dialing.delete(peerId);
    return had;
  }

  closed(peerId) {
    this.ours.delete(peerId);
  }

  /**
   * Time passes: frames older than waitMs are forgotten (their peers returned as `expired`,
   * the core times their requests out itself), and queued peers get the dial slots freed
   * (returned as `dial`).
   */
  sweep(now) {
    const expired = [];
    for (const [peerId, queue] of [...this.queued]) {
      const left = queue.filter((q) => now - q.at < this.waitMs);
      if (left.length) this.queued.set(peerId, left);
      else {
        this.queued.delete(peerId);
        this.dialing.delete(peerId);
        expired.push(peerId);
      }
    }
    for (const [peerId, since] of [...this.dialing]) {
      if (now - since >= this.waitMs) {
        this.dialing.delete(peerId);
        if (!expired.includes(peerId)) expired.push(peerId);
        this.queued.delete(peerId);
      }
    }
    const dial = [];
    for (const peerId of this.queued.keys()) {
      if (this.dialing.size >= this.maxDials) break;
      if (this.dialing.has(peerId)) continue;
      this.dialing.set(peerId, now);
      dial.push(peerId);
    }
    return { expired, dial };
  }

  /** Connections opened for the DHT and unused for idleMs. */
  idle(now) {
    return [...this.ours].filter(([, at]) => now - at >= this.idleMs).map(([peerId]) => peerId);
  }
}
