// The outbox and mail in the page (content/outbox.js, content/mail.js) on fake pages and a fake
// clock, with real signatures, sealing and key wrapping, and a mailbox that behaves as the
// super-peer's does for pages (docs/protocol.md "Mail"): keeps mail for peers that are away,
// delivers it when they connect, deletes it on their acknowledgement and passes that on.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { ContentStore } from "../../static/swarm/adapters/contentstore.js";
import { MAIL_CAP, MailService, RELAY_CAP } from "../../static/swarm/content/mail.js";
import { OutboxService, TOPIC_WRAPPED_MAIL } from "../../static/swarm/content/outbox.js";
import { newFileId, newFileKey } from "../../static/swarm/protocol/chunks.js";
import { signerFromSeed } from "../../static/swarm/protocol/ed25519.js";
import { peerIdForKey } from "../../static/swarm/protocol/encoding.js";
import { keyAgreementPairFromIdentitySeed, unwrapFileKey, wrapFileKey } from "../../static/swarm/protocol/keywrap.js";
import { KIND_ACK, makeMail, parseMail } from "../../static/swarm/protocol/mail.js";

const T0 = Date.UTC(2026, 11, 7);
const running = [];

afterEach(() => {
  for (const service of running.splice(0)) service.destroy();
});

class Net {
  constructor() {
    this.pages = new Map();
    this.links = new Set();
    this.now = T0;
  }

  key(a, b) {
    return [a, b].sort().join("|");
  }

  connect(a, b) {
    if (this.links.has(this.key(a.peerId, b.peerId))) return;
    this.links.add(this.key(a.peerId, b.peerId));
    a.dispatchEvent(new CustomEvent("peer-open", { detail: { peerId: b.peerId, caps: b.caps } }));
    b.dispatchEvent(new CustomEvent("peer-open", { detail: { peerId: a.peerId, caps: a.caps } }));
  }

  disconnect(a) {
    for (const link of [...this.links]) {
      const [x, y] = link.split("|");
      if (x !== a.peerId && y !== a.peerId) continue;
      this.links.delete(link);
      const other = this.pages.get(x === a.peerId ? y : x);
      other?.dispatchEvent(new CustomEvent("peer-close", { detail: { peerId: a.peerId } }));
      a.dispatchEvent(new CustomEvent("peer-close", { detail: { peerId: other?.peerId } }));
    }
  }

  connected(a, b) {
    return this.links.has(this.key(a, b));
  }
}

class FakePeer extends EventTarget {
  constructor(net, ident, caps = ["gossip", "sync", MAIL_CAP]) {
    super();
    this.net = net;
    this.identity = ident;
    this.peerId = ident.peerId;
    this.caps = caps;
    this.logs = [];
    this.violations = [];
    this.sent = []; // { to, frame }
    net.pages.set(this.peerId, this);
  }

  send(to, frame) {
    if (!this.net.connected(this.peerId, to)) return false;
    this.sent.push({ to, frame });
    this.net.pages.get(to).dispatchEvent(new CustomEvent("frame", { detail: { peerId: this.peerId, frame: structuredClone(frame) } }));
    return true;
  }

  async publish() {}

  connectedPeers() {
    return [...this.net.pages.values()].filter((p) => this.net.connected(this.peerId, p.peerId)).map((p) => ({ peerId: p.peerId, caps: p.caps }));
  }

  contentViolation(peerId, code) {
    this.violations.push({ peerId, code });
  }

  log(level, area, code, message, peerId = null) {
    this.logs.push({ level, area, code, message, peerId });
  }
}

// The mailbox of a super-peer as pages see it.
class FakeMailbox extends FakePeer {
  constructor(net, ident) {
    super(net, ident, ["gossip", MAIL_CAP, RELAY_CAP]);
    this.held = new Map(); // "recipient|id" -> envelope
    this.addEventListener("frame", (e) => this.#frame(e.detail.frame).catch((error) => this.logs.push(error)));
    this.addEventListener("peer-open", (e) => {
      for (const [key, envelope] of [...this.held]) {
        const [to, , kind] = key.split("|");
        if (to === e.detail.peerId && this.send(to, { t: "mail", to, msg: envelope }) && kind === KIND_ACK) this.held.delete(key);
      }
    });
  }

  async #frame(frame) {
    if (frame.t !== "mail" || frame.to === this.peerId) return;
    const m = await parseMail(frame.msg, { now: this.net.now });
    if (m.kind === KIND_ACK) {
      for (const id of m.ids) this.held.delete(`${m.from}|${id}|mail`);
      if (!this.send(m.to, frame)) this.held.set(`${m.to}|${m.id}|${KIND_ACK}`, frame.msg);
      return;
    }
    this.held.set(`${m.to}|${m.id}|mail`, frame.msg);
    this.send(m.to, frame);
  }

  mailFor(peerId) {
    return [...this.held.keys()].filter((k) => k.startsWith(`${peerId}|`) && k.endsWith("|mail")).length;
  }
}

async function identity() {
  const seed = crypto.getRandomValues(new Uint8Array(32));
  const signer = await signerFromSeed(seed);
  const peerId = await peerIdForKey(signer.publicKey);
  return { peerId, signer, pair: await keyAgreementPairFromIdentitySeed(seed) };
}

// KeyShare's part: the page's X25519 pair, the keys it has met, wrapping and offers.
class FakeKeys extends EventTarget {
  constructor(peer, pair, directory, files) {
    super();
    this.peer = peer;
    this.own = pair;
    this.directory = directory; // peer id -> { x25519 } (what this page has heard)
    this.files = files;
    this.requested = [];
    this.offers = []; // { from, manifest, key }
  }

  knows(peerId) {
    return this.directory.has(peerId);
  }

  async keyOf(peerId) {
    const known = this.directory.get(peerId);
    if (!known) throw Object.assign(new Error("no key"), { code: "no_key" });
    return known;
  }

  requestKey(peerId) {
    this.requested.push(peerId);
  }

  learn(peerId, x25519) {
    this.directory.set(peerId, { x25519 });
    this.dispatchEvent(new CustomEvent("key", { detail: { peerId } }));
  }

  async wrapFor(manifestId, peerId) {
    const record = this.files.files.get(manifestId);
    return wrapFileKey(record.key, { fileId: record.fileId, recipient: peerId, recipientKey: this.directory.get(peerId).x25519 });
  }

  async takeWrapped(from, { manifest, wrapped }) {
    const key = await unwrapFileKey(wrapped, { keyPair: this.own, peerId: this.peer.peerId });
    this.offers.push({ from, manifest, key });
  }
}

async function page(net, { ident = null, store = null, directory = new Map(), files = null } = {}) {
  const id = ident ?? (await identity());
  const peer = new FakePeer(net, id);
  const content = store ?? new ContentStore(null);
  const fileSet = files ?? { files: new Map(), saveRecord: async () => {} };
  const keys = new FakeKeys(peer, id.pair, directory, fileSet);
  const clock = () => net.now;
  const mail = await new MailService({ peer, store: content, keys, clock }).start();
  const posts = new EventTarget();
  const outbox = await new OutboxService({ peer, store: content, mail, keys, files: fileSet, posts, clock }).start();
  running.push(mail, outbox);
  return { peer, id, content, keys, mail, outbox, posts, files: fileSet };
}

async function settle(...pages) {
  for (let i = 0; i < 8; i++) {
    for (const p of pages) {
      await p.mail?.inbox;
      await p.outbox?.queue;
    }
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

function holdFile(p, name = "notes.txt") {
  const manifest = `m${"A".repeat(42)}`.slice(0, 43);
  const record = { id: manifest, key: newFileKey(), fileId: newFileId(), name };
  p.files.files.set(manifest, record);
  return record;
}

const item = (p, id) => structuredClone(p.outbox.get(id));

test("a key for a peer who is away waits, goes to the mailbox, reaches it when it connects and comes back delivered", async () => {
  const net = new Net();
  const a = await page(net);
  const b = await page(net);
  const sp = new FakeMailbox(net, await identity());
  a.keys.learn(b.peer.peerId, b.id.pair.publicKey); // met before
  const file = holdFile(a);
  const sent = a.outbox.shareKey(file.id, b.peer.peerId);
  await settle(a, b);
  assert.equal(item(a, sent.id).state, "waiting");
  assert.equal(item(a, sent.id).reason, "no_route");
  // A super-peer connects: the mail goes into its mailbox.
  net.connect(a.peer, sp);
  await settle(a, b);
  assert.equal(item(a, sent.id).state, "sending");
  assert.deepEqual(item(a, sent.id).via, [sp.peerId]);
  assert.equal(sp.mailFor(b.peer.peerId), 1);
  // B connects to the super-peer an hour later; A has gone away meanwhile.
  net.disconnect(a.peer);
  net.now += 3_600_000;
  net.connect(b.peer, sp);
  await settle(a, b);
  assert.equal(b.keys.offers.length, 1);
  assert.equal(b.keys.offers[0].from, a.peer.peerId);
  assert.deepEqual(b.keys.offers[0].key, file.key);
  assert.equal(sp.mailFor(b.peer.peerId), 0, "the acknowledgement deleted the mail");
  assert.equal(item(a, sent.id).state, "sending", "A learns when it is back");
  net.connect(a.peer, sp);
  await settle(a, b);
  assert.equal(item(a, sent.id).state, "delivered");
  assert.deepEqual(item(a, sent.id).deliveredTo, [b.peer.peerId]);
  // Persisted as shown.
  const stored = await a.content.loadOutbox();
  assert.equal(stored.find((i) => i.id === sent.id).state, "delivered");
});

test("a tab closed between send and acknowledgement: the same mail is sent again and taken once", async () => {
  const net = new Net();
  const store = new ContentStore(null); // A's IndexedDB, kept across its tabs
  const ident = await identity();
  const directory = new Map();
  const files = { files: new Map(), saveRecord: async () => {} };
  let a = await page(net, { ident, store, directory, files });
  const b = await page(net);
  const sp = new FakeMailbox(net, await identity());
  a.keys.learn(b.peer.peerId, b.id.pair.publicKey);
  net.connect(a.peer, sp);
  const file = holdFile(a);
  const sent = a.outbox.shareKey(file.id, b.peer.peerId);
  await settle(a);
  assert.equal(item(a, sent.id).state, "sending");
  const first = structuredClone(item(a, sent.id).payload.envelope);
  // The tab dies; a new one of the same identity starts from storage.
  net.disconnect(a.peer);
  for (const service of [a.mail, a.outbox]) service.destroy();
  net.now += 5_000;
  a = await page(net, { ident, store, directory, files });
  assert.equal(item(a, sent.id).state, "sending");
  net.connect(a.peer, sp);
  await a.outbox.pump();
  await settle(a);
  assert.deepEqual(item(a, sent.id).payload.envelope, first, "the same signed message, not a new one");
  assert.equal(item(a, sent.id).attempts, 2);
  assert.equal(sp.mailFor(b.peer.peerId), 1, "held once");
  // B also meets A directly and gets the mail both ways: it is handled once, acknowledged twice.
  net.connect(b.peer, sp);
  net.connect(a.peer, b.peer);
  await a.outbox.pump(); // not due yet: nothing new is sent
  a.mail.send(b.peer.peerId, first);
  await settle(a, b);
  assert.equal(b.keys.offers.length, 1);
  assert.equal(b.mail.stats.taken, 1);
  assert.equal(b.mail.stats.duplicates, 1);
  assert.equal(item(a, sent.id).state, "delivered");
});

test("a key whose recipient's encryption key is unknown waits for it, then goes", async () => {
  const net = new Net();
  const a = await page(net);
  const c = await page(net);
  const file = holdFile(a);
  net.connect(a.peer, c.peer);
  const sent = a.outbox.shareKey(file.id, c.peer.peerId);
  await settle(a, c);
  assert.equal(item(a, sent.id).state, "waiting");
  assert.equal(item(a, sent.id).reason, "no_key");
  assert.deepEqual(a.keys.requested, [c.peer.peerId]);
  a.keys.learn(c.peer.peerId, c.id.pair.publicKey);
  await settle(a, c);
  assert.equal(item(a, sent.id).state, "delivered", "sent directly and acknowledged");
  assert.equal(c.keys.offers.length, 1);
});

test("bad input: unknown peers, files not held, forged and misaddressed mail", async () => {
  const net = new Net();
  const a = await page(net);
  const b = await page(net);
  const m = await page(net);
  assert.throws(() => a.outbox.shareKey("x", "not-a-peer"), { code: "bad_peer_id" });
  assert.throws(() => a.outbox.shareKey("x", a.peer.peerId), { code: "bad_peer_id" });
  assert.throws(() => a.outbox.shareKey("x", b.peer.peerId), { code: "not_held" });
  net.connect(a.peer, b.peer);
  net.connect(m.peer, b.peer);
  const mail = await makeMail(a.id.signer, { to: b.peer.peerId, toKey: b.id.pair.publicKey, topic: TOPIC_WRAPPED_MAIL, data: { x: 1 }, createdAt: net.now });
  // M alters a signed mail: refused as a forgery, counted against M.
  const forged = structuredClone(mail);
  forged.body.expires_at += 1;
  m.peer.send(b.peer.peerId, { t: "mail", to: b.peer.peerId, msg: forged });
  // A mail for another peer on B's connection: not for B, not handled.
  const other = await makeMail(a.id.signer, { to: m.peer.peerId, toKey: m.id.pair.publicKey, topic: TOPIC_WRAPPED_MAIL, data: {}, createdAt: net.now });
  a.peer.send(b.peer.peerId, { t: "mail", to: b.peer.peerId, msg: other });
  // Expired mail.
  const old = await makeMail(a.id.signer, {
    to: b.peer.peerId,
    toKey: b.id.pair.publicKey,
    topic: "note",
    data: 1,
    createdAt: net.now - 10_000,
    expiresAt: net.now - 1,
  });
  a.peer.send(b.peer.peerId, { t: "mail", to: b.peer.peerId, msg: old });
  await settle(a, b, m);
  assert.deepEqual(
    b.peer.violations.map((v) => [v.peerId, v.code]),
    [[m.peer.peerId, "bad_signature"]],
  );
  assert.deepEqual(
    b.peer.logs.filter((l) => l.area === "mail").map((l) => l.code),
    ["bad_signature", "wrong_recipient", "expired"],
  );
  assert.equal(b.mail.stats.taken, 0);
  assert.equal(b.keys.offers.length, 0);
});

test("mail on a topic nobody handles is taken and acknowledged, not lost in a loop", async () => {
  const net = new Net();
  const a = await page(net);
  const b = await page(net);
  net.connect(a.peer, b.peer);
  const mail = await makeMail(a.id.signer, { to: b.peer.peerId, toKey: b.id.pair.publicKey, topic: "future-thing", data: [1, 2], createdAt: net.now });
  const acks = [];
  a.mail.addEventListener("acked", (e) => acks.push(e.detail));
  a.mail.send(b.peer.peerId, mail);
  await settle(a, b);
  assert.deepEqual(acks, [{ from: b.peer.peerId, ids: [mail.body.id] }]);
  assert.ok(b.peer.logs.some((l) => l.code === "unknown_topic"));
});

test("our posts: waiting with no peers, delivered to each peer that has them", async () => {
  const net = new Net();
  const a = await page(net);
  const entry = { author: a.peer.peerId, hash: "h1", kind: "post", text: "written on a train" };
  a.posts.dispatchEvent(new CustomEvent("published", { detail: { entry, reached: [] } }));
  await settle(a);
  assert.equal(item(a, "h1").state, "waiting");
  assert.equal(item(a, "h1").reason, "no_peers");
  assert.equal(item(a, "h1").label, "written on a train");
  a.posts.dispatchEvent(new CustomEvent("reached", { detail: { peerId: "pX", hashes: ["h1", "unknown"] } }));
  a.posts.dispatchEvent(new CustomEvent("reached", { detail: { peerId: "pY", hashes: ["h1"] } }));
  await settle(a);
  assert.equal(item(a, "h1").state, "delivered");
  assert.deepEqual(item(a, "h1").deliveredTo, ["pX", "pY"]);
  assert.equal(a.outbox.get("unknown"), null);
  // Entries of other authors are not ours to deliver.
  a.posts.dispatchEvent(new CustomEvent("published", { detail: { entry: { ...entry, author: "pOther", hash: "h2" }, reached: [] } }));
  await settle(a);
  assert.equal(a.outbox.get("h2"), null);
});

test("a key not delivered within its lifetime fails as expired", async () => {
  const net = new Net();
  const a = await page(net);
  const b = await page(net);
  a.keys.learn(b.peer.peerId, b.id.pair.publicKey);
  const sent = a.outbox.shareKey(holdFile(a).id, b.peer.peerId);
  await settle(a);
  net.now += 7 * 86_400_000;
  await a.outbox.pump();
  assert.equal(item(a, sent.id).state, "failed");
  assert.equal(item(a, sent.id).reason, "expired");
});
