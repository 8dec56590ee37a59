// The community feed's state and its sync protocol (docs/protocol.md "Post sync"), sans-IO:
// frames from peers, gossiped entries, connection changes and `now` go in; frames to send,
// stored entries, rejections (for diagnostics) and forks come out of takeActions(). Async only
// for signature checks. The adapter (feed.js) stores entries and draws the feed.
import { BAD_SYNC, FORK, GAP, ProtocolError, RATE_LIMITED } from "../protocol/errors.js";
import { AuthorLog, ForkError, MAX_SYNC_ENTRIES, nextPost, reconcile } from "../protocol/postlog.js";
import { verifyPost } from "../protocol/posts.js";
import { encodeFrame, MAX_FRAME_BYTES, MAX_SYNC_HEADS } from "../protocol/wire.js";

export const POST_TOPIC = "post"; // gossip topic of new entries (data: the signed entry)
export const SYNC_CAP = "sync"; // hello capability: the peer answers sync_summary
// Room left in a sync_entries frame for its header and the complete flag.
const FRAME_BUDGET = MAX_FRAME_BYTES - 1024;
// Answers per peer: a summary costs us up to a full frame, so a peer may not ask in a loop.
export const ANSWER_RATE_PER_S = 4;
export const ANSWER_BURST = 16;
// Faults of a received entry that an honest sender (it verified what it stores) never makes.
const VIOLATIONS = new Set(["bad_envelope", "bad_signature", "bad_post", "peer_mismatch"]);

/** Entry size on the wire inside a sync_entries frame (without the frame's own header). */
function wireSize(envelope) {
  return encodeFrame({ t: "sync_entries", entries: [envelope], complete: true }).length - 16;
}

function checkHeads(frame) {
  let previous = frame.after;
  for (const head of frame.heads) {
    if (head.author <= previous) throw new ProtocolError(BAD_SYNC, "summary heads must be sorted by author, after `after`");
    previous = head.author;
  }
  if (!frame.end && frame.heads.length === 0) throw new ProtocolError(BAD_SYNC, "a partial summary lists at least one head");
}

export class PostSync {
  constructor({ selfId }) {
    this.selfId = selfId;
    this.logs = new Map(); // author -> AuthorLog
    this.peers = new Map(); // peer id -> { sync, tokens, at }
    this.actions = [];
    this.forks = [];
    this.stats = { stored: 0, duplicates: 0, rejected: 0, answers: 0, sent: 0, forks: 0 };
  }

  takeActions() {
    const out = this.actions;
    this.actions = [];
    return out;
  }

  // --- the local feed ---

  #log(author) {
    let log = this.logs.get(author);
    if (!log) {
      log = new AuthorLog(author);
      this.logs.set(author, log);
    }
    return log;
  }

  /** Entries read back from storage (verified when stored), in author then seq order. */
  load(entries) {
    let loaded = 0;
    for (const entry of entries) {
      try {
        if (this.#log(entry.author).append(entry)) loaded += 1;
      } catch {
        // A stored entry that no longer fits (storage edited by hand): leave it out.
      }
    }
    return loaded;
  }

  /** Sign and add our next entry; the adapter stores it and gossips it. */
  async publish(signer, fields, now) {
    const log = this.#log(this.selfId);
    const entry = await verifyPost(await nextPost(log, signer, { ...fields, now }), { now });
    log.append(entry);
    this.stats.stored += 1;
    this.actions.push({ type: "stored", entry, from: null });
    this.actions.push({ type: "publish", entry });
    return entry;
  }

  /** Visible posts of every author, newest first. */
  posts() {
    const out = [];
    for (const log of this.logs.values()) out.push(...log.posts());
    return out.sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? -1 : 1));
  }

  /** The entry that is post `id` (the hash of its `post` entry), if held. */
  postEntry(id) {
    for (const log of this.logs.values()) {
      const entry = log.entries.find((e) => e.hash === id);
      if (entry) return entry;
    }
    return null;
  }

  // --- peers ---

  peerOpened(peerId, caps, now) {
    this.peers.set(peerId, { sync: caps.includes(SYNC_CAP), tokens: ANSWER_BURST, at: now });
    if (caps.includes(SYNC_CAP)) this.#sendSummary(peerId);
  }

  peerClosed(peerId) {
    this.peers.delete(peerId);
  }

  /** Summary frames of everything held: 1024 authors a frame, each naming its range. */
  summaryFrames() {
    const authors = [...this.logs.keys()].filter((a) => this.logs.get(a).length > 0).sort();
    const frames = [];
    for (let start = 0; start < authors.length || frames.length === 0; start += MAX_SYNC_HEADS) {
      const part = authors.slice(start, start + MAX_SYNC_HEADS);
      frames.push({
        t: "sync_summary",
        heads: part.map((author) => ({ author, ...this.logs.get(author).head })),
        after: start === 0 ? "" : authors[start - 1],
        end: start + MAX_SYNC_HEADS >= authors.length,
      });
    }
    return frames;
  }

  #sendSummary(peerId) {
    for (const frame of this.summaryFrames()) this.actions.push({ type: "send", peerId, frame });
  }

  #takeToken(peer, now) {
    peer.tokens = Math.min(ANSWER_BURST, peer.tokens + (Math.max(0, now - peer.at) * ANSWER_RATE_PER_S) / 1000);
    peer.at = Math.max(peer.at, now);
    if (peer.tokens < 1) return false;
    peer.tokens -= 1;
    return true;
  }

  #reject(peerId, code, message, violation) {
    this.stats.rejected += 1;
    this.actions.push({ type: "rejected", peerId, code, message, violation });
  }

  // --- frames ---

  /** A sync_summary or sync_entries frame from an open peer. */
  async receiveFrame(peerId, frame, now) {
    if (frame.t === "sync_summary") this.#onSummary(peerId, frame, now);
    else if (frame.t === "sync_entries") await this.#onEntries(peerId, frame, now);
  }

  #onSummary(peerId, frame, now) {
    const peer = this.peers.get(peerId);
    if (!peer) return;
    if (!this.#takeToken(peer, now)) {
      this.#reject(peerId, RATE_LIMITED, "sync summaries too often", true);
      return;
    }
    try {
      checkHeads(frame);
    } catch (error) {
      this.#reject(peerId, error.code, error.message, true);
      return;
    }
    const theirs = new Map(frame.heads.map((h) => [h.author, { seq: h.seq, hash: h.hash }]));
    const last = frame.heads.at(-1)?.author;
    const mine = new Map();
    for (const [author, log] of this.logs) {
      if (author > frame.after && (frame.end || author <= last)) mine.set(author, log);
    }
    const { send, forks, complete } = reconcile(mine, theirs, { limit: MAX_SYNC_ENTRIES });
    for (const fork of forks) this.#fork(fork, peerId);
    const entries = [];
    let size = 0;
    for (const envelope of send) {
      const n = wireSize(envelope);
      if (size + n > FRAME_BUDGET) break;
      entries.push(envelope);
      size += n;
    }
    if (entries.length === 0 && complete) return; // they lack nothing we hold
    this.stats.answers += 1;
    this.stats.sent += entries.length;
    this.actions.push({ type: "send", peerId, frame: { t: "sync_entries", entries, complete: complete && entries.length === send.length } });
  }

  async #onEntries(peerId, frame, now) {
    let stored = 0;
    let gap = false;
    for (const envelope of frame.entries) {
      const result = await this.#accept(envelope, peerId, now);
      if (result === "stored") stored += 1;
      if (result === GAP) gap = true;
    }
    // Cut at the limit, or we were behind what they sent: summarise again and ask.
    if ((!frame.complete && stored > 0) || (gap && stored > 0)) this.#sendSummary(peerId);
  }

  /** A post entry gossiped on POST_TOPIC (already verified by the node's check). */
  async receiveGossip(fromPeerId, envelope, now) {
    const result = await this.#accept(envelope, fromPeerId, now);
    // A gap: we missed earlier entries of that author; the forwarder probably holds them.
    if (result === GAP && this.peers.get(fromPeerId)?.sync) this.#sendSummary(fromPeerId);
    return result;
  }

  // Verify one entry and add it to its author's log: "stored", "duplicate", or a code.
  async #accept(envelope, peerId, now) {
    let entry;
    try {
      entry = await verifyPost(envelope, { now });
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      // Never stored, shown or passed on; held against the sender unless clocks may differ.
      this.#reject(peerId, error.code, error.message, VIOLATIONS.has(error.code));
      return error.code;
    }
    try {
      if (!this.#log(entry.author).append(entry)) {
        this.stats.duplicates += 1;
        return "duplicate";
      }
    } catch (error) {
      if (error instanceof ForkError) {
        this.#fork(error.fork, peerId);
        return FORK;
      }
      if (!(error instanceof ProtocolError)) throw error;
      // gap: fetched by a sync; broken_chain / bad_post: a branch of a fork we do not follow.
      if (error.code !== GAP) this.#reject(peerId, error.code, error.message, false);
      return error.code;
    }
    this.stats.stored += 1;
    this.actions.push({ type: "stored", entry, from: peerId });
    return "stored";
  }

  #fork(fork, peerId) {
    const key = `${fork.author}/${fork.seq}`;
    if (this.forks.some((f) => `${f.author}/${f.seq}` === key)) return;
    this.forks.push(fork);
    this.stats.forks += 1;
    this.actions.push({ type: "fork", fork, peerId });
  }
}
