// KeyShare (static/swarm/content/keyshare.js): the gossip checks it installs for its three topics,
// and sharing a file key with one named peer over a small in-memory gossip bus whose peers
// run those checks before delivering (as SwarmNode does). Real crypto; ContentStore in memory.
import assert from "node:assert/strict";
import { test } from "node:test";

import { newFileId, newFileKey } from "../../static/swarm/protocol/chunks.js";
import { ContentStore } from "../../static/swarm/adapters/contentstore.js";
import { generateSigner } from "../../static/swarm/protocol/ed25519.js";
import { b64urlEncode, peerIdForKey } from "../../static/swarm/protocol/encoding.js";
import { KeyShare, TOPIC_WRAPPED, TOPIC_XKEY, TOPIC_XKEY_REQ } from "../../static/swarm/content/keyshare.js";
import { unwrapFileKey } from "../../static/swarm/protocol/keywrap.js";

const manifestId = () => b64urlEncode(crypto.getRandomValues(new Uint8Array(32)));

// A gossip bus: publish() runs each other peer's check for the topic, then delivers.
class Bus {
  constructor() {
    this.peers = [];
    this.published = [];
  }

  async publish(from, topic, data) {
    this.published.push({ from: from.peerId, topic, data });
    for (const peer of this.peers) {
      if (peer === from) continue;
      const check = peer.node.gossipChecks.get(topic);
      try {
        if (check) await check(data, Date.now());
      } catch (error) {
        peer.refused.push({ topic, code: error.code });
        continue;
      }
      peer.dispatchEvent(new CustomEvent("message", { detail: { topic, data, origin: from.peerId, from: from.peerId } }));
    }
  }
}

class FakePeer extends EventTarget {
  constructor(bus, signer, peerId) {
    super();
    this.bus = bus;
    this.identity = { signer };
    this.peerId = peerId;
    this.node = { gossipChecks: new Map() };
    this.logs = [];
    this.refused = [];
    bus.peers.push(this);
  }

  publish(topic, data) {
    return this.bus.publish(this, topic, data);
  }

  connectedPeers() {
    return this.bus.peers.filter((p) => p !== this).map((p) => ({ peerId: p.peerId }));
  }

  log(level, area, code, message, peerId = null) {
    this.logs.push({ level, area, code, message, peerId });
  }
}

class FakeFiles {
  constructor() {
    this.files = new Map();
  }

  async saveRecord(record) {
    this.files.set(record.id, record);
  }
}

async function member(bus) {
  const signer = await generateSigner();
  const peer = new FakePeer(bus, signer, await peerIdForKey(signer.publicKey));
  const store = new ContentStore(null);
  const files = new FakeFiles();
  const keys = await new KeyShare({ peer, store, files }).start();
  return { peer, store, files, keys };
}

// Delivery is asynchronous (listeners do not await): wait until cond() holds.
async function until(cond, what) {
  for (let i = 0; i < 200; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test("keyshare: the gossip checks of wrapped-key and xkey-req refuse malformed data with stable codes", async (t) => {
  const bus = new Bus();
  const a = await member(bus);
  t.after(() => a.keys.destroy());
  const checks = a.peer.node.gossipChecks;
  assert.deepEqual([...checks.keys()].sort(), [TOPIC_WRAPPED, TOPIC_XKEY, TOPIC_XKEY_REQ].sort());

  const wrapped = checks.get(TOPIC_WRAPPED);
  const good = { manifest: manifestId(), wrapped: { to: a.peer.peerId } };
  await wrapped(good); // well formed: the recipient opens it, anyone relays it
  const bodies = [
    null,
    [],
    "x",
    {},
    { manifest: good.manifest },
    { ...good, extra: 1 },
    { manifest: "short", wrapped: good.wrapped },
    { manifest: 7, wrapped: good.wrapped },
  ];
  for (const data of bodies) {
    await assert.rejects(
      async () => wrapped(data),
      (e) => e.code === "bad_body",
      JSON.stringify(data),
    );
  }
  for (const w of [null, "x", {}, { to: 5 }, { to: "pAAAA" }, { to: a.peer.peerId.toUpperCase() }]) {
    await assert.rejects(
      async () => wrapped({ manifest: good.manifest, wrapped: w }),
      (e) => e.code === "bad_wrapped_key",
      JSON.stringify(w),
    );
  }

  const request = checks.get(TOPIC_XKEY_REQ);
  await request({ peer_id: a.peer.peerId });
  for (const data of [null, {}, { peer_id: "nobody" }, { peer_id: a.peer.peerId, more: 1 }, { id: a.peer.peerId }]) {
    await assert.rejects(
      async () => request(data),
      (e) => e.code === "bad_body",
      JSON.stringify(data),
    );
  }

  // xkey: a signed announcement verifies; one altered after signing does not.
  const xkey = checks.get(TOPIC_XKEY);
  const own = await a.store.getOwnKey();
  await xkey(own.announcement, Date.now());
  const altered = structuredClone(own.announcement);
  altered.body.created_at = (altered.body.created_at ?? 0) + 1;
  await assert.rejects(
    async () => xkey(altered, Date.now()),
    (e) => e.code === "bad_signature",
  );
});

test("keyshare: A shares a file key with B only; B's key is asked for, remembered and the offer opens", async (t) => {
  const bus = new Bus();
  const [a, b, c] = [await member(bus), await member(bus), await member(bus)];
  t.after(() => {
    for (const m of [a, b, c]) m.keys.destroy();
  });
  const id = manifestId();
  const key = newFileKey();
  const fileId = newFileId();
  a.files.files.set(id, { id, name: "notes.txt", key, fileId, recipients: [] });

  await assert.rejects(a.keys.shareWith(id, "not-a-peer"), (e) => e.code === "bad_peer_id");
  await assert.rejects(a.keys.shareWith(manifestId(), b.peer.peerId), (e) => e.code === "not_held");

  assert.equal(a.keys.knows(b.peer.peerId), false);
  const offered = new Promise((resolve) => b.keys.addEventListener("offered", (e) => resolve(e.detail)));
  const wrapped = await a.keys.shareWith(id, b.peer.peerId);
  // A asked for B's key by gossip, B announced it, A stored it.
  assert.ok(bus.published.some((m) => m.from === a.peer.peerId && m.topic === TOPIC_XKEY_REQ && m.data.peer_id === b.peer.peerId));
  assert.ok(bus.published.some((m) => m.from === b.peer.peerId && m.topic === TOPIC_XKEY));
  assert.equal(a.keys.knows(b.peer.peerId), true);
  assert.equal(
    (await a.store.loadPeerKeys()).some((r) => r.peerId === b.peer.peerId),
    true,
  );
  assert.equal(wrapped.to, b.peer.peerId);
  assert.deepEqual(a.files.files.get(id).recipients, [b.peer.peerId]);

  const record = await offered;
  assert.deepEqual(
    { id: record.id, state: record.state, role: record.role, from: record.from, fileId: record.fileId },
    { id, state: "offered", role: "offered", from: a.peer.peerId, fileId },
  );
  assert.deepEqual(record.key, key);
  assert.equal(b.files.files.get(id), record);
  assert.ok(b.peer.logs.some((l) => l.code === "key_received"));
  // C saw the wrapped key go by but it is not for C: nothing offered, and C cannot open it.
  await until(() => bus.published.some((m) => m.topic === TOPIC_WRAPPED), "the wrapped key");
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(c.files.files.size, 0);
  assert.deepEqual(c.peer.logs, [], "C does not even try to open it");
  const cKey = await c.store.getOwnKey();
  await assert.rejects(unwrapFileKey(wrapped, { keyPair: cKey, peerId: c.peer.peerId }));

  // A second share to B reuses the known key: no new request.
  const requests = bus.published.filter((m) => m.topic === TOPIC_XKEY_REQ).length;
  await a.keys.shareWith(id, b.peer.peerId);
  assert.equal(bus.published.filter((m) => m.topic === TOPIC_XKEY_REQ).length, requests);
  assert.deepEqual(a.files.files.get(id).recipients, [b.peer.peerId]);
});

test("keyshare: a file B already holds is not replaced by an offer; B answers key requests at most every 30 s", async (t) => {
  const bus = new Bus();
  const [a, b] = [await member(bus), await member(bus)];
  t.after(() => {
    for (const m of [a, b]) m.keys.destroy();
  });
  const id = manifestId();
  a.files.files.set(id, { id, name: "x", key: newFileKey(), fileId: newFileId(), recipients: [] });
  const held = { id, state: "complete", role: "download", key: newFileKey() };
  b.files.files.set(id, held);
  await a.keys.shareWith(id, b.peer.peerId);
  await until(() => bus.published.some((m) => m.topic === TOPIC_WRAPPED), "the wrapped key");
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(b.files.files.get(id), held);

  const announces = () => bus.published.filter((m) => m.from === b.peer.peerId && m.topic === TOPIC_XKEY).length;
  const before = announces();
  await a.peer.publish(TOPIC_XKEY_REQ, { peer_id: b.peer.peerId });
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(announces(), before, "answered a request less than 30 s after the last");
});

test("keyshare: a request naming the peer is answered with its signed announcement; others are ignored", async (t) => {
  const bus = new Bus();
  const [a, b] = [await member(bus), await member(bus)];
  t.after(() => {
    for (const m of [a, b]) m.keys.destroy();
  });
  await a.peer.publish(TOPIC_XKEY_REQ, { peer_id: a.peer.peerId }); // not B: B stays silent
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(bus.published.filter((m) => m.topic === TOPIC_XKEY).length, 0);
  await a.peer.publish(TOPIC_XKEY_REQ, { peer_id: b.peer.peerId });
  await until(() => a.keys.knows(b.peer.peerId), "B's key at A");
  const [announcement] = bus.published.filter((m) => m.topic === TOPIC_XKEY);
  assert.equal(announcement.from, b.peer.peerId);
  assert.deepEqual(announcement.data, (await b.store.getOwnKey()).announcement);
  // Malformed gossip never reaches KeyShare: B's check refused it.
  await a.peer.publish(TOPIC_XKEY_REQ, { peer_id: "nobody" });
  assert.deepEqual(b.peer.refused.at(-1), { topic: TOPIC_XKEY_REQ, code: "bad_body" });
});

test("keyshare: an own key announced by another identity (a restored backup) is replaced; this identity's is kept", async (t) => {
  const bus = new Bus();
  const a = await member(bus);
  t.after(() => a.keys.destroy());
  const first = await a.store.getOwnKey();
  assert.equal(first.announcement.body.peer_id, a.peer.peerId);

  // Same identity, next start: the same key pair.
  const again = await new KeyShare({ peer: a.peer, store: a.store, files: a.files }).start();
  t.after(() => again.destroy());
  assert.deepEqual((await a.store.getOwnKey()).publicKey, first.publicKey);

  // The browser now holds another identity (same store): a pair announced by that one.
  const signer = await generateSigner();
  const restored = new FakePeer(bus, signer, await peerIdForKey(signer.publicKey));
  const keys = await new KeyShare({ peer: restored, store: a.store, files: a.files }).start();
  t.after(() => keys.destroy());
  const own = await a.store.getOwnKey();
  assert.equal(own.announcement.body.peer_id, restored.peerId);
  assert.notDeepEqual(own.publicKey, first.publicKey);
  await restored.node.gossipChecks.get(TOPIC_XKEY)(own.announcement, Date.now());
});
