// The diagnostics ring buffer shown in the debug panel: the last 200 events with level,
// source, code and message. Listeners hear each new event (the UI appends it).

export const RING_SIZE = 200;
export const LEVELS = ["debug", "info", "warn", "error"];

export class Diagnostics {
  constructor({ size = RING_SIZE, clock = Date.now } = {}) {
    this.size = size;
    this.clock = clock;
    this.events = [];
    this.listeners = new Set();
    this.counts = { debug: 0, info: 0, warn: 0, error: 0 };
  }

  add({ level = "info", source, code, message = "", peerId = null }) {
    const event = {
      ts: this.clock(),
      level: LEVELS.includes(level) ? level : "info",
      source: String(source ?? "swarm"),
      code: String(code ?? "event"),
      message: String(message),
      peerId,
    };
    this.events.push(event);
    if (this.events.length > this.size) this.events.splice(0, this.events.length - this.size);
    this.counts[event.level] += 1;
    for (const listener of this.listeners) listener(event);
    return event;
  }

  /** Newest first, optionally at or above a level. */
  list(minLevel = "debug") {
    const floor = LEVELS.indexOf(minLevel);
    return this.events.filter((e) => LEVELS.indexOf(e.level) >= floor).reverse();
  }

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
