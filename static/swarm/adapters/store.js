// IndexedDB (through idb): the identity, settings (blocks, allow list, toggles), the peer
// cache per community, daily metric buckets; version 2 adds the content stores that
// contentstore.js reads and writes (files, chunks, posts, peer keys), version 3 the guardian
// and recovery state (shards), version 4 the outbox and the ids of mail already taken (mailseen).
// MemoryStore has the same interface for tests and for browsers
// where IndexedDB is unavailable (private windows in some browsers).
import { openDB } from "idb";

export const DB_NAME = "swarm";
const DB_VERSION = 4;
const IDENTITY_KEY = "self";
const SETTINGS_KEY = "settings";

class IdbStore {
  constructor(db) {
    this.db = db;
    this.persistent = true;
  }

  getIdentity() {
    return this.db.get("identity", IDENTITY_KEY);
  }

  putIdentity(record) {
    return this.db.put("identity", record, IDENTITY_KEY);
  }

  async getSettings() {
    return (await this.db.get("settings", SETTINGS_KEY)) ?? {};
  }

  putSettings(settings) {
    return this.db.put("settings", settings, SETTINGS_KEY);
  }

  async loadPeers(community) {
    return this.db.getAllFromIndex("peers", "community", community);
  }

  /** Replace the cached peers of a community in one transaction. */
  async savePeers(community, records) {
    const tx = this.db.transaction("peers", "readwrite");
    const keys = await tx.store.index("community").getAllKeys(community);
    await Promise.all(keys.map((key) => tx.store.delete(key)));
    await Promise.all(records.map((r) => tx.store.put({ ...r, community, key: `${community}/${r.peerId}` })));
    await tx.done;
  }

  loadMetrics() {
    return this.db.getAll("metrics");
  }

  async saveMetrics(records, expiredDays = []) {
    const tx = this.db.transaction("metrics", "readwrite");
    await Promise.all([...records.map((r) => tx.store.put(r)), ...expiredDays.map((day) => tx.store.delete(day))]);
    await tx.done;
  }

  close() {
    this.db.close();
  }
}

export class MemoryStore {
  constructor() {
    this.persistent = false;
    this.identity = undefined;
    this.settings = {};
    this.peers = new Map();
    this.metrics = new Map();
  }

  async getIdentity() {
    return this.identity;
  }

  async putIdentity(record) {
    this.identity = record;
  }

  async getSettings() {
    return structuredClone(this.settings);
  }

  async putSettings(settings) {
    this.settings = structuredClone(settings);
  }

  async loadPeers(community) {
    return structuredClone(this.peers.get(community) ?? []);
  }

  async savePeers(community, records) {
    this.peers.set(community, structuredClone(records));
  }

  async loadMetrics() {
    return [...this.metrics.values()].map((r) => structuredClone(r));
  }

  async saveMetrics(records, expiredDays = []) {
    for (const r of records) this.metrics.set(r.day, structuredClone(r));
    for (const day of expiredDays) this.metrics.delete(day);
  }

  close() {}
}

/** The IndexedDB store, or a MemoryStore (with a reason) when IndexedDB cannot be opened. */
export async function openStore(name = DB_NAME) {
  try {
    const db = await openDB(name, DB_VERSION, {
      upgrade(db, oldVersion) {
        if (oldVersion < 1) {
          db.createObjectStore("identity");
          db.createObjectStore("settings");
          db.createObjectStore("peers", { keyPath: "key" }).createIndex("community", "community");
          db.createObjectStore("metrics", { keyPath: "day" });
        }
        if (oldVersion < 2) {
          db.createObjectStore("files", { keyPath: "id" }); // manifest id -> file record
          db.createObjectStore("chunks"); // chunk id -> ciphertext bytes
          db.createObjectStore("posts", { keyPath: ["author", "seq"] });
          db.createObjectStore("peerkeys", { keyPath: "peerId" }); // X25519 announcements
        }
        if (oldVersion < 3) {
          db.createObjectStore("shards"); // guardian, owner and recovery state (content/guardians.js)
        }
        if (oldVersion < 4) {
          db.createObjectStore("outbox", { keyPath: "id" }); // what this person made, until delivered (content/outbox.js)
          db.createObjectStore("mailseen", { keyPath: "id" }); // mail ids taken, so a mail is handled once (content/mail.js)
        }
      },
    });
    return { store: new IdbStore(db), problem: null };
  } catch (error) {
    return { store: new MemoryStore(), problem: String(error?.message ?? error) };
  }
}
