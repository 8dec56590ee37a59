// Serving chunks to peers that ask (chunk_req -> chunk | chunk_missing), one queue per peer.
// Backpressure: nothing more is sent to a peer while its DataChannel holds more than
// BUFFER_TARGET; `bufferedamountlow` resumes it. Reads go to
// IndexedDB a batch at a time. An optional upload limit (bytes/s, all peers together) paces it.
// UploadStats counts what was served of each file (bytes, peers, recent rate) for the UI.
// Super-peers are served in the background: while a page's request waits here, a super-peer
// (pinning or replicating) gets one read batch every BACKGROUND_EVERY_MS, so a person's
// download has the holder's channel and CPU and the super-peer's requests still do not time out.
import { encodeChunkFrame } from "../protocol/wire.js";

// How much a peer's DataChannel may hold before we wait; `bufferedamountlow` at a quarter of it
// resumes. bufferedAmount counts only what SCTP has not sent yet (what is in flight lives in
// its retransmission queue), so this needs to cover only the time the page takes to send
// more, not the path's round trip; SCTP's congestion window covers the path. More queued does
// not go faster: it lets SCTP grow its window and burst, packets are lost inside the browser
// (none in the kernel's counters), and each loss beyond the first in a window costs a
// retransmission timeout (~0.4 s) while the rest waits. Measured on fresh connections in the
// make run stack (20 MiB, docs/browser.md "Serving"): 64 KiB 0.86 s median, 256 KiB 1.0 s,
// 1 MiB 1.9 s, 4 MiB 3.0 s; in whole downloads 64-128 KiB was slower (more refills) than 256 KiB.
export const BUFFER_TARGET = 256 * 1024;
const READ_BATCH = 8;
const MAX_QUEUE = 512; // requests waiting per peer; honest peers keep far fewer in flight
const DRAIN_FALLBACK_MS = 1_000; // in case a bufferedamountlow event never comes
const UPLOAD_RATE_WINDOW_MS = 2_000;
export const BACKGROUND_EVERY_MS = 250; // a background peer's batch interval while a page waits

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class Uploader {
  /**
   * `background(peerId)`: whether the peer is served in the background (a super-peer).
   * @param {{ peer: any, store: any, onServed?: (peerId: string, id: string, bytes: number) => void,
   *           background?: (peerId: string) => boolean }} args
   */
  constructor({ peer, store, onServed = () => {}, background = () => false }) {
    this.peer = peer;
    this.store = store;
    this.onServed = onServed;
    this.background = background;
    this.queues = new Map(); // peer id -> { requests, pumping }
    this.limitBps = 0; // 0: as fast as the channel takes it
    this.nextSendAt = 0;
    this.stats = { chunks: 0, bytes: 0, missing: 0, dropped: 0, waits: 0, yields: 0, servedTo: {} };
  }

  // Whether a peer whose queue passes `which` has requests here (waiting or being sent).
  #busyWith(which) {
    for (const queue of this.queues.values()) if ((queue.requests.length > 0 || queue.pumping) && which(queue)) return true;
    return false;
  }

  #foregroundBusy() {
    return this.#busyWith((queue) => !queue.background);
  }

  // A background peer's turn: at once while no page waits, else once per BACKGROUND_EVERY_MS.
  async #yield(queue) {
    for (;;) {
      if (!this.#foregroundBusy()) return;
      const wait = queue.servedAt + BACKGROUND_EVERY_MS - performance.now();
      if (wait <= 0) return;
      this.stats.yields += 1;
      await sleep(Math.min(wait, 50));
    }
  }

  /** Whether any peer's chunks wait here or are being sent. */
  get busy() {
    return this.#busyWith(() => true);
  }

  request(peerId, frame) {
    let queue = this.queues.get(peerId);
    if (!queue) {
      queue = { requests: [], pumping: false, background: this.background(peerId), servedAt: -Infinity };
      this.queues.set(peerId, queue);
    }
    if (queue.requests.length >= MAX_QUEUE) {
      this.stats.dropped += 1;
      return;
    }
    queue.requests.push(frame);
    if (!queue.pumping) this.#pump(peerId, queue);
  }

  peerClosed(peerId) {
    const queue = this.queues.get(peerId);
    if (queue) queue.requests.length = 0;
    this.queues.delete(peerId);
  }

  #drained(channel) {
    this.stats.waits += 1;
    return new Promise((resolve) => {
      const done = () => {
        channel.removeEventListener("bufferedamountlow", done);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(done, DRAIN_FALLBACK_MS);
      channel.addEventListener("bufferedamountlow", done);
    });
  }

  // Waits (and says so) while the channel holds more than its path needs.
  async #backpressure(channel) {
    if (channel.bufferedAmount <= BUFFER_TARGET) return false;
    channel.bufferedAmountLowThreshold = BUFFER_TARGET / 4;
    await this.#drained(channel);
    return true;
  }

  async #pace(bytes) {
    if (!this.limitBps) return;
    const now = performance.now();
    const at = Math.max(now, this.nextSendAt);
    this.nextSendAt = at + (bytes * 1000) / this.limitBps;
    if (at > now) await sleep(at - now);
  }

  // Reads run one batch ahead of sends: while a batch goes out, the next is read.
  async #pump(peerId, queue) {
    queue.pumping = true;
    const read = (batch) => ({ batch, datas: this.store.getChunkParts(batch.map((r) => r.chunk)) });
    let next = null;
    try {
      while ((next || queue.requests.length > 0) && this.queues.get(peerId) === queue) {
        const channel = this.peer.channel(peerId);
        if (channel?.readyState !== "open") {
          queue.requests.length = 0;
          break;
        }
        if (await this.#backpressure(channel)) continue;
        if (queue.background) {
          await this.#yield(queue);
          if (this.queues.get(peerId) !== queue) return;
          queue.servedAt = performance.now();
        }
        const current = next ?? read(queue.requests.splice(0, READ_BATCH));
        const datas = await current.datas;
        next = queue.requests.length > 0 ? read(queue.requests.splice(0, READ_BATCH)) : null;
        for (let i = 0; i < current.batch.length; i++) {
          const { manifest, index, chunk } = current.batch[i];
          const parts = datas[i];
          if (parts === undefined) {
            this.stats.missing += 1;
            this.peer.send(peerId, { t: "chunk_missing", manifest, index, chunk });
            continue;
          }
          const size = parts.reduce((n, p) => n + p.length, 0);
          await this.#pace(size);
          while (channel.readyState === "open" && (await this.#backpressure(channel))) {
            if (this.queues.get(peerId) !== queue) return;
          }
          if (this.queues.get(peerId) !== queue) return; // the peer left while we waited
          // Encoded here straight from the stored pieces (one copy instead of three).
          if (!this.peer.sendEncoded(peerId, encodeChunkFrame(manifest, index, chunk, parts), "chunk")) return;
          this.stats.chunks += 1;
          this.stats.bytes += size;
          this.stats.servedTo[peerId] = (this.stats.servedTo[peerId] ?? 0) + size;
          this.onServed(peerId, manifest, size);
        }
      }
    } finally {
      queue.pumping = false;
    }
  }
}

/** What was uploaded of each file; `now` in ms of a monotonic clock (performance.now()). */
export class UploadStats {
  constructor() {
    this.byFile = new Map(); // manifest id -> { bytes, peers: Set, recent: [[at, bytes]] }
  }

  add(peerId, id, bytes, now) {
    let entry = this.byFile.get(id);
    if (!entry) {
      entry = { bytes: 0, peers: new Set(), recent: [] };
      this.byFile.set(id, entry);
    }
    entry.bytes += bytes;
    entry.peers.add(peerId);
    entry.recent.push([now, bytes]);
    while (now - entry.recent[0][0] > UPLOAD_RATE_WINDOW_MS) entry.recent.shift();
  }

  /** What we uploaded of a file: { bytes, peers, rate (bytes/s over the last 2 s) }, or null. */
  of(id, now) {
    const entry = this.byFile.get(id);
    if (!entry) return null;
    while (entry.recent.length && now - entry.recent[0][0] > UPLOAD_RATE_WINDOW_MS) entry.recent.shift();
    const recent = entry.recent.reduce((n, [, b]) => n + b, 0);
    return { bytes: entry.bytes, peers: entry.peers.size, rate: (recent * 1000) / UPLOAD_RATE_WINDOW_MS };
  }
}
