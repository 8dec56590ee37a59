// Opening a complete file: its chunks read back from the store and decrypted in order into
// the plaintext, offered as an object URL. The plaintext of a download that just completed is
// kept until it is opened (no second read); object URLs are kept for the last few files opened.
import { CHUNK_SIZE, decryptChunk, importFileKey } from "../protocol/chunks.js";
import { hex } from "../protocol/encoding.js";
import { verifyManifest } from "../protocol/manifest.js";
import { FileError } from "./errors.js";

const ASSEMBLE_BATCH = 64;
const KEEP_PLAINTEXTS = 3; // object URLs of opened files kept ready

/**
 * Decrypt a stored file in order: { bytes, sha256 (hex of the plaintext), missing }. `into`
 * and `opened` (per index, 1 = already decrypted there) skip chunks decrypted as they
 * arrived. Chunks not in the store are listed in `missing` (then there is no sha256): the
 * caller fetches them again, a lost chunk is never the end of a download.
 */
export async function assemble(store, manifest, key, { into = null, opened = null } = {}) {
  const cryptoKey = key instanceof CryptoKey ? key : await importFileKey(key);
  const out = into ?? new Uint8Array(manifest.size);
  const missing = [];
  for (let start = 0; start < manifest.chunks.length; start += ASSEMBLE_BATCH) {
    const indices = [];
    for (let i = start; i < Math.min(start + ASSEMBLE_BATCH, manifest.chunks.length); i++) if (!opened?.[i]) indices.push(i);
    if (indices.length === 0) continue;
    const datas = await store.getChunks(indices.map((i) => manifest.chunks[i]));
    const plains = await Promise.all(datas.map((data, k) => (data === undefined ? null : decryptChunk(cryptoKey, manifest.fileId, indices[k], data))));
    plains.forEach((plain, k) => {
      if (plain === null) missing.push(indices[k]);
      else out.set(plain, indices[k] * CHUNK_SIZE);
    });
  }
  if (missing.length > 0) return { bytes: null, sha256: null, missing };
  const sha256 = hex(new Uint8Array(await crypto.subtle.digest("SHA-256", out)));
  return { bytes: out, sha256, missing };
}

export class Opener {
  /** `store`: the content store the chunks are read from. */
  constructor(store) {
    this.store = store;
    this.blobs = new Map(); // manifest id -> object URL of the plaintext
    this.fresh = new Map(); // manifest id -> plaintext of a download just completed (until opened)
  }

  /** The object URL made when `id` was last opened, if still kept. */
  cached(id) {
    return this.blobs.get(id);
  }

  /** Keep the plaintext of a download that just completed: the Blob (a copy) is made when opened. */
  keep(id, bytes) {
    this.fresh.set(id, bytes);
    for (const old of this.fresh.keys()) if (this.fresh.size > KEEP_PLAINTEXTS) this.fresh.delete(old);
  }

  /**
   * The plaintext of complete file `record` as { url, missing: [] }, or { url: null, missing }
   * when the store lost chunks (indices); FileError(corrupt) when it does not match its checksum.
   */
  async open(record) {
    const fresh = this.fresh.get(record.id);
    if (fresh) {
      this.fresh.delete(record.id);
      return { url: this.#blob(record, fresh), missing: [] };
    }
    const manifest = await verifyManifest(record.envelope, { expectedId: record.id });
    const { bytes, sha256, missing } = await assemble(this.store, manifest, record.key);
    if (missing.length > 0) return { url: null, missing };
    if (record.sha256 && record.sha256 !== sha256) throw new FileError("corrupt", "the stored file does not match its checksum");
    return { url: this.#blob(record, bytes), missing: [] };
  }

  /** Drop what is kept of `id` (the file was deleted). */
  forget(id) {
    const url = this.blobs.get(id);
    if (url) URL.revokeObjectURL(url);
    this.blobs.delete(id);
    this.fresh.delete(id);
  }

  // Plaintexts are kept for the few files opened last only (they can be large).
  #blob(record, bytes) {
    const url = URL.createObjectURL(new Blob([bytes], { type: record.mime ?? "application/octet-stream" }));
    this.blobs.set(record.id, url);
    for (const [id, old] of this.blobs) {
      if (this.blobs.size <= KEEP_PLAINTEXTS) break;
      URL.revokeObjectURL(old);
      this.blobs.delete(id);
    }
    return url;
  }
}
