// Sharing a file with named peers: file keys wrapped per recipient (keywrap.js, X25519 +
// HKDF + AES-GCM) travel as gossip, and so do the signed X25519 key announcements they are
// wrapped to (docs/protocol.md "Gossip topics"). Only the named recipient can open a wrapped
// key; everyone else sees which manifest was offered to which peer id.
import { isDigestId } from "../protocol/chunks.js";
import { PEER_ID_RE } from "../protocol/encoding.js";
import { BAD_BODY, BAD_WRAPPED_KEY, DECRYPT_FAILED, ProtocolError } from "../protocol/errors.js";
import { identityKeyAgreementPair } from "../adapters/identity.js";
import { makeKeyAnnouncement, unwrapFileKey, verifyKeyAnnouncement, wrapFileKey } from "../protocol/keywrap.js";
import { isKeyless } from "./keeping.js";

export const TOPIC_XKEY = "xkey"; // data: a swarm/xkey/v1 announcement
export const TOPIC_XKEY_REQ = "xkey-req"; // data: {peer_id}: "announce your key"
export const TOPIC_WRAPPED = "wrapped-key"; // data: {manifest, wrapped}
const ANNOUNCE_EVERY_MS = 4 * 60_000; // gossip lives 10 minutes: newcomers hear one soon
const ANSWER_REQ_EVERY_MS = 30_000;
const KEY_WAIT_MS = 15_000;

const sameBytes = (a, b) => a instanceof Uint8Array && b instanceof Uint8Array && a.length === b.length && a.every((x, i) => x === b[i]);

function checkWrappedGossip(data) {
  if (data === null || typeof data !== "object" || Array.isArray(data) || Object.keys(data).sort().join() !== "manifest,wrapped") {
    throw new ProtocolError(BAD_BODY, "wrapped-key gossip is {manifest, wrapped}");
  }
  if (!isDigestId(data.manifest)) throw new ProtocolError(BAD_BODY, "manifest must be a manifest id");
  const w = data.wrapped;
  if (w === null || typeof w !== "object" || typeof w.to !== "string" || !PEER_ID_RE.test(w.to)) {
    throw new ProtocolError(BAD_WRAPPED_KEY, "wrapped key names no recipient");
  }
}

function checkKeyRequest(data) {
  if (data === null || typeof data !== "object" || Object.keys(data).join() !== "peer_id" || !PEER_ID_RE.test(data.peer_id)) {
    throw new ProtocolError(BAD_BODY, "xkey-req gossip is {peer_id}");
  }
}

export class KeyShare extends EventTarget {
  constructor({ peer, store, files, clock = Date.now }) {
    super();
    this.peer = peer;
    this.store = store;
    this.files = files;
    this.clock = clock;
    this.keys = new Map(); // peer id -> { x25519, createdAt, envelope }
    this.waiting = new Map(); // peer id -> [resolve]
    this.lastAnnounce = 0;
    this.lastAnswer = 0;
    this.asked = new Map(); // peer id -> when its key was last asked for
  }

  async start() {
    let own = await this.store.getOwnKey();
    // The key is derived from the identity's seed, so a restored identity (a backup, Shamir
    // shares) opens what was wrapped to it before. A stored key of another identity (this
    // browser restored one since) is replaced; a random key of this identity (made before
    // keys were derived) is kept as `previous`, so that keys wrapped to it still open.
    const pair = await identityKeyAgreementPair(this.peer.identity.record);
    if (own?.announcement?.body?.peer_id !== this.peer.peerId || !sameBytes(own.publicKey, pair.publicKey)) {
      const previous = own?.announcement?.body?.peer_id === this.peer.peerId ? [{ privateKey: own.privateKey, publicKey: own.publicKey }] : [];
      const announcement = await makeKeyAnnouncement(this.peer.identity.signer, pair, { createdAt: this.clock() });
      own = { privateKey: pair.privateKey, publicKey: pair.publicKey, announcement, previous };
      await this.store.putOwnKey(own);
    }
    this.own = own;
    for (const record of await this.store.loadPeerKeys()) this.keys.set(record.peerId, record);
    const checks = this.peer.node.gossipChecks;
    checks.set(TOPIC_XKEY, (data, now) => verifyKeyAnnouncement(data, { now }));
    checks.set(TOPIC_WRAPPED, (data) => checkWrappedGossip(data));
    checks.set(TOPIC_XKEY_REQ, (data) => checkKeyRequest(data));
    this.peer.addEventListener("message", (e) =>
      this.#onMessage(e.detail).catch((error) => this.peer.log("warn", "keys", error.code ?? "error", error.message)),
    );
    this.peer.addEventListener("peer-open", () => {
      if (this.clock() - this.lastAnnounce > ANNOUNCE_EVERY_MS) this.announce();
    });
    this.timer = setInterval(() => {
      if (this.peer.connectedPeers().length > 0) this.announce();
    }, ANNOUNCE_EVERY_MS);
    return this;
  }

  announce() {
    this.lastAnnounce = this.clock();
    return this.peer.publish(TOPIC_XKEY, this.own.announcement);
  }

  knows(peerId) {
    return this.keys.has(peerId);
  }

  /** The X25519 key of peerId: known, or asked for by gossip (rejects after 15 s). */
  async keyOf(peerId) {
    const known = this.keys.get(peerId);
    if (known) return known;
    const wait = new Promise((resolve, reject) => {
      const list = this.waiting.get(peerId) ?? [];
      const timer = setTimeout(() => {
        const left = (this.waiting.get(peerId) ?? []).filter((waiter) => waiter !== done);
        if (left.length) this.waiting.set(peerId, left);
        else this.waiting.delete(peerId);
        reject(Object.assign(new Error(`${peerId} did not announce an encryption key (is it online?)`), { code: "no_key" }));
      }, KEY_WAIT_MS);
      const done = (record) => {
        clearTimeout(timer);
        resolve(record);
      };
      list.push(done);
      this.waiting.set(peerId, list);
    });
    await this.peer.publish(TOPIC_XKEY_REQ, { peer_id: peerId });
    return wait;
  }

  /** Ask the swarm for peerId's key (by gossip; super-peers answer for peers that are away), at most every 30 s. */
  requestKey(peerId) {
    const now = this.clock();
    if (now - (this.asked.get(peerId) ?? -Infinity) < ANSWER_REQ_EVERY_MS) return;
    this.asked.set(peerId, now);
    if (this.peer.connectedPeers().length > 0) this.peer.publish(TOPIC_XKEY_REQ, { peer_id: peerId }).catch(() => {});
  }

  /** The key of a file we hold, wrapped for peerId (whose key must be known or come within 15 s); noted as a recipient. */
  async wrapFor(manifestId, peerId) {
    if (!PEER_ID_RE.test(peerId)) throw Object.assign(new Error("not a peer id"), { code: "bad_peer_id" });
    const record = this.files.files.get(manifestId);
    if (!record?.key || !record.fileId) throw Object.assign(new Error("only a file you hold can be shared"), { code: "not_held" });
    const { x25519 } = await this.keyOf(peerId);
    const wrapped = await wrapFileKey(record.key, { fileId: record.fileId, recipient: peerId, recipientKey: x25519 });
    record.recipients = [...new Set([...(record.recipients ?? []), peerId])];
    await this.files.saveRecord(record);
    this.peer.log("info", "keys", "key_wrapped", `${record.name}: key wrapped for ${peerId}`);
    return wrapped;
  }

  /**
   * Wrap the key of a file we hold for peerId and gossip it now (reaches it only while it is
   * online: the outbox's mail is the way that waits for it); resolves the wrapped object.
   */
  async shareWith(manifestId, peerId) {
    const wrapped = await this.wrapFor(manifestId, peerId);
    await this.peer.publish(TOPIC_WRAPPED, { manifest: manifestId, wrapped });
    return wrapped;
  }

  /** A wrapped key that came for this peer (gossip, or mail from `from`): the file is offered. */
  async takeWrapped(from, data) {
    checkWrappedGossip(data);
    if (data.wrapped.to !== this.peer.peerId) throw new ProtocolError(BAD_WRAPPED_KEY, "the wrapped key is for another peer");
    await this.#onWrapped(from, data);
  }

  async #onMessage(message) {
    if (message.topic === TOPIC_XKEY) await this.#onKey(message.data);
    else if (message.topic === TOPIC_XKEY_REQ && message.data.peer_id === this.peer.peerId) {
      if (this.clock() - this.lastAnswer < ANSWER_REQ_EVERY_MS) return;
      this.lastAnswer = this.clock();
      await this.announce();
    } else if (message.topic === TOPIC_WRAPPED && message.data.wrapped.to === this.peer.peerId) {
      await this.#onWrapped(message.origin, message.data);
    }
  }

  async #onKey(envelope) {
    const key = await verifyKeyAnnouncement(envelope, { now: this.clock() });
    const known = this.keys.get(key.peerId);
    if (key.peerId === this.peer.peerId || (known && known.createdAt >= key.createdAt)) return;
    const record = { peerId: key.peerId, x25519: key.x25519, createdAt: key.createdAt, envelope };
    this.keys.set(key.peerId, record);
    await this.store.putPeerKey(record);
    for (const resolve of this.waiting.get(key.peerId) ?? []) resolve(record);
    this.waiting.delete(key.peerId);
    this.dispatchEvent(new CustomEvent("key", { detail: { peerId: key.peerId } }));
  }

  async #onWrapped(from, { manifest, wrapped }) {
    const existing = this.files.files.get(manifest);
    const keyless = isKeyless(existing);
    if (existing && !keyless && existing.state !== "offered" && existing.state !== "failed") return;
    const key = await this.#unwrap(wrapped);
    // A copy kept here for the swarm without a key: offered now; its chunks stay in storage
    // and a download of it finds them there.
    if (keyless) await this.files.remove(manifest, { keepChunks: true });
    const record = {
      id: manifest,
      role: "offered",
      state: "offered",
      key,
      fileId: wrapped.file_id,
      from,
      envelope: null,
      held: 0,
      addedAt: this.clock(),
      name: null,
    };
    await this.files.saveRecord(record);
    this.peer.log("info", "keys", "key_received", `${from} shared a file with you (${manifest})`, from);
    this.dispatchEvent(new CustomEvent("offered", { detail: record }));
  }

  // With this identity's key, else with a key it had before (DECRYPT_FAILED from the last).
  async #unwrap(wrapped) {
    const pairs = [this.own, ...(this.own.previous ?? [])];
    for (const [i, keyPair] of pairs.entries()) {
      try {
        return await unwrapFileKey(wrapped, { keyPair, peerId: this.peer.peerId });
      } catch (error) {
        if (error.code !== DECRYPT_FAILED || i === pairs.length - 1) throw error;
      }
    }
  }

  destroy() {
    clearInterval(this.timer);
  }
}
