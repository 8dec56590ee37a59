// Mail in the page (docs/protocol.md "Mail"): signed swarm/mail/v1 messages sealed to one
// peer, carried by `mail` frames directly to the recipient when it is connected, else through
// the connected super-peers' mailboxes, which keep them until the recipient acknowledges.
// This page takes mail addressed to it once (the ids it took are kept), hands {topic, data}
// to the topic's handler and acknowledges; acknowledgements of its own mail come back as
// "acked" events (the outbox marks its items delivered).
import { KIND_ACK, KIND_MAIL, MAIL_LIFETIME_MS, makeAck, makeMail, openMail, parseMail } from "../protocol/mail.js";

export const MAIL_CAP = "mail"; // hello capability: takes mail frames
export const RELAY_CAP = "superpeer"; // with MAIL_CAP: keeps mail for peers that are away
// Faults an honest sender never makes (it checks what it sends): they count against the connection.
const VIOLATIONS = new Set(["bad_envelope", "bad_signature", "mail_too_large", "bad_mail", "bad_recipient", "peer_mismatch"]);
const PRUNE_EVERY_MS = 3_600_000;

export class MailService extends EventTarget {
  constructor({ peer, store, keys, clock = Date.now }) {
    super();
    this.peer = peer;
    this.store = store;
    this.keys = keys;
    this.clock = clock;
    this.handlers = new Map(); // topic -> async (from, data, mail) => void
    this.caps = new Map(); // connected peer id -> hello capabilities
    this.inbox = Promise.resolve(); // received mail handled one at a time
    this.stats = { received: 0, taken: 0, duplicates: 0, acked: 0, refused: 0 };
  }

  async start() {
    this.peer.addEventListener("peer-open", (e) => this.caps.set(e.detail.peerId, e.detail.caps ?? []));
    this.peer.addEventListener("peer-close", (e) => this.caps.delete(e.detail.peerId));
    for (const p of this.peer.connectedPeers()) this.caps.set(p.peerId, p.caps ?? []);
    this.peer.addEventListener("frame", (e) => {
      const { peerId, frame } = e.detail;
      // Only mail for this peer: a page is not a relay.
      if (frame.t === "mail" && frame.to === this.peer.peerId) this.#queue(() => this.#received(peerId, frame.msg));
    });
    await this.store.pruneMailSeen(this.clock() - 2 * MAIL_LIFETIME_MS);
    this.timer = setInterval(() => this.store.pruneMailSeen(this.clock() - 2 * MAIL_LIFETIME_MS).catch(() => {}), PRUNE_EVERY_MS);
    return this;
  }

  /** Take mail of `topic`: handler(from, data, parsed) runs once per mail (it should be idempotent). */
  on(topic, handler) {
    this.handlers.set(topic, handler);
  }

  /** Super-peers connected now that keep mail. */
  relays() {
    return [...this.caps].filter(([, caps]) => caps.includes(RELAY_CAP) && caps.includes(MAIL_CAP)).map(([id]) => id);
  }

  /** Whether `peerId` takes mail on an open connection now. */
  direct(peerId) {
    return this.caps.get(peerId)?.includes(MAIL_CAP) ?? false;
  }

  /**
   * Sign and seal {topic, data} for `to` (its X25519 key must be known: keys.keyOf). Nothing is
   * sent: the outbox keeps the envelope and sends it with send(), again if need be.
   */
  async make(to, topic, data, { id = undefined, lifetimeMs = MAIL_LIFETIME_MS } = {}) {
    const { x25519 } = await this.keys.keyOf(to);
    const createdAt = this.clock();
    return makeMail(this.peer.identity.signer, { to, toKey: x25519, topic, data, createdAt, expiresAt: createdAt + lifetimeMs, id });
  }

  /**
   * Send a signed message to `to`: on its own connection when it is connected, else to every
   * connected super-peer. The peer ids it was handed to (none: no route now).
   */
  send(to, envelope) {
    const frame = { t: "mail", to, msg: envelope };
    if (this.direct(to) && this.peer.send(to, frame)) return [to];
    return this.relays().filter((id) => id !== to && this.peer.send(id, frame));
  }

  // An acknowledgement goes to the sender (when connected) and to every super-peer, so that
  // the mailboxes holding the mail delete it and pass the acknowledgement on.
  #sendAck(to, envelope) {
    const frame = { t: "mail", to, msg: envelope };
    const via = [];
    if (this.direct(to) && this.peer.send(to, frame)) via.push(to);
    for (const id of this.relays()) if (id !== to && this.peer.send(id, frame)) via.push(id);
    return via;
  }

  async #received(fromConn, envelope) {
    this.stats.received += 1;
    let mail;
    try {
      mail = await parseMail(envelope, { now: this.clock() });
      if (mail.to !== this.peer.peerId) throw Object.assign(new Error(`mail for ${mail.to}`), { code: "wrong_recipient" });
    } catch (error) {
      this.#refused(fromConn, error);
      return;
    }
    if (mail.kind === KIND_ACK) {
      this.stats.acked += 1;
      this.dispatchEvent(new CustomEvent("acked", { detail: { from: mail.from, ids: mail.ids } }));
      return;
    }
    if (mail.kind !== KIND_MAIL) return;
    if (await this.store.mailSeen(mail.id)) {
      this.stats.duplicates += 1;
    } else {
      let opened;
      try {
        opened = await this.#open(mail);
      } catch (error) {
        this.#refused(fromConn, error);
        return;
      }
      const handler = this.handlers.get(opened.topic);
      if (handler) await handler(mail.from, opened.data, mail);
      else this.peer.log("warn", "mail", "unknown_topic", `mail from ${mail.from} on topic ${opened.topic} (taken, not understood)`, mail.from);
      await this.store.putMailSeen(mail.id, this.clock());
      this.stats.taken += 1;
    }
    // Taken (now or before): acknowledge, so the sender and the mailboxes know.
    const ack = await makeAck(this.peer.identity.signer, { to: mail.from, ids: [mail.id], ackedAt: this.clock() });
    this.#sendAck(mail.from, ack);
  }

  // With this identity's key, else with a key it had before (the last error if none opens).
  async #open(mail) {
    const own = this.keys.own;
    const pairs = [own, ...(own.previous ?? [])];
    for (const [i, pair] of pairs.entries()) {
      try {
        return await openMail(mail, { keyPair: { privateKey: pair.privateKey, publicKey: pair.publicKey }, peerId: this.peer.peerId });
      } catch (error) {
        if (error.code !== "decrypt_failed" || i === pairs.length - 1) throw error;
      }
    }
    throw new Error("no key"); // not reached: there is always the own pair
  }

  #refused(fromConn, error) {
    this.stats.refused += 1;
    const code = error?.code ?? "error";
    this.peer.log("warn", "mail", code, `mail refused: ${error?.message ?? error}`, fromConn);
    if (VIOLATIONS.has(code)) this.peer.contentViolation(fromConn, code, error.message);
  }

  #queue(work) {
    this.inbox = this.inbox.then(work).catch((error) => this.peer.log("error", "mail", error?.code ?? "internal_error", String(error?.stack ?? error)));
  }

  destroy() {
    clearInterval(this.timer);
  }
}
