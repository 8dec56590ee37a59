// Guardians and recovery in the page (docs/recovery.md "Guardians in the page"): binds the
// sans-IO cores (OwnerGuardians, GuardianStore, RecoveryCollector; docs/protocol.md
// "Guardians and recovery") to window.swarm: shard_msg frames to and from peers that list the
// `shard` capability, recovery requests by gossip (topic shard-req), the content store
// (shards: one snapshot per role, keyed by the peer id it belongs to) and the identity store
// (a recovered seed is installed like a restored backup). Owner: split the seed, send each
// guardian its share, again whenever it connects until its receipt arrives. Guardian: hold
// shares, answer receipts, show requests, release or refuse. New device: ask, collect, rebuild.
import { installSeed, seedOf } from "../adapters/identity.js";
import { OwnerGuardians } from "../protocol/backup.js";
import { PEER_ID_RE } from "../protocol/encoding.js";
import { BAD_ENVELOPE, BAD_KEY, BAD_SHARD, BAD_SIGNATURE, PEER_MISMATCH, ProtocolError, SHARD_TOO_LARGE, WRONG_REQUEST } from "../protocol/errors.js";
import { GuardianStore } from "../protocol/guardian.js";
import { RecoveryCollector } from "../protocol/recovery.js";
import {
  DEFAULT_REQUEST_LIFETIME_MS,
  KIND_RECEIPT,
  KIND_RECOVER_REQ,
  KIND_REFUSE,
  KIND_RELEASE,
  KIND_REVOKE,
  KIND_SHARE,
  kindOf,
  MAX_N,
  MIN_K,
  makeRecoverRequest,
  parseMessage,
} from "../protocol/shard.js";
import { combineShares, sameSet, shareInfo, splitSeed } from "../protocol/shares.js";

export const SHARD_CAP = "shard"; // hello capability: this peer takes shard_msg frames
export const RELAY_CAP = "superpeer"; // with SHARD_CAP: keeps shard_msg frames for peers not connected (mailbox)
export const TOPIC_SHARD_REQ = "shard-req";
export const REPUBLISH_MS = 5 * 60_000; // gossip ages out after 10 minutes
const TICK_MS = 30_000;
const SHOW_RECOVERED_MS = 86_400_000; // the card says "recovered" for a day after the reload
const MAX_ANSWERED_TEMPS = 32; // temporary identities whose answers are kept to send again
const GUARDIAN = "guardian";
const OWNER = "owner";
const RECOVERY = "recovery";
// Faults of the sender itself (it checks what it forwards): violations like a bad frame.
const VIOLATIONS = new Set([SHARD_TOO_LARGE, BAD_ENVELOPE, BAD_SIGNATURE, BAD_SHARD, PEER_MISMATCH, BAD_KEY]);

export class GuardianError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "GuardianError";
    this.code = code;
  }
}

export class GuardianService extends EventTarget {
  #lastText = null;

  /** peer: window.swarm; store: ContentStore; keys: KeyShare (X25519 keys); onRecovered(peerId): reload as it. */
  constructor({ peer, store, keys, clock = Date.now, onRecovered = null }) {
    super();
    this.peer = peer;
    this.store = store;
    this.keys = keys;
    this.clock = clock;
    this.onRecovered = onRecovered;
    this.caps = new Map(); // connected peer id -> hello capabilities
    this.answers = new Map(); // temporary peer id -> releases or refusal, sent again when it connects
    this.paper = []; // [{index, mnemonic}] of the current set, shown once (never stored)
    this.recovery = null; // the collection under way on this device
    this.recovered = null; // { forPeer, have, need, at } after a recovery installed this identity
    this.inbox = Promise.resolve(); // core calls never overlap
  }

  async start() {
    const now = this.clock();
    const signer = this.peer.identity.signer;
    this.keyPair = { privateKey: this.keys.own.privateKey, publicKey: this.keys.own.publicKey };
    const held = await this.store.getShardState(GUARDIAN);
    this.guardian =
      held?.peerId === this.peer.peerId
        ? await GuardianStore.restore(signer, this.keyPair, held.snapshot, { now })
        : await GuardianStore.create(signer, this.keyPair);
    const owned = await this.store.getShardState(OWNER);
    const mine = owned?.peerId === this.peer.peerId;
    this.owner = mine ? await OwnerGuardians.restore(signer, owned.snapshot) : await OwnerGuardians.create(signer);
    this.slipSet = mine ? owned.slipSet : null;
    const saved = await this.store.getShardState(RECOVERY);
    if (saved?.state === "collecting" && saved.temp === this.peer.peerId) await this.#open(saved, now);
    else if (saved?.state === "recovered" && saved.forPeer === this.peer.peerId && now - saved.at < SHOW_RECOVERED_MS) this.recovered = saved;
    this.peer.node.gossipChecks.set(TOPIC_SHARD_REQ, (data, at) => parseMessage(data, { now: at, kind: KIND_RECOVER_REQ }));
    this.peer.addEventListener("frame", (e) => {
      const { peerId, frame } = e.detail;
      // Only messages for this peer: a page is not a relay.
      if (frame.t === "shard_msg" && frame.to === this.peer.peerId) this.#background(() => this.#onMessage(peerId, frame.msg));
    });
    this.peer.addEventListener("message", (e) => {
      if (e.detail.topic === TOPIC_SHARD_REQ) this.#background(() => this.#onMessage(null, e.detail.data));
    });
    this.peer.addEventListener("peer-open", (e) => this.#opened(e.detail.peerId, e.detail.caps ?? []));
    this.peer.addEventListener("peer-close", (e) => this.caps.delete(e.detail.peerId));
    for (const p of this.peer.connectedPeers()) this.#opened(p.peerId, p.caps ?? []);
    this.timer = setInterval(() => this.tick().catch(() => {}), TICK_MS);
    return this;
  }

  // --- owner ---

  /** Peers that can be chosen: connected with the shard capability, or whose X25519 key is known. */
  candidates() {
    const ids = new Set([...this.caps].filter(([, caps]) => caps.includes(SHARD_CAP)).map(([id]) => id));
    for (const id of this.keys.keys.keys()) ids.add(id);
    ids.delete(this.peer.peerId);
    return [...ids].sort().map((peerId) => ({ peerId, connected: this.caps.has(peerId), known: this.keys.knows(peerId) }));
  }

  /**
   * A new share set: share i to guardians[i] (peer ids), then `paper` shares kept on paper;
   * any k of them give the identity back. Resolves { setId, paper: [{index, mnemonic}] }.
   */
  async split({ guardians, paper = 0, k }) {
    const n = guardians.length + paper;
    if (!Number.isInteger(k) || !Number.isInteger(paper) || paper < 0 || !(MIN_K <= k && k <= n && n <= MAX_N)) {
      throw new GuardianError("bad_threshold", `choose ${MIN_K} <= k <= n <= ${MAX_N} (k = ${k}, n = ${n})`);
    }
    for (const id of guardians) {
      if (typeof id !== "string" || !PEER_ID_RE.test(id)) throw new GuardianError("bad_peer_id", `${id} is not a peer id`);
      if (id === this.peer.peerId) throw new GuardianError("bad_peer_id", "you cannot be your own guardian");
    }
    if (new Set(guardians).size !== guardians.length) throw new GuardianError("bad_peer_id", "each guardian holds one share");
    // Their keys first (asked for by gossip if unknown; up to 15 s), outside the queue.
    const keyed = [];
    for (const peerId of guardians) keyed.push({ peerId, x25519: (await this.keys.keyOf(peerId)).x25519 });
    return this.#queue(async () => {
      let slipSet;
      do slipSet = crypto.getRandomValues(new Uint16Array(1))[0] & 0x7fff;
      while (slipSet === this.slipSet);
      const seed = await seedOf(this.peer.identity.record);
      let mnemonics;
      try {
        mnemonics = await splitSeed(seed, { threshold: k, count: n, setId: slipSet });
      } finally {
        seed.fill(0);
      }
      const out = await this.owner.split([...keyed, ...Array(paper).fill(null)], mnemonics, k, { now: this.clock() });
      this.slipSet = slipSet;
      this.paper = mnemonics.slice(keyed.length).map((mnemonic, i) => ({ index: keyed.length + i + 1, mnemonic }));
      for (const { to, envelope } of out) this.#deliver(to, envelope);
      await this.#saveOwner();
      this.peer.log("info", "guardians", "shares_split", `identity split ${k} of ${n}: ${keyed.length} guardian(s), ${paper} on paper`);
      this.#changed();
      return { setId: this.owner.current.id, paper: this.paper };
    });
  }

  /** The current set's guardians, then revoked ones (backup.js guardians()). */
  guardianList() {
    return this.owner.guardians();
  }

  // --- guardian ---

  /** Requests for owners this page guards: { id, forPeer, code, state, conflict, temp }. */
  requests() {
    return this.guardian.requests().map((r) => ({ id: r.id, forPeer: r.forPeer, code: r.code, state: r.state, conflict: r.conflict, temp: r.request.temp }));
  }

  /** Owners whose shares this page holds: [{ owner, index, k, n, heldAt }]. */
  holding() {
    return this.guardian.held().map((h) => ({ owner: h.share.owner, index: h.share.index, k: h.share.k, n: h.share.n, heldAt: h.heldAt }));
  }

  /** The person approved the request: releases go to its temporary identity. */
  approve(requestId) {
    return this.#queue(async () => {
      const releases = await this.guardian.approve(requestId, { now: this.clock() });
      this.#answer(tempOf(releases[0]), releases);
      await this.#saveGuardian();
      this.peer.log("info", "guardians", "request_approved", `recovery request ${requestId} approved: ${releases.length} share(s) released`);
      this.#changed();
    });
  }

  refuse(requestId) {
    return this.#queue(async () => {
      const refusal = await this.guardian.refuse(requestId, { now: this.clock() });
      this.#answer(tempOf(refusal), [refusal]);
      await this.#saveGuardian();
      this.peer.log("info", "guardians", "request_refused", `recovery request ${requestId} refused`);
      this.#changed();
    });
  }

  // --- new device ---

  /** Ask the guardians of `forPeer` for their shares, as this page's (temporary) identity. */
  async startRecovery(forPeer) {
    if (typeof forPeer !== "string" || !PEER_ID_RE.test(forPeer)) throw new GuardianError("bad_peer_id", "type the peer id of the identity to recover");
    if (forPeer === this.peer.peerId) throw new GuardianError("bad_peer_id", "this page is that identity already");
    return this.#queue(async () => {
      const now = this.clock();
      const envelope = await makeRecoverRequest(this.peer.identity.signer, this.keyPair.publicKey, {
        forPeer,
        issuedAt: now,
        expiresAt: now + DEFAULT_REQUEST_LIFETIME_MS,
      });
      await this.#open({ forPeer, envelope, received: [] }, now);
      await this.#saveRecovery();
      await this.#publishRequest();
      this.#changed();
    });
  }

  /** A share typed in (from paper): checked at once (ShareError with its code), then combined with the others. */
  async addTypedShare(text) {
    const info = shareInfo(text);
    return this.#queue(async () => {
      const rec = this.recovery;
      if (rec === null || rec.state !== "collecting") throw new GuardianError("not_collecting", "start a recovery first: type the old peer id");
      if (!rec.typed.includes(info.mnemonic)) rec.typed.push(info.mnemonic);
      await this.#tryTyped();
      this.#changed();
    });
  }

  cancelRecovery() {
    return this.#queue(async () => {
      this.recovery = null;
      this.recovered = null;
      await this.store.deleteShardState(RECOVERY);
      this.#changed();
    });
  }

  /** For #recovery: { state: idle|collecting|recovered|failed, forPeer, code, have, need, bad, refused, reason }. */
  recoveryState() {
    if (this.recovered !== null) return { ...this.recovered, state: "recovered", code: null, bad: {}, refused: [], reason: null };
    const rec = this.recovery;
    if (rec === null) return { state: "idle", forPeer: null, code: null, have: 0, need: null, bad: {}, refused: [], reason: null };
    const p = rec.collector.progress();
    let { have, need } = p;
    if (rec.typedNeed !== null && (need === null || rec.typedHave / rec.typedNeed > have / need)) {
      have = rec.typedHave;
      need = rec.typedNeed;
    }
    const state = rec.state === "collecting" ? p.state : rec.state;
    return { state, forPeer: rec.forPeer, code: rec.code, have, need, bad: p.bad, refused: p.refused, reason: rec.reason ?? p.reason };
  }

  /** Prune what expired, fail an expired recovery, republish its request every 5 minutes (a timer calls it). */
  tick() {
    return this.#queue(() => this.#tick());
  }

  destroy() {
    clearInterval(this.timer);
  }

  // --- messages ---

  async #onMessage(from, envelope) {
    const now = this.clock();
    const kind = kindOf(envelope);
    try {
      if (kind === KIND_SHARE) {
        const { held, receipt } = await this.guardian.acceptShare(envelope, { now });
        this.#deliver(held.share.owner, receipt);
        await this.#saveGuardian();
        this.peer.log("info", "guardians", "share_held", `holding share ${held.share.index} of ${held.share.owner}`, from);
      } else if (kind === KIND_REVOKE) {
        const gone = await this.guardian.revoke(envelope, { now });
        await this.#saveGuardian();
        if (gone) this.peer.log("info", "guardians", "share_revoked", `${gone} share(s) deleted at the owner's request`, from);
      } else if (kind === KIND_RECEIPT) {
        const entry = await this.owner.receive(envelope, { now });
        await this.#saveOwner();
        this.peer.log("info", "guardians", "receipt", `${entry.peerId} holds share ${entry.index}`, entry.peerId);
      } else if (kind === KIND_RECOVER_REQ) await this.#onRequest(envelope, now);
      else if (kind === KIND_RELEASE || kind === KIND_REFUSE) await this.#onAnswer(envelope, now);
      else throw new ProtocolError(BAD_SHARD, "not a shard message");
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      if (from !== null && VIOLATIONS.has(error.code)) this.peer.contentViolation(from, error.code, error.message);
      else this.peer.log("info", "guardians", error.code, `shard message dropped: ${error.message}`, from);
    }
    this.#changed();
  }

  async #onRequest(envelope, now) {
    const incoming = await this.guardian.request(envelope, { now });
    if (incoming === null) return; // not an owner this page guards
    if (incoming.state === "pending") {
      await this.#saveGuardian();
      this.peer.log("info", "guardians", "recovery_request", `recovery of ${incoming.forPeer} asked: code ${incoming.code}`);
    } else this.#answer(incoming.request.temp, incoming.answer); // heard again: answered again
  }

  async #onAnswer(envelope, now) {
    const rec = this.recovery;
    if (rec === null || rec.state !== "collecting") throw new ProtocolError(WRONG_REQUEST, "no recovery is under way here");
    await this.#take(envelope, now);
    await this.#saveRecovery();
  }

  async #take(envelope, now) {
    const rec = this.recovery;
    this.#lastText = null;
    const result = await rec.collector.receive(envelope, { now });
    if (result.kind === "share" && this.#lastText !== null) rec.texts.push(this.#lastText);
    if (result.kind === "bad") {
      this.peer.log(
        "warn",
        "guardians",
        result.code,
        `guardian ${result.guardian} sent a share that fails its checks (${result.code}): skipped`,
        result.guardian,
      );
    } else if (result.kind === "refused") this.peer.log("info", "guardians", "refused", `guardian ${result.guardian} refused`, result.guardian);
    if (rec.collector.state === "recovered") await this.#install(rec.collector.seed);
    else if (rec.typed.length > 0) await this.#tryTyped();
  }

  // --- recovery internals ---

  async #open(saved, now) {
    const forPeer = saved.forPeer;
    const collector = await RecoveryCollector.create(saved.envelope, this.keyPair, {
      now,
      combine: (texts) => combineShares(texts, { peerId: forPeer }),
      checkShare: (text) => {
        this.#lastText = shareInfo(text).mnemonic;
      },
    });
    const code = await collector.code();
    this.recovery = {
      forPeer,
      envelope: saved.envelope,
      collector,
      code,
      typed: [], // mnemonics typed in (normal form)
      texts: [], // mnemonics released by guardians that passed their checks
      typedHave: 0,
      typedNeed: null,
      state: "collecting",
      reason: null,
      lastPublished: 0,
    };
    for (const envelope of saved.received ?? []) await this.#take(envelope, now);
  }

  // Typed shares with the released ones of the same SLIP-39 set, one per index.
  async #tryTyped() {
    const rec = this.recovery;
    const first = shareInfo(rec.typed[0]);
    const byIndex = new Map();
    for (const mnemonic of [...rec.typed, ...rec.texts]) {
      const info = shareInfo(mnemonic);
      if (sameSet(info, first) && !byIndex.has(info.index)) byIndex.set(info.index, mnemonic);
    }
    rec.typedHave = byIndex.size;
    rec.typedNeed = first.threshold;
    if (byIndex.size < first.threshold) return;
    try {
      await this.#install(await combineShares([...byIndex.values()], { peerId: rec.forPeer }));
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      rec.reason = error.code;
    }
  }

  async #install(seed) {
    const rec = this.recovery;
    const now = this.clock();
    const { have, need } = this.recoveryState();
    const restored = await installSeed(this.peer.store, seed, rec.forPeer, now);
    rec.state = "recovered";
    this.recovered = { forPeer: rec.forPeer, have, need, at: now };
    await this.store.putShardState(RECOVERY, { state: "recovered", ...this.recovered });
    this.peer.log("info", "guardians", "identity_recovered", `identity ${restored.peerId} recovered from ${have} share(s); reloading`);
    this.#changed();
    this.onRecovered?.(restored.peerId);
  }

  async #publishRequest() {
    const rec = this.recovery;
    rec.lastPublished = this.clock();
    await this.peer.publish(TOPIC_SHARD_REQ, rec.envelope);
  }

  async #tick() {
    const now = this.clock();
    this.guardian.prune(now);
    this.owner.prune(now);
    const rec = this.recovery;
    if (rec !== null && rec.state === "collecting") {
      rec.collector.tick(now);
      if (rec.collector.state === "collecting" && now - rec.lastPublished >= REPUBLISH_MS) await this.#publishRequest();
    }
    this.#changed();
  }

  // --- transport ---

  #opened(peerId, caps) {
    this.caps.set(peerId, caps);
    if (!caps.includes(SHARD_CAP)) return;
    this.#background(async () => {
      const now = this.clock();
      this.owner.seen(peerId, now);
      for (const envelope of this.owner.outgoingFor(peerId)) this.#deliver(peerId, envelope);
      for (const receipt of await this.guardian.receiptsFor(peerId, { now })) this.#deliver(peerId, receipt);
      for (const envelope of this.answers.get(peerId) ?? []) this.#deliver(peerId, envelope);
      // A new device asks each peer that arrives directly too (gossip may have passed it by),
      // and publishes on its first connection after a reload.
      if (this.recovery?.state === "collecting") {
        this.#deliver(peerId, this.recovery.envelope);
        if (this.recovery.lastPublished === 0) await this.#publishRequest();
      }
      await this.#saveOwner();
      this.#changed();
    });
  }

  /** Send one message to `to`: directly when connected, else through connected super-peers with mailboxes. */
  #deliver(to, envelope) {
    const frame = { t: "shard_msg", to, msg: envelope };
    if (this.caps.get(to)?.includes(SHARD_CAP) && this.peer.send(to, frame)) return "direct";
    let relayed = 0;
    for (const [id, caps] of this.caps) {
      if (id !== to && caps.includes(RELAY_CAP) && caps.includes(SHARD_CAP) && this.peer.send(id, frame)) relayed += 1;
    }
    return relayed > 0 ? "relayed" : "waiting";
  }

  #answer(temp, envelopes) {
    if (temp === null) return;
    this.answers.delete(temp);
    this.answers.set(temp, envelopes);
    if (this.answers.size > MAX_ANSWERED_TEMPS) this.answers.delete(this.answers.keys().next().value);
    for (const envelope of envelopes) this.#deliver(temp, envelope);
  }

  // --- plumbing ---

  #queue(work) {
    const run = this.inbox.then(work);
    this.inbox = run.catch(() => {});
    return run;
  }

  #background(work) {
    this.#queue(work).catch((error) => this.peer.log("error", "guardians", error?.code ?? "internal_error", String(error?.stack ?? error)));
  }

  #saveGuardian() {
    return this.store.putShardState(GUARDIAN, { peerId: this.peer.peerId, snapshot: this.guardian.snapshot() });
  }

  #saveOwner() {
    return this.store.putShardState(OWNER, { peerId: this.peer.peerId, slipSet: this.slipSet, snapshot: this.owner.snapshot() });
  }

  #saveRecovery() {
    const rec = this.recovery;
    if (rec === null || rec.state !== "collecting") return Promise.resolve();
    const value = { state: "collecting", temp: this.peer.peerId, forPeer: rec.forPeer, envelope: rec.envelope, received: rec.collector.received() };
    return this.store.putShardState(RECOVERY, value);
  }

  #changed() {
    this.dispatchEvent(new Event("change"));
  }
}

// The temporary identity a release or refusal is addressed to (its signed body names it).
function tempOf(envelope) {
  return envelope?.body?.temp ?? null;
}
