// ContentStore keeps the chunks written last in memory for peers' reads (RECENT_BYTES), on a
// fake IndexedDB: what it serves from memory, what it still reads, eviction, deletion, and
// that neither a failed write nor the assembly (which checks what storage holds) uses it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ContentStore, INLINE_BYTES, RECENT_BYTES } from "../../static/swarm/adapters/contentstore.js";

const CHUNK = 65_552;

// The plain IndexedDB API as contentstore.js uses it for chunks: one transaction, put/get
// requests, oncomplete (or onabort with `failWrites`), counting the reads.
function fakeIdb({ failWrites = false } = {}) {
  const data = new Map();
  const raw = {
    data,
    reads: 0,
    failWrites,
    transaction(_store, mode) {
      const tx = { oncomplete: null, onerror: null, onabort: null, error: null };
      const steps = [];
      tx.objectStore = () => ({
        put(value, key) {
          steps.push(() => data.set(key, value));
        },
        getKey(key) {
          const request = { onsuccess: null };
          steps.push(() => request.onsuccess?.({ target: { result: data.has(key) ? key : undefined } }));
          return request;
        },
        get(key) {
          raw.reads += 1;
          const request = { onsuccess: null };
          steps.push(() => request.onsuccess?.({ target: { result: data.get(key) } }));
          return request;
        },
      });
      setTimeout(() => {
        if (raw.failWrites && mode === "readwrite") {
          tx.error = new Error("the transaction was aborted");
          tx.onabort?.();
          return;
        }
        for (const step of steps) step();
        tx.oncomplete?.();
      }, 0);
      return tx;
    },
  };
  // The idb-wrapped side (deleteFile): a transaction with promise requests and `done`.
  const db = {
    transaction: () => {
      const store = () => ({ delete: async (key) => data.delete(key) });
      return { objectStore: store, done: Promise.resolve() };
    },
  };
  const store = new ContentStore(null);
  Object.assign(store, { db, raw, persistent: true });
  return store;
}

const chunk = (n) => new Uint8Array(CHUNK).fill(n);

test("chunks just written are served to peers from memory, the rest from IndexedDB", async () => {
  const store = fakeIdb();
  await store.putChunks([
    { id: "a", data: chunk(1) },
    { id: "b", data: chunk(2) },
  ]);
  assert.equal(store.raw.data.size, 4, "stored as head and tail in IndexedDB");
  const parts = await store.getChunkParts(["a", "b"]);
  assert.equal(store.raw.reads, 0, "no IndexedDB read for chunks in memory");
  assert.deepEqual(
    parts.map((p) => p[0][0]),
    [1, 2],
  );
  store.recent.clear();
  store.recentBytes = 0;
  const read = await store.getChunkParts(["b", "x"]);
  assert.equal(store.raw.reads, 4, "misses are read: head and tail of each");
  assert.equal(read[0][0].length, INLINE_BYTES);
  assert.equal(read[1], undefined, "a chunk held nowhere is undefined");
});

test("a read mixing memory and IndexedDB keeps the order asked", async () => {
  const store = fakeIdb();
  await store.putChunks([{ id: "old", data: chunk(7) }]);
  store.recent.clear();
  store.recentBytes = 0;
  await store.putChunks([{ id: "new", data: chunk(9) }]);
  const parts = await store.getChunkParts(["old", "new", "none"]);
  assert.equal(store.raw.reads, 4, "only the two chunks not in memory are read (head and tail each)");
  assert.equal(parts[0][0][0], 7);
  assert.equal(parts[1][0][0], 9);
  assert.equal(parts[2], undefined);
});

test("memory holds RECENT_BYTES at most, the oldest chunks leave first", async () => {
  const store = fakeIdb();
  const count = Math.floor(RECENT_BYTES / CHUNK) + 10;
  for (let i = 0; i < count; i += 32) {
    const batch = [];
    for (let j = i; j < Math.min(count, i + 32); j++) batch.push({ id: `c${j}`, data: chunk(j % 256) });
    await store.putChunks(batch);
  }
  assert.ok(store.recentBytes <= RECENT_BYTES, `${store.recentBytes} bytes kept`);
  assert.ok(store.recentBytes > RECENT_BYTES - CHUNK, "and it is full");
  assert.equal(store.recent.has("c0"), false, "the first written left");
  assert.equal(store.recent.has(`c${count - 1}`), true, "the last written stays");
});

test("a deleted file's chunks leave memory too", async () => {
  const store = fakeIdb();
  await store.putChunks([{ id: "a", data: chunk(1) }]);
  await store.deleteFile("file", ["a"]);
  assert.equal(store.recentBytes, 0);
  assert.deepEqual(await store.getChunkParts(["a"]), [undefined], "gone from both");
});

test("a write that failed is not served from memory", async () => {
  const store = fakeIdb({ failWrites: true });
  await assert.rejects(store.putChunks([{ id: "a", data: chunk(1) }]), /aborted/);
  assert.equal(store.recent.size, 0);
  store.raw.failWrites = false;
  assert.deepEqual(await store.getChunkParts(["a"]), [undefined]);
});

test("the assembly reads what IndexedDB holds, not memory (a lost write is fetched again)", async () => {
  const store = fakeIdb();
  await store.putChunks([{ id: "a", data: chunk(1) }]);
  store.raw.data.clear(); // the browser lost it
  assert.deepEqual(await store.getChunks(["a"]), [undefined]);
  assert.equal((await store.getChunkParts(["a"]))[0][0][0], 1, "peers are still served the bytes");
});

test("heldIndices says which chunks IndexedDB holds, in one transaction", async () => {
  const store = fakeIdb();
  await store.putChunks([
    { id: "b", data: chunk(2) },
    { id: "d", data: chunk(4) },
  ]);
  assert.deepEqual(await store.heldIndices(["a", "b", "c", "d"]), [1, 3]);
  store.raw.data.clear();
  assert.deepEqual(await store.heldIndices(["a", "b", "c", "d"]), [], "what memory keeps is not counted as held");
});
