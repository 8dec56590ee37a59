// Chunks verified on receipt are written in batches ("group commit"): one transaction at a
// time, holding everything that arrived while the previous one ran. A transaction per chunk
// would cost several times more.
const MAX_WRITE_BATCH = 128; // chunks per transaction (16 MiB at most)

export class ChunkWriter {
  /** `store`: anything with putChunks([{id, data}]) (contentstore.js). */
  constructor(store) {
    this.store = store;
    this.pending = [];
    this.running = null; // the transaction in progress (a promise)
  }

  add(id, data) {
    return new Promise((resolve, reject) => {
      this.pending.push({ id, data, resolve, reject });
      this.running ??= this.#run();
    });
  }

  /** Resolves when everything added so far is written (or failed). */
  async flush() {
    while (this.running) await this.running;
  }

  async #run() {
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, MAX_WRITE_BATCH);
      try {
        await this.store.putChunks(batch);
        for (const item of batch) item.resolve();
      } catch (error) {
        for (const item of batch) item.reject(error);
      }
    }
    this.running = null;
  }
}
