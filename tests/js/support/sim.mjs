// What the simulations share: a deterministic PRNG and a queue of events on a fake clock.

/** mulberry32: a seeded PRNG giving numbers in [0, 1), so a simulation repeats exactly. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const less = (a, b) => a.t < b.t || (a.t === b.t && a.seq < b.seq);

/** Events by time, then in the order they were scheduled (a binary heap). */
export class EventQueue {
  constructor() {
    this.heap = [];
    this.seq = 0;
  }

  get size() {
    return this.heap.length;
  }

  push(t, item) {
    const h = this.heap;
    h.push({ t, seq: this.seq++, item });
    for (let i = h.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (less(h[parent], h[i])) break;
      [h[parent], h[i]] = [h[i], h[parent]];
      i = parent;
    }
  }

  /** The next event `{t, item}` without taking it, or undefined. */
  peek() {
    return this.heap[0];
  }

  /** Take the next event: `{t, item}`. */
  pop() {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l], h[m])) m = l;
        if (r < h.length && less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
}
