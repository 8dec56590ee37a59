// The service worker: the page without a network (docs/offline.md). /sw.js (page/views.py)
// serves this file behind the manifest of the deploy, `self.SWARM_OFFLINE`:
//   { version, static_root: "/static/v/", precache: [urls], pages: ["/"], version_header, nav_timeout_ms }.
// Alone (as /static/swarm/sw.js) it has no manifest and does nothing.
//
// - One cache per static version, `swarm-<version>`: the precache list (every file the page
//   can load, its URLs under /static/v/<version>/) and the pages (/, ?community=..., visited
//   /f/<id>) whose HTML references that version. A versioned URL always means the same bytes: it is
//   answered from any swarm cache that holds it, else from the network (which answers only
//   the current version: an old page never gets a new file under its old URL).
// - Pages: network first; after nav_timeout_ms (or a network error, or a 5xx) the cached
//   page. A page is kept only in the cache of the version it references, and only when that
//   is this worker's version (its precache is complete).
// - Nothing else is touched: signaling, beacons, capsules, admin, metrics, healthz,
//   unversioned /static/ and every non-GET request go to the network as if there were no
//   worker.
// - A new worker installs (precache, then the pages the older caches held), takes over at
//   once, and deletes a version's cache only when no open page runs that version (it asks
//   them when it takes over and whenever a page starts; a page that does not answer keeps
//   every cache until the next check).

const MANIFEST = self.SWARM_OFFLINE ?? null;
const CACHE_PREFIX = "swarm-";
const ASK_TIMEOUT_MS = MANIFEST?.ask_timeout_ms ?? 2_000;
const MAX_PAGES = 100; // pages carried over to a new version
const PAGE_PATH_RE = /^\/(?:f\/[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048])?$/;

const cacheName = (version) => `${CACHE_PREFIX}${version}`;

/** The URL without its fragment (a share link's key never goes into a cache). */
function keyOf(url) {
  const u = new URL(url);
  u.hash = "";
  return u.href;
}

/** The version a URL under the versioned root names, or null. */
function versionOf(url) {
  if (!MANIFEST) return null;
  const root = new URL(MANIFEST.static_root, self.location.href).href;
  if (!url.startsWith(root)) return null;
  const version = url.slice(root.length).split("/")[0];
  return version || null;
}

function isPage(url) {
  const u = new URL(url);
  return u.origin === self.location.origin && PAGE_PATH_RE.test(u.pathname);
}

/** "page", "static" or null (not ours: the network answers as if there were no worker). */
function routeOf(request) {
  if (!MANIFEST || request.method !== "GET") return null;
  if (request.mode === "navigate" && isPage(request.url)) return "page";
  if (versionOf(request.url) !== null) return "static";
  return null;
}

async function swarmCaches() {
  return (await caches.keys()).filter((name) => name.startsWith(CACHE_PREFIX));
}

/** Fetch a page and keep it in this version's cache if it references this version. */
async function storePage(cache, url) {
  const response = await fetch(url, { cache: "no-cache", credentials: "same-origin" });
  if (!response.ok || response.headers.get(MANIFEST.version_header) !== MANIFEST.version) return false;
  await cache.put(keyOf(url), response);
  return true;
}

async function install() {
  const cache = await caches.open(cacheName(MANIFEST.version));
  await cache.addAll(MANIFEST.precache); // all or nothing: a file of another deploy fails it
  for (const url of MANIFEST.pages) {
    if (!(await storePage(cache, new URL(url, self.location.href).href))) throw new Error(`${url} is not of version ${MANIFEST.version}`);
  }
  // The pages open now (the first visit, which installs the worker, went by it) and those
  // older versions kept (visited share links): best effort, while online.
  const carried = new Set();
  for (const client of await self.clients.matchAll({ type: "window", includeUncontrolled: true })) {
    if (isPage(client.url)) carried.add(keyOf(client.url));
  }
  for (const name of await swarmCaches()) {
    if (name === cacheName(MANIFEST.version)) continue;
    for (const request of await (await caches.open(name)).keys()) {
      if (isPage(request.url) && carried.size < MAX_PAGES) carried.add(keyOf(request.url));
    }
  }
  await Promise.all([...carried].map((url) => storePage(cache, url).catch(() => false)));
  await self.skipWaiting();
}

/** Ask one page which static version it runs: a version, null (unversioned), or undefined (no answer). */
function askVersion(client) {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    const done = (answer) => {
      clearTimeout(timer);
      channel.port1.close();
      resolve(answer);
    };
    const timer = setTimeout(() => done(undefined), ASK_TIMEOUT_MS);
    channel.port1.onmessage = (event) => done(event.data?.version ?? null);
    client.postMessage({ type: "swarm-version?" }, [channel.port2]);
  });
}

/** Delete the caches of versions no open page runs (none when a page does not answer). */
async function cleanup() {
  const windows = (await self.clients.matchAll({ type: "window", includeUncontrolled: true })).filter((c) => isPage(c.url));
  const answers = await Promise.all(windows.map(askVersion));
  if (answers.includes(undefined)) return [];
  const keep = new Set([cacheName(MANIFEST.version), ...answers.filter(Boolean).map(cacheName)]);
  const gone = (await swarmCaches()).filter((name) => !keep.has(name));
  await Promise.all(gone.map((name) => caches.delete(name)));
  return gone;
}

async function cachedPage(url) {
  const key = keyOf(url);
  const own = cacheName(MANIFEST.version);
  const names = (await swarmCaches()).filter((n) => n !== own).reverse();
  for (const name of [own, ...names]) {
    const hit = await caches.match(key, { cacheName: name, ignoreVary: true });
    if (hit) return hit;
  }
  return null;
}

async function navigate(event) {
  const { request } = event;
  const network = fetch(request).then(async (response) => {
    if (response.ok && response.headers.get(MANIFEST.version_header) === MANIFEST.version) {
      const cache = await caches.open(cacheName(MANIFEST.version));
      await cache.put(keyOf(request.url), response.clone());
    }
    return response;
  });
  event.waitUntil(network.catch(() => null));
  const slow = Symbol("slow");
  let first;
  try {
    first = await Promise.race([network, new Promise((resolve) => setTimeout(() => resolve(slow), MANIFEST.nav_timeout_ms))]);
  } catch {
    return (await cachedPage(request.url)) ?? Response.error();
  }
  if (first !== slow) return first.status >= 500 ? ((await cachedPage(request.url)) ?? first) : first;
  const cached = await cachedPage(request.url);
  if (cached) return cached;
  try {
    return await network;
  } catch {
    return Response.error();
  }
}

async function staticFile(request) {
  const hit = await caches.match(request, { ignoreVary: true });
  if (hit) return hit;
  const response = await fetch(request);
  if (response.ok && versionOf(request.url) === MANIFEST.version) {
    const cache = await caches.open(cacheName(MANIFEST.version));
    await cache.put(request, response.clone());
  }
  return response;
}

if (MANIFEST) {
  self.addEventListener("install", (event) => event.waitUntil(install()));
  // Pages loading now wait for the activation: the clean-up runs when they say hello.
  self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
  self.addEventListener("fetch", (event) => {
    const route = routeOf(event.request);
    if (route === "page") event.respondWith(navigate(event));
    else if (route === "static") event.respondWith(staticFile(event.request));
  });
  // A page started (or asks for a check): the caches of versions nobody runs can go.
  self.addEventListener("message", (event) => {
    if (event.data?.type === "swarm-hello") event.waitUntil(cleanup());
  });
}

// For tests/js/sw.test.js, which runs this file in a sandbox.
self.swarmWorker = { routeOf, versionOf, keyOf, cleanup, cachedPage, install };
