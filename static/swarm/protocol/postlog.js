// Per-author post logs: chain checks, fork detection, reconciliation (docs/protocol.md "Posts"),
// mirror of peers/protocol/postlog.py. Entries come from posts.verifyPost; everything here is sync.
import { isDigestId } from "./chunks.js";
import { PEER_ID_RE } from "./encoding.js";
import { BAD_POST, BAD_SYNC, BROKEN_CHAIN, FORK, GAP, ProtocolError } from "./errors.js";
import { KIND_DELETE, KIND_EDIT, KIND_POST, makePost, verifyPost } from "./posts.js";

export const MAX_SUMMARY_AUTHORS = 1024;
export const MAX_SYNC_ENTRIES = 256;

// fork = { author, seq, hashes: [ours, theirs], evidence: [signed entries known here] }
export class ForkError extends ProtocolError {
  constructor(fork) {
    super(FORK, `${fork.author} signed two entries at seq ${fork.seq}`);
    this.fork = fork;
  }
}

// One author's verified entries, contiguous from seq 0.
export class AuthorLog {
  #entries = [];
  #byHash = new Map();
  #deleted = new Set();

  constructor(author) {
    if (typeof author !== "string" || !PEER_ID_RE.test(author)) {
      throw new ProtocolError(BAD_POST, "author is not a key-bound peer id");
    }
    this.author = author;
  }

  get length() {
    return this.#entries.length;
  }

  get head() {
    const last = this.#entries.at(-1);
    return last ? { seq: last.seq, hash: last.hash } : null;
  }

  get entries() {
    return [...this.#entries];
  }

  entryAt(seq) {
    return this.#entries[seq] ?? null;
  }

  entriesFrom(seq) {
    return this.#entries.slice(Math.max(seq, 0));
  }

  // Add the next entry; false if it is already here. Throws gap (sync from log.length), fork
  // (ForkError), broken_chain, or bad_post (edit/delete of something that is not a live post).
  append(entry) {
    if (entry.author !== this.author) throw new ProtocolError(BAD_POST, "entry belongs to another author's log");
    const count = this.#entries.length;
    if (entry.seq < count) {
      const ours = this.#entries[entry.seq];
      if (ours.hash === entry.hash) return false;
      throw new ForkError({
        author: this.author,
        seq: entry.seq,
        hashes: [ours.hash, entry.hash],
        evidence: [ours.envelope, entry.envelope],
      });
    }
    if (entry.seq > count) {
      throw new ProtocolError(GAP, `seq ${entry.seq} but the log has entries 0..${count - 1}`);
    }
    const previous = this.#entries.at(-1) ?? null;
    if (entry.prev !== (previous ? previous.hash : null)) {
      throw new ProtocolError(BROKEN_CHAIN, `prev of seq ${entry.seq} is not the entry before`);
    }
    if (previous && entry.createdAt < previous.createdAt) {
      throw new ProtocolError(BROKEN_CHAIN, `seq ${entry.seq} is older than the entry before`);
    }
    if (entry.kind !== KIND_POST) {
      const target = this.#byHash.get(entry.target);
      if (!target || target.kind !== KIND_POST) {
        throw new ProtocolError(BAD_POST, `${entry.kind} target is not a post of this log`);
      }
      if (this.#deleted.has(target.hash)) throw new ProtocolError(BAD_POST, `${entry.kind} target is already deleted`);
      if (entry.kind === KIND_DELETE) this.#deleted.add(target.hash);
    }
    this.#entries.push(entry);
    this.#byHash.set(entry.hash, entry);
    return true;
  }

  // Visible posts in log order, edits applied, deleted posts left out; id = hash of the original.
  posts() {
    const views = new Map();
    for (const e of this.#entries) {
      if (e.kind === KIND_POST) {
        views.set(e.hash, {
          id: e.hash,
          author: e.author,
          seq: e.seq,
          createdAt: e.createdAt,
          editedAt: null,
          text: e.text,
          attachments: e.attachments,
          name: e.name,
        });
      } else if (e.kind === KIND_EDIT && views.has(e.target)) {
        const old = views.get(e.target);
        views.set(e.target, { ...old, editedAt: e.createdAt, text: e.text, attachments: e.attachments, name: e.name });
      } else if (e.kind === KIND_DELETE) {
        views.delete(e.target);
      }
    }
    return [...views.values()];
  }
}

// Verify a whole log given in seq order from seq 0.
export async function verifyLog(envelopes, { now = null } = {}) {
  let log = null;
  for (const envelope of envelopes) {
    const entry = await verifyPost(envelope, { now });
    log ??= new AuthorLog(entry.author);
    if (!log.append(entry)) throw new ProtocolError(BROKEN_CHAIN, `seq ${entry.seq} appears twice`);
  }
  if (log === null) throw new ProtocolError(BAD_POST, "a log has at least one entry");
  return log;
}

// Sign the entry that extends `log` (created_at never goes back in time).
export function nextPost(log, signer, { now, kind = KIND_POST, text = "", target = null, attachments = [], name = "" }) {
  const last = log.entryAt(log.length - 1);
  return makePost(signer, {
    seq: log.length,
    prev: last ? last.hash : null,
    createdAt: last ? Math.max(now, last.createdAt) : now,
    kind,
    text,
    target,
    attachments,
    name,
  });
}

// Map author -> AuthorLog  =>  { author: { seq, hash } } of every non-empty log, authors sorted.
export function summarize(logs) {
  const out = {};
  for (const author of [...logs.keys()].sort()) {
    const head = logs.get(author).head;
    if (head) out[author] = head;
  }
  return out;
}

// A summary received from another peer (plain object); bad_sync when malformed or too large.
export function parseSummary(value) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ProtocolError(BAD_SYNC, "summary must be a JSON object");
  }
  const entries = Object.entries(value);
  if (entries.length > MAX_SUMMARY_AUTHORS) {
    throw new ProtocolError(BAD_SYNC, `summary lists more than ${MAX_SUMMARY_AUTHORS} authors`);
  }
  const out = new Map();
  for (const [author, head] of entries) {
    if (!PEER_ID_RE.test(author)) throw new ProtocolError(BAD_SYNC, "summary keys are key-bound peer ids");
    if (head === null || typeof head !== "object" || Array.isArray(head)) {
      throw new ProtocolError(BAD_SYNC, `summary of ${author} must be {seq, hash}`);
    }
    const keys = Object.keys(head).sort();
    if (keys.length !== 2 || keys[0] !== "hash" || keys[1] !== "seq") {
      throw new ProtocolError(BAD_SYNC, `summary of ${author} must be {seq, hash}`);
    }
    if (!Number.isSafeInteger(head.seq) || head.seq < 0 || !isDigestId(head.hash)) {
      throw new ProtocolError(BAD_SYNC, `summary of ${author} has a bad seq or hash`);
    }
    out.set(author, { seq: head.seq, hash: head.hash });
  }
  return out;
}

// Entries the other side lacks given its summary (Map author -> {seq, hash}), author then seq
// order. A head that disagrees with our entry at that seq is a fork: our entry goes as evidence.
// Resolves { send: [envelopes], forks, want: {author: fromSeq}, complete } (complete=false: limit hit).
export function reconcile(mine, theirs, { limit = MAX_SYNC_ENTRIES } = {}) {
  const send = [];
  const forks = [];
  const want = {};
  let complete = true;
  const authors = [...new Set([...mine.keys(), ...theirs.keys()])].sort();
  for (const author of authors) {
    const log = mine.get(author) ?? null;
    const have = log ? log.length : 0;
    const head = theirs.get(author) ?? null;
    if (head && head.seq >= have) {
      want[author] = have; // they hold more: ask from our next seq
      continue;
    }
    if (!log) continue;
    let pending;
    if (!head) {
      pending = log.entriesFrom(0);
    } else if (log.entryAt(head.seq).hash === head.hash) {
      pending = log.entriesFrom(head.seq + 1);
    } else {
      const ours = log.entryAt(head.seq);
      forks.push({ author, seq: head.seq, hashes: [ours.hash, head.hash], evidence: [ours.envelope] });
      pending = [ours];
    }
    for (const entry of pending) {
      if (send.length >= limit) {
        complete = false;
        break;
      }
      send.push(entry.envelope);
    }
  }
  return { send, forks, want, complete };
}
