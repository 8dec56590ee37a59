// PostService (content/feed.js) in two tabs of one browser: they share the identity and the
// stored log, and sign their entries one at a time under a lock after reading what the other
// stored, so they never fork the log (two entries with one seq would overwrite each other in
// IndexedDB, whose key is [author, seq]). A fork from elsewhere is kept for the feed to show.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ContentStore } from "../../static/swarm/adapters/contentstore.js";
import { MemoryStore } from "../../static/swarm/adapters/store.js";
import { PostService } from "../../static/swarm/content/feed.js";
import { signerFromSeed } from "../../static/swarm/protocol/ed25519.js";
import { peerIdForKey } from "../../static/swarm/protocol/encoding.js";
import { AuthorLog, nextPost } from "../../static/swarm/protocol/postlog.js";
import { verifyPost } from "../../static/swarm/protocol/posts.js";

const T0 = Date.UTC(2026, 11, 7);

class FakePeer extends EventTarget {
  constructor(peerId, signer) {
    super();
    this.peerId = peerId;
    this.identity = { signer };
    this.node = { gossipChecks: new Map() };
    this.store = new MemoryStore();
    this.logs = [];
  }

  connectedPeers() {
    return [];
  }

  async publish() {}

  send() {
    return false;
  }

  log(level, area, code, message) {
    this.logs.push({ level, area, code, message });
  }

  contentViolation() {}
}

// navigator.locks as browsers give it: one holder per name at a time, in request order.
function fakeLocks() {
  const tails = new Map();
  return {
    request(name, fn) {
      const run = (tails.get(name) ?? Promise.resolve()).then(() => fn());
      tails.set(
        name,
        run.catch(() => {}),
      );
      return run;
    },
  };
}

async function tabs(count) {
  const signer = await signerFromSeed(new Uint8Array(32).fill(7));
  const peerId = await peerIdForKey(signer.publicKey);
  const store = new ContentStore(null); // the browser's IndexedDB, shared by its tabs
  let clock = T0;
  const out = [];
  for (let i = 0; i < count; i++) {
    const peer = new FakePeer(peerId, signer);
    out.push(await new PostService({ peer, store, clock: () => clock++ }).start());
  }
  return { peerId, signer, store, tabs: out };
}

test("two tabs posting at the same moment sign one after the other: no fork, nothing overwritten", async (t) => {
  const saved = Object.getOwnPropertyDescriptor(globalThis, "navigator");
  Object.defineProperty(globalThis, "navigator", { value: { locks: fakeLocks() }, configurable: true });
  t.after(() => (saved ? Object.defineProperty(globalThis, "navigator", saved) : delete globalThis.navigator));
  const {
    peerId,
    store,
    tabs: [one, two],
  } = await tabs(2);
  await Promise.all([one.post("from tab one"), two.post("from tab two"), one.post("tab one again"), two.post("tab two again")]);
  const stored = await store.loadPostsOf(peerId);
  assert.deepEqual(
    stored.map((e) => e.seq),
    [0, 1, 2, 3],
  );
  assert.deepEqual(stored.map((e) => e.text).sort(), ["from tab one", "from tab two", "tab one again", "tab two again"]);
  // Each entry chains to the one before it: one log, as any peer will verify it.
  const log = new AuthorLog(peerId);
  for (const entry of stored) log.append(entry);
  assert.equal(log.length, 4);
  assert.equal(one.forks.length + two.forks.length, 0);
});

test("without a lock (an old browser), tabs that post in turn still read each other's entries first", async () => {
  const {
    peerId,
    store,
    tabs: [one, two],
  } = await tabs(2);
  await one.post("a");
  await two.post("b");
  await one.post("c");
  assert.deepEqual(
    (await store.loadPostsOf(peerId)).map((e) => [e.seq, e.text]),
    [
      [0, "a"],
      [1, "b"],
      [2, "c"],
    ],
  );
  assert.equal(one.posts().length, 3, "tab one shows what tab two wrote");
});

test("a fork made elsewhere (another device) is kept for the feed with what the other entry said", async () => {
  const {
    signer,
    peerId,
    tabs: [tab],
  } = await tabs(1);
  await tab.post("written here");
  // Another device of the same identity wrote a different seq 0 while apart.
  const elsewhere = await verifyPost(await nextPost(new AuthorLog(peerId), signer, { now: T0 + 5, text: "written on the laptop" }), { now: T0 + 10 });
  tab.peer.dispatchEvent(new CustomEvent("message", { detail: { topic: "post", data: elsewhere.envelope, from: "pRelay" } }));
  await tab.inbox;
  assert.equal(tab.forks.length, 1);
  assert.deepEqual(
    { author: tab.forks[0].author, seq: tab.forks[0].seq, otherText: tab.forks[0].otherText },
    { author: peerId, seq: 0, otherText: "written on the laptop" },
  );
  assert.deepEqual(
    tab.posts().map((p) => p.text),
    ["written here"],
    "the log rules keep the first entry seen",
  );
  assert.ok(tab.peer.logs.some((l) => l.code === "fork"));
});
