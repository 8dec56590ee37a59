// The service worker (static/swarm/sw.js, docs/offline.md) run in a sandbox with an
// in-memory CacheStorage, a scripted network and scripted window clients: what it touches,
// the precache, pages network-first with the cached fallback, versioned files from any
// version's cache, and which caches the clean-up deletes.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import vm from "node:vm";

const SOURCE = readFileSync(new URL("../../static/swarm/sw.js", import.meta.url), "utf8");
const ORIGIN = "http://127.0.0.1:8000";
const MANIFEST_ID = "QFOJZOg_EBr60ZjRehltCDxw_cMuzt-kUh6_Pa2NwOI";
const V1 = "1111111111111111";
const V2 = "2222222222222222";
const FILES = ["swarm/main.js", "swarm/ui/dom.js", "vendor/uplot/uPlot.esm.js"];

const abs = (url) => new URL(url, ORIGIN).href;
const keyOf = (input) => {
  const url = new URL(typeof input === "string" ? input : input.url, ORIGIN);
  url.hash = "";
  return url.href;
};

class FakeCache {
  constructor(owner) {
    this.owner = owner;
    this.entries = new Map();
  }
  async match(input) {
    return this.entries.get(keyOf(input))?.clone();
  }
  async put(input, response) {
    this.entries.set(keyOf(input), response.clone());
  }
  async addAll(urls) {
    const answers = await Promise.all(urls.map((u) => this.owner.network.fetch(u)));
    if (answers.some((r) => !r.ok)) throw new TypeError("addAll: a request failed");
    answers.forEach((r, i) => {
      this.entries.set(keyOf(urls[i]), r);
    });
  }
  async keys() {
    return [...this.entries.keys()].map((url) => ({ url }));
  }
}

class FakeCaches {
  constructor(network) {
    this.network = network;
    this.map = new Map();
  }
  async open(name) {
    if (!this.map.has(name)) this.map.set(name, new FakeCache(this));
    return this.map.get(name);
  }
  async keys() {
    return [...this.map.keys()];
  }
  async delete(name) {
    return this.map.delete(name);
  }
  async match(input, { cacheName } = {}) {
    const names = cacheName ? [cacheName] : [...this.map.keys()];
    for (const name of names) {
      const hit = await this.map.get(name)?.match(input);
      if (hit) return hit;
    }
    return undefined;
  }
}

/** The server of one deploy: its version's files and pages; anything else 404. */
class FakeNetwork {
  constructor(version) {
    this.version = version;
    this.down = false;
    this.delayMs = 0;
    this.status = 200;
    this.requests = [];
  }
  async fetch(input) {
    const url = new URL(typeof input === "string" ? input : input.url, ORIGIN);
    this.requests.push(url.pathname + url.search);
    if (this.delayMs) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    if (this.down) throw new TypeError("Failed to fetch");
    const prefix = `/static/v/${this.version}/`;
    if (url.pathname.startsWith(prefix) && FILES.includes(url.pathname.slice(prefix.length))) {
      return new Response(`${url.pathname.slice(prefix.length)} of ${this.version}`);
    }
    if (/^\/(f\/[\w-]+)?$/.test(url.pathname)) {
      const headers = { "X-Swarm-Version": this.version };
      return new Response(`page ${url.pathname}${url.search} of ${this.version}`, { status: this.status, headers });
    }
    return new Response("not found", { status: 404 });
  }
}

/** A window client answering the worker's version question (or not: answer undefined). */
function windowClient(url, answer) {
  return {
    url: abs(url),
    postMessage(message, ports) {
      assert.equal(message.type, "swarm-version?");
      if (answer !== undefined) ports[0].postMessage({ type: "swarm-version", version: answer });
      else setTimeout(() => ports[0].close(), 0);
    },
  };
}

function worker({ version = V2, network = new FakeNetwork(version), caches = new FakeCaches(network), clients = [], manifest = true } = {}) {
  caches.network = network; // the server of the worker's deploy
  const listeners = {};
  const self = {
    location: { href: `${ORIGIN}/sw.js`, origin: ORIGIN },
    addEventListener: (type, fn) => {
      listeners[type] = fn;
    },
    skipWaiting: async () => {},
    clients: { matchAll: async () => clients, claim: async () => {} },
  };
  if (manifest) {
    self.SWARM_OFFLINE = {
      version,
      static_root: "/static/v/",
      precache: FILES.map((f) => `/static/v/${version}/${f}`),
      pages: ["/"],
      version_header: "X-Swarm-Version",
      nav_timeout_ms: 40,
      ask_timeout_ms: 40,
    };
  }
  const context = vm.createContext({ self, caches, fetch: (input) => network.fetch(input), Response, URL, MessageChannel, setTimeout, clearTimeout });
  vm.runInContext(SOURCE, context, { filename: "sw.js" });
  /** Dispatch a fetch event: the response it was answered with, or null (left to the network). */
  const fetchEvent = async (url, { mode = "cors", method = "GET" } = {}) => {
    let answer = null;
    const waits = [];
    listeners.fetch({
      request: { url: abs(url), mode, method },
      respondWith: (p) => {
        answer = p;
      },
      waitUntil: (p) => waits.push(p),
    });
    const response = answer === null ? null : await answer;
    await Promise.all(waits);
    return response;
  };
  return { self, listeners, caches, network, fetchEvent, api: self.swarmWorker };
}

async function installed(options = {}) {
  const w = worker(options);
  await w.api.install();
  return w;
}

const page = (path = "/") => ({ mode: "navigate", path });

test("only pages and versioned files are the worker's; everything else goes to the network untouched", async () => {
  const { api, listeners } = worker();
  const req = (url, mode = "cors", method = "GET") => api.routeOf({ url: abs(url), mode, method });
  assert.equal(req("/", "navigate"), "page");
  assert.equal(req("/?community=photos", "navigate"), "page");
  assert.equal(req(`/f/${MANIFEST_ID}`, "navigate"), "page");
  assert.equal(req(`/static/v/${V2}/swarm/main.js`), "static");
  assert.equal(req(`/static/v/${V1}/vendor/uplot/uPlot.esm.js`), "static");
  for (const url of [
    "/signal/peerjs?id=x",
    "/signal/",
    "/beacon/v1/main/announce",
    "/beacon/v1/main/peers",
    "/capsules/main.json",
    "/admin/",
    "/admin/dashboard/",
    "/metrics",
    "/healthz",
    "/sw.js",
    "/static/swarm/main.js",
    "/f/not-a-manifest-id",
    "http://other.example/static/v/1111111111111111/swarm/main.js",
  ]) {
    assert.equal(req(url, "navigate"), null, url);
    assert.equal(req(url), null, url);
  }
  assert.equal(req("/", "cors"), null, "a script's fetch of / is not a navigation");
  for (const method of ["POST", "PUT", "DELETE", "HEAD"]) {
    assert.equal(req("/", "navigate", method), null);
    assert.equal(req(`/static/v/${V2}/swarm/main.js`, "cors", method), null);
  }
  assert.deepEqual(Object.keys(listeners).sort(), ["activate", "fetch", "install", "message"]);
  // Served raw as /static/swarm/sw.js it has no manifest: no listener at all.
  assert.deepEqual(Object.keys(worker({ manifest: false }).listeners), []);
});

test("install precaches every file of its version and the root page, all or nothing", async () => {
  const w = await installed();
  const cache = w.caches.map.get(`swarm-${V2}`);
  assert.deepEqual([...cache.entries.keys()].sort(), [abs("/"), ...FILES.map((f) => abs(`/static/v/${V2}/${f}`))].sort());
  // The deploy changed under the installing worker: its files 404, nothing is added.
  const stale = worker({ version: V1, network: new FakeNetwork(V2) });
  await assert.rejects(stale.api.install());
  assert.equal(stale.caches.map.get(`swarm-${V1}`).entries.size, 0);
  // The root page of another version fails it too.
  const network = new FakeNetwork(V2);
  network.fetch = async (input) =>
    String(input.url ?? input).endsWith("/") ? new Response("page", { headers: { "X-Swarm-Version": V1 } }) : FakeNetwork.prototype.fetch.call(network, input);
  await assert.rejects(worker({ network }).api.install());
});

test("install keeps the pages open now: the first visit went by the worker", async () => {
  const w = await installed({ clients: [windowClient("/?community=photos", V2), windowClient("/admin/", undefined)] });
  const keys = [...w.caches.map.get(`swarm-${V2}`).entries.keys()];
  assert.ok(keys.includes(abs("/?community=photos")));
  assert.ok(!keys.includes(abs("/admin/")));
});

test("a new version carries the pages the older caches held", async () => {
  const old = await installed({ version: V1 });
  await old.fetchEvent(`/f/${MANIFEST_ID}#k=secret`, page());
  const network = new FakeNetwork(V2);
  const w = await installed({ version: V2, network, caches: old.caches });
  const cache = w.caches.map.get(`swarm-${V2}`);
  const stored = await cache.match(abs(`/f/${MANIFEST_ID}`));
  assert.equal(await stored.text(), `page /f/${MANIFEST_ID} of ${V2}`);
  assert.ok(![...cache.entries.keys(), ...old.caches.map.get(`swarm-${V1}`).entries.keys()].some((k) => k.includes("secret")));
});

test("pages: network first and kept; the cached copy when the network fails, errs or is slow", async () => {
  const w = await installed();
  const fresh = await w.fetchEvent("/?community=photos", page());
  assert.equal(await fresh.text(), `page /?community=photos of ${V2}`);
  assert.ok(await w.caches.map.get(`swarm-${V2}`).match(abs("/?community=photos")));
  w.network.down = true;
  assert.equal(await (await w.fetchEvent("/?community=photos", page())).text(), `page /?community=photos of ${V2}`);
  assert.equal((await w.fetchEvent("/?community=never-seen", page())).type, "error");
  w.network.down = false;
  w.network.status = 503;
  assert.equal((await w.fetchEvent("/", page())).status, 200);
  w.network.status = 200;
  w.network.delayMs = 400; // longer than nav_timeout_ms
  const started = Date.now();
  const slow = await w.fetchEvent("/", page());
  assert.equal(slow.status, 200);
  assert.ok(Date.now() - started < 1_000);
  // Without a cached copy a slow page is waited for.
  assert.equal(await (await w.fetchEvent("/?community=slow", page())).text(), `page /?community=slow of ${V2}`);
});

test("a page of another version than the worker's is shown but not kept", async () => {
  const w = await installed({ version: V1, network: new FakeNetwork(V1) });
  w.network.version = V2; // deployed while the V1 worker runs
  const response = await w.fetchEvent(`/f/${MANIFEST_ID}`, page());
  assert.equal(await response.text(), `page /f/${MANIFEST_ID} of ${V2}`);
  assert.equal(await w.caches.match(abs(`/f/${MANIFEST_ID}`)), undefined);
});

test("a versioned file comes from whichever cache holds it; an old one is never replaced by a new file", async () => {
  const old = await installed({ version: V1, network: new FakeNetwork(V1) });
  const network = new FakeNetwork(V2);
  const w = await installed({ version: V2, network, caches: old.caches });
  network.requests.length = 0;
  const lazy = await w.fetchEvent(`/static/v/${V1}/vendor/uplot/uPlot.esm.js`);
  assert.equal(await lazy.text(), `vendor/uplot/uPlot.esm.js of ${V1}`);
  assert.equal(await (await w.fetchEvent(`/static/v/${V2}/swarm/main.js`)).text(), `swarm/main.js of ${V2}`);
  assert.deepEqual(network.requests, [], "both from the caches");
  // Lost from the cache (storage pressure): the server no longer has it, and says so.
  old.caches.map.get(`swarm-${V1}`).entries.delete(abs(`/static/v/${V1}/swarm/ui/dom.js`));
  assert.equal((await w.fetchEvent(`/static/v/${V1}/swarm/ui/dom.js`)).status, 404);
  assert.equal(await w.caches.match(abs(`/static/v/${V1}/swarm/ui/dom.js`)), undefined);
  // Left out of this version's cache: fetched and kept again.
  w.caches.map.get(`swarm-${V2}`).entries.delete(abs(`/static/v/${V2}/swarm/ui/dom.js`));
  assert.equal((await w.fetchEvent(`/static/v/${V2}/swarm/ui/dom.js`)).status, 200);
  assert.ok(await w.caches.map.get(`swarm-${V2}`).match(abs(`/static/v/${V2}/swarm/ui/dom.js`)));
});

test("the clean-up keeps the versions open pages run, and everything when a page does not answer", async () => {
  const network = new FakeNetwork(V2);
  const caches = new FakeCaches(network);
  for (const v of ["0000000000000000", V1, V2]) await caches.open(`swarm-${v}`);
  await caches.open("someone-elses-cache");
  const clients = [windowClient("/", V1), windowClient(`/f/${MANIFEST_ID}`, V2), windowClient("/admin/", undefined), windowClient("/?community=x", null)];
  const w = worker({ network, caches, clients });
  const cleanup = async () => [...(await w.api.cleanup())]; // an array of the sandbox's realm
  assert.deepEqual(await cleanup(), ["swarm-0000000000000000"]);
  assert.deepEqual((await caches.keys()).sort(), ["someone-elses-cache", `swarm-${V1}`, `swarm-${V2}`]);
  clients.push(windowClient("/", undefined)); // a page still loading
  assert.deepEqual(await cleanup(), []);
  clients.splice(0, 1);
  clients.pop();
  assert.deepEqual(await cleanup(), [`swarm-${V1}`]);
  // A page starting says hello: the same clean-up.
  await caches.open(`swarm-${V1}`);
  let wait = null;
  w.listeners.message({ data: { type: "swarm-hello", version: V2 }, waitUntil: (p) => (wait = p) });
  await wait;
  assert.deepEqual((await caches.keys()).sort(), ["someone-elses-cache", `swarm-${V2}`]);
});
