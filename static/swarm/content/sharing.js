// Sharing a file: checked, encrypted chunk by chunk (a fresh key and file id), stored, and
// its manifest signed (docs/protocol.md "Files"). The jobs in progress are listed for the UI
// (name, size, bytes done, phase).
import { chunkCount, encryptChunks, MAX_FILE_SIZE, newFileId, newFileKey, TAG_BYTES } from "../protocol/chunks.js";
import { isValidName, makeManifest, MAX_NAME_BYTES, normalizeMime, verifyManifest } from "../protocol/manifest.js";
import { FileError } from "./errors.js";

const WRITE_BATCH = 32; // chunks per IndexedDB transaction

// A browser's File.name made acceptable to the manifest (docs/protocol.md "Manifest").
export function safeName(name) {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
  let out = String(name ?? "").replace(/[\u0000-\u001f\u007f\u202a-\u202e\u2066-\u2069/\\]/g, "_");
  if (!out.isWellFormed()) out = out.toWellFormed();
  while (new TextEncoder().encode(out).length > MAX_NAME_BYTES) out = out.slice(0, -1);
  return isValidName(out) ? out : "file";
}

export class Sharing {
  /** `store`: the content store; `changed()`: the jobs moved on; `log(level, code, message)`. */
  constructor({ store, clock, changed, log }) {
    this.store = store;
    this.clock = clock;
    this.changed = changed;
    this.log = log;
    this.jobs = new Map(); // temporary id -> { name, size, done, phase }
    this.serial = 0;
  }

  /**
   * Encrypt, store and sign `file` with `signer()`; `keep(record)` saves the new record (still
   * listed as a job until it is done). Resolves the record.
   */
  async share(file, { signer, keep }) {
    if (file.size > MAX_FILE_SIZE) throw new FileError("too_large", `files are at most ${MAX_FILE_SIZE / 1024 / 1024} MiB`);
    const name = safeName(file.name);
    const temp = `sharing-${++this.serial}`;
    const job = { name, size: file.size, done: 0, phase: "checking space" };
    this.jobs.set(temp, job);
    this.changed();
    try {
      const count = chunkCount(file.size);
      await this.store.reserve(file.size + count * TAG_BYTES, `"${name}"`);
      const key = newFileKey();
      const fileId = newFileId();
      job.phase = "encrypting";
      const ids = [];
      let batch = [];
      for await (const chunk of encryptChunks(file, { key, fileId })) {
        ids.push(chunk.id);
        batch.push({ id: chunk.id, data: chunk.ciphertext });
        job.done += chunk.ciphertext.length - TAG_BYTES;
        if (batch.length >= WRITE_BATCH) {
          await this.store.putChunks(batch);
          batch = [];
          this.changed();
        }
      }
      if (batch.length) await this.store.putChunks(batch);
      job.phase = "signing";
      const now = this.clock();
      const envelope = await makeManifest(
        signer(),
        { fileId, size: file.size, chunks: ids.map((id) => ({ id })) },
        { name, mime: normalizeMime(file.type), createdAt: now },
      );
      const manifest = await verifyManifest(envelope);
      const record = {
        id: manifest.id,
        role: "shared",
        state: "complete",
        name,
        mime: manifest.mime,
        size: file.size,
        chunkCount: count,
        author: manifest.author,
        createdAt: manifest.createdAt,
        addedAt: now,
        fileId,
        key,
        envelope,
        held: count,
        sha256: null,
        recipients: [],
      };
      await keep(record);
      this.log("info", "file_shared", `${name}: ${count} chunks, manifest ${manifest.id}`);
      return record;
    } catch (error) {
      this.log("warn", error.code ?? "share_failed", `${name}: ${error.message}`);
      throw error;
    } finally {
      this.jobs.delete(temp);
      this.changed();
    }
  }
}
