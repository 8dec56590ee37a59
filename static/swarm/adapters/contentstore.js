import { unwrap } from "idb";

// What the content layer keeps (IndexedDB through idb, the stores created by store.js):
// file records (manifest, key, state), encrypted chunks addressed by chunk id, post entries,
// peers' X25519 key announcements, this peer's own X25519 key, the guardian and recovery state,
// the outbox and the ids of mail already handled. Without IndexedDB the same
// interface keeps everything in memory for the life of the tab.

export const OWN_XKEY = "xkey"; // key of this peer's X25519 pair in the identity store
// Chromium's IndexedDB moves a value whose serialized form exceeds 64 KiB out to a blob file
// of its own; a full chunk (65552 bytes) would, at about twice the CPU of an inline value
// for writes and reads (bench/transfer.py). So a chunk is kept as its first INLINE_BYTES
// under its id and the rest (at most 272 bytes) under id + TAIL: two inline values.
export const INLINE_BYTES = 65280;
const TAIL = "."; // not in the base64url alphabet: never part of a chunk id
// The chunks written last are kept in memory too, up to RECENT_BYTES, and serve reads for
// peers (getChunkParts): a file is most asked for just after it was shared or fetched, and
// a read from memory costs none of IndexedDB's CPU (the request, the browser's read, the copy
// back), which a transfer on a busy machine needs (docs/browser.md "Serving").
export const RECENT_BYTES = 32 * 1024 * 1024;

export class StorageFullError extends Error {
  constructor(message) {
    super(message);
    this.name = "StorageFullError";
    this.code = "storage_full";
  }
}

const isQuota = (error) => error?.name === "QuotaExceededError" || /quota/i.test(String(error?.message));

// Structured clone stores a view's whole buffer: a chunk that is most of its buffer (a
// received frame: the chunk plus ~150 bytes of header) is stored as is, not copied first.
function own(bytes) {
  return bytes.buffer.byteLength - bytes.byteLength <= 1024 ? bytes : bytes.slice();
}

const asArray = (v) => (v === undefined || v instanceof Uint8Array ? v : new Uint8Array(v));

function join(head, tail) {
  if (tail === undefined) return head;
  const out = new Uint8Array(head.length + tail.length);
  out.set(head);
  out.set(tail, head.length);
  return out;
}

// A post entry as stored: what AuthorLog and the feed need (the public key is in the envelope).
function postRecord(entry) {
  const { publicKey, ...rest } = entry;
  return rest;
}

export class ContentStore {
  /**
   * `db`: an open idb database (store.js IdbStore.db), or null for memory only.
   * @param {import("idb").IDBPDatabase | null} [db]
   */
  constructor(db = null) {
    this.db = db;
    // Chunks go through the plain IndexedDB API: one promise per transaction, not one per
    // request (a 64 MiB transfer makes ~4,000 requests on each side).
    this.raw = db ? unwrap(db) : null;
    this.persistent = db !== null;
    this.recent = new Map(); // chunk id -> bytes written (oldest first), RECENT_BYTES at most
    this.recentBytes = 0;
    if (!db)
      this.mem = {
        files: new Map(),
        chunks: new Map(),
        posts: new Map(),
        peerkeys: new Map(),
        own: null,
        shards: new Map(),
        outbox: new Map(),
        mailseen: new Map(),
      };
  }

  async #write(fn) {
    try {
      return await fn();
    } catch (error) {
      if (isQuota(error)) throw new StorageFullError("the browser refused to store more data (quota exceeded)");
      throw error;
    }
  }

  // --- files ---

  async getFile(id) {
    return this.db ? this.db.get("files", id) : structuredClone(this.mem.files.get(id));
  }

  async listFiles() {
    return this.db ? this.db.getAll("files") : [...this.mem.files.values()].map((r) => structuredClone(r));
  }

  putFile(record) {
    if (!this.db) {
      this.mem.files.set(record.id, structuredClone(record));
      return Promise.resolve();
    }
    return this.#write(() => this.db.put("files", record));
  }

  /** Forget a file and the chunks listed (chunks are per file: key and file id are). */
  async deleteFile(id, chunkIds = []) {
    if (!this.db) {
      this.mem.files.delete(id);
      for (const c of chunkIds) this.mem.chunks.delete(c);
      return;
    }
    for (const c of chunkIds) this.#forget(c);
    const tx = this.db.transaction(["files", "chunks"], "readwrite");
    const chunks = tx.objectStore("chunks");
    await Promise.all([tx.objectStore("files").delete(id), ...chunkIds.flatMap((c) => [chunks.delete(c), chunks.delete(c + TAIL)]), tx.done]);
  }

  // --- chunks ---

  /** Store verified chunks [{id, data}] in one transaction. */
  putChunks(chunks) {
    if (!this.db) {
      for (const { id, data } of chunks) this.mem.chunks.set(id, own(data));
      return Promise.resolve();
    }
    const written = this.#write(
      () =>
        new Promise((resolve, reject) => {
          const tx = this.raw.transaction("chunks", "readwrite");
          const store = tx.objectStore("chunks");
          for (const { id, data } of chunks) {
            if (data.length <= INLINE_BYTES) store.put(own(data), id);
            else {
              store.put(data.slice(0, INLINE_BYTES), id);
              store.put(data.slice(INLINE_BYTES), id + TAIL);
            }
          }
          tx.oncomplete = () => resolve();
          tx.onerror = () => reject(tx.error);
          tx.onabort = () => reject(tx.error ?? new Error("transaction aborted"));
        }),
    );
    // Kept in memory once stored (what failed to store is not served from here either).
    return written.then(() => {
      for (const { id, data } of chunks) this.#remember(id, data);
    });
  }

  #remember(id, data) {
    this.#forget(id);
    if (data.byteLength > RECENT_BYTES) return;
    this.recent.set(id, data);
    this.recentBytes += data.byteLength;
    for (const [old, bytes] of this.recent) {
      if (this.recentBytes <= RECENT_BYTES) break;
      this.recent.delete(old);
      this.recentBytes -= bytes.byteLength;
    }
  }

  #forget(id) {
    const bytes = this.recent.get(id);
    if (bytes === undefined) return;
    this.recent.delete(id);
    this.recentBytes -= bytes.byteLength;
  }

  /** Chunk bytes for each id (undefined where not held), one transaction: what IndexedDB holds. */
  async getChunks(ids) {
    return (await this.#readParts(ids)).map((parts) => (parts === undefined ? undefined : join(...parts)));
  }

  /** Each chunk as pieces to send ([bytes], [head] or [head, tail]; undefined: not held): the
   * chunks written last from memory, the rest from IndexedDB in one transaction. */
  async getChunkParts(ids) {
    if (!this.db || this.recent.size === 0) return this.#readParts(ids);
    const out = ids.map((id) => {
      const bytes = this.recent.get(id);
      return bytes === undefined ? undefined : [bytes];
    });
    const misses = ids.filter((_, i) => out[i] === undefined);
    if (misses.length === 0) return out;
    const read = await this.#readParts(misses);
    let next = 0;
    return out.map((parts) => parts ?? read[next++]);
  }

  #readParts(ids) {
    if (!this.db) return Promise.resolve(ids.map((id) => (this.mem.chunks.has(id) ? [this.mem.chunks.get(id)] : undefined)));
    return new Promise((resolve, reject) => {
      const tx = this.raw.transaction("chunks", "readonly");
      const store = tx.objectStore("chunks");
      const heads = new Array(ids.length);
      const tails = new Array(ids.length);
      ids.forEach((id, i) => {
        store.get(id).onsuccess = (e) => (heads[i] = /** @type {IDBRequest} */ (e.target).result);
        store.get(id + TAIL).onsuccess = (e) => (tails[i] = /** @type {IDBRequest} */ (e.target).result);
      });
      tx.oncomplete = () =>
        resolve(heads.map((head, i) => (head === undefined ? undefined : tails[i] === undefined ? [asArray(head)] : [asArray(head), asArray(tails[i])])));
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error("transaction aborted"));
    });
  }

  /** Indices i for which chunkIds[i] is stored. */
  heldIndices(chunkIds) {
    if (!this.db) return Promise.resolve(chunkIds.flatMap((id, i) => (this.mem.chunks.has(id) ? [i] : [])));
    // The plain API: one promise for the transaction, not one per chunk (a download's start
    // and end ask for every chunk of the file).
    return new Promise((resolve, reject) => {
      const tx = this.raw.transaction("chunks", "readonly");
      const store = tx.objectStore("chunks");
      const held = new Uint8Array(chunkIds.length);
      chunkIds.forEach((id, i) => {
        store.getKey(id).onsuccess = (e) => {
          if (/** @type {IDBRequest} */ (e.target).result !== undefined) held[i] = 1;
        };
      });
      tx.oncomplete = () => resolve(chunkIds.flatMap((_, i) => (held[i] ? [i] : [])));
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error("transaction aborted"));
    });
  }

  // --- posts ---

  putPost(entry) {
    const record = postRecord(entry);
    if (!this.db) {
      this.mem.posts.set(`${record.author}/${record.seq}`, record);
      return Promise.resolve();
    }
    return this.#write(() => this.db.put("posts", record));
  }

  /** Every stored entry in author then seq order (the key order). */
  async loadPosts() {
    if (this.db) return this.db.getAll("posts");
    return [...this.mem.posts.values()].sort((a, b) => (a.author < b.author ? -1 : a.author > b.author ? 1 : a.seq - b.seq));
  }

  /** One author's stored entries from `fromSeq` on, in seq order. */
  async loadPostsOf(author, fromSeq = 0) {
    if (this.db) return this.db.getAll("posts", IDBKeyRange.bound([author, fromSeq], [author, Number.MAX_SAFE_INTEGER]));
    return [...this.mem.posts.values()].filter((r) => r.author === author && r.seq >= fromSeq).sort((a, b) => a.seq - b.seq);
  }

  // --- X25519 keys ---

  putPeerKey(record) {
    if (!this.db) {
      this.mem.peerkeys.set(record.peerId, record);
      return Promise.resolve();
    }
    return this.#write(() => this.db.put("peerkeys", record));
  }

  async loadPeerKeys() {
    return this.db ? this.db.getAll("peerkeys") : [...this.mem.peerkeys.values()];
  }

  // --- the outbox (content/outbox.js) and mail ids taken (content/mail.js) ---

  async loadOutbox() {
    return this.db ? this.db.getAll("outbox") : [...this.mem.outbox.values()].map((r) => structuredClone(r));
  }

  /** Write changed items and delete cleared ones in one transaction. */
  async saveOutbox(put, remove = []) {
    if (!this.db) {
      for (const item of put) this.mem.outbox.set(item.id, structuredClone(item));
      for (const id of remove) this.mem.outbox.delete(id);
      return;
    }
    await this.#write(async () => {
      const tx = this.db.transaction("outbox", "readwrite");
      await Promise.all([...put.map((item) => tx.store.put(item)), ...remove.map((id) => tx.store.delete(id))]);
      await tx.done;
    });
  }

  async mailSeen(id) {
    return this.db ? (await this.db.get("mailseen", id)) !== undefined : this.mem.mailseen.has(id);
  }

  async putMailSeen(id, at) {
    if (this.db) await this.#write(() => this.db.put("mailseen", { id, at }));
    else this.mem.mailseen.set(id, { id, at });
  }

  /** Forget ids taken before `before` (their mail has expired everywhere); how many. */
  async pruneMailSeen(before) {
    const all = this.db ? await this.db.getAll("mailseen") : [...this.mem.mailseen.values()];
    const old = all.filter((r) => r.at < before).map((r) => r.id);
    if (this.db) {
      const tx = this.db.transaction("mailseen", "readwrite");
      await Promise.all(old.map((id) => tx.store.delete(id)));
      await tx.done;
    } else for (const id of old) this.mem.mailseen.delete(id);
    return old.length;
  }

  // --- guardians and recovery (content/guardians.js): one JSON value per role ---

  async getShardState(key) {
    return this.db ? this.db.get("shards", key) : structuredClone(this.mem.shards.get(key));
  }

  async putShardState(key, value) {
    if (this.db) await this.#write(() => this.db.put("shards", value, key));
    else this.mem.shards.set(key, structuredClone(value));
  }

  async deleteShardState(key) {
    if (this.db) await this.db.delete("shards", key);
    else this.mem.shards.delete(key);
  }

  async getOwnKey() {
    return this.db ? this.db.get("identity", OWN_XKEY) : this.mem.own;
  }

  async putOwnKey(record) {
    if (this.db) await this.db.put("identity", record, OWN_XKEY);
    else this.mem.own = record;
  }

  // --- space ---

  /** { usage, quota } in bytes, or null when the browser does not say. */
  async estimate() {
    try {
      const { usage, quota } = await navigator.storage.estimate();
      return Number.isFinite(quota) ? { usage: usage ?? 0, quota } : null;
    } catch {
      return null;
    }
  }

  /** Throws StorageFullError when `bytes` more would not fit (with a margin for the rest). */
  async reserve(bytes, what) {
    const estimate = await this.estimate();
    if (!estimate) return;
    const free = estimate.quota - estimate.usage;
    const margin = 1024 * 1024 + bytes * 0.02;
    if (bytes + margin > free) {
      const mb = (n) => `${(Math.max(0, n) / 1e6).toFixed(1)} MB`;
      throw new StorageFullError(
        `Not enough browser storage for ${what}: it needs ${mb(bytes)}, ${mb(free)} free. Delete files you no longer need, or let this site use more storage.`,
      );
    }
  }
}
