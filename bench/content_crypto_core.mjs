// The content crypto measurement, shared by bench/content_crypto.mjs (Node) and
// bench/content_crypto_browser.py (Chromium): plain WebCrypto, no Node-only imports.
import { CHUNK_SIZE, checkChunkId, decryptChunk, digestId, encryptChunk, importFileKey, newFileId, newFileKey } from "../static/swarm/protocol/chunks.js";

// Seal a `mib` MiB file into 64 KiB chunks and hash each (sender), then check each id and open
// it (receiver), one chunk at a time and with several in flight; `log` receives each line.
export async function run({ mib = 64, repeat = 3, log = console.log } = {}) {
  const size = mib * 2 ** 20;
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
  const count = Math.ceil(size / CHUNK_SIZE);
  const plains = Array.from({ length: count }, (_, i) => data.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE));
  const key = await importFileKey(newFileKey());
  const fileId = newFileId();
  const sealed = [];
  for (let i = 0; i < count; i++) sealed.push(await encryptChunk(key, fileId, i, plains[i]));
  const ids = await Promise.all(sealed.map((c) => digestId(c)));

  // job(i) for every chunk with at most `depth` in flight.
  async function pipeline(depth, job) {
    let next = 0;
    const worker = async () => {
      while (next < count) await job(next++);
    };
    await Promise.all(Array.from({ length: depth }, worker));
  }

  const results = {};
  async function best(label, work) {
    let fastest = Infinity;
    for (let r = 0; r < repeat; r++) {
      const start = performance.now();
      await work();
      fastest = Math.min(fastest, performance.now() - start);
    }
    const rate = size / (fastest / 1000) / 1e6;
    results[label] = rate;
    log(`  ${label.padEnd(44)} ${rate.toFixed(1).padStart(8)} MB/s  (${fastest.toFixed(0)} ms for ${mib} MiB)`);
  }

  log(`  ${count} chunks of ${CHUNK_SIZE} bytes, best of ${repeat}`);
  for (const depth of [1, 4, 16]) {
    await best(`encrypt + hash (sender), ${depth} in flight`, () => pipeline(depth, async (i) => digestId(await encryptChunk(key, fileId, i, plains[i]))));
    await best(`verify id + decrypt (receiver), ${depth} in flight`, () =>
      pipeline(depth, async (i) => {
        await checkChunkId(ids[i], sealed[i]);
        await decryptChunk(key, fileId, i, sealed[i]);
      }),
    );
  }
  await best("bare AES-256-GCM encrypt, 1 in flight", () =>
    pipeline(1, (i) => crypto.subtle.encrypt({ name: "AES-GCM", iv: new Uint8Array(12) }, key, plains[i])),
  );
  await best("bare SHA-256, 1 in flight", () => pipeline(1, (i) => crypto.subtle.digest("SHA-256", sealed[i])));
  return results;
}
