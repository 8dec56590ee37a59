// Entry point of the page: read the config, open storage, start the peer with its content
// layers (files, keys, feed, guardians), show it. On a share link page (/f/<id>#k=...) also fetch the file.
import { parseShareFragment, parseShareHints } from "./protocol/chunks.js";
import { parseConfig } from "./adapters/config.js";
import { ContentStore } from "./adapters/contentstore.js";
import { IDENTITY_CHANNEL } from "./adapters/identity.js";
import { staticVersion, startOffline } from "./adapters/offline.js";
import { FileService } from "./content/files.js";
import { DownloadPanel, FilesUI } from "./ui/files.js";
import { SwarmPeer } from "./adapters/peer.js";
import { openStore } from "./adapters/store.js";

// The rest of the page is imported here, at once, but not statically: main() runs as soon as
// the modules above are in (storage, identity, signaling and files do not wait for these),
// and they are awaited where they are first used, before any connection opens. The page
// preloads them after its static graph (page/modules.py).
const later = Promise.all([
  import("./content/feed.js"),
  import("./ui/feed.js"),
  import("./content/guardians.js"),
  import("./ui/guardians.js"),
  import("./content/repair.js"),
  import("./content/keyshare.js"),
  import("./content/mail.js"),
  import("./content/outbox.js"),
  import("./ui/outbox.js"),
  import("./adapters/dht.js"),
  import("./adapters/supernodes.js"),
  import("./ui/status.js"),
]).then(([feed, feedUI, guardians, guardiansUI, repair, keyshare, mail, outbox, outboxUI, dht, supernodes, status]) => ({
  PostService: feed.PostService,
  FeedUI: feedUI.FeedUI,
  GuardianService: guardians.GuardianService,
  GuardiansUI: guardiansUI.GuardiansUI,
  RepairService: repair.RepairService,
  KeyShare: keyshare.KeyShare,
  MailService: mail.MailService,
  OutboxService: outbox.OutboxService,
  OutboxUI: outboxUI.OutboxUI,
  PageDht: dht.PageDht,
  Supernodes: supernodes.Supernodes,
  SwarmUI: status.SwarmUI,
}));
// Unhandled only if main() never awaits it (an insecure context): that page starts nothing.
later.catch(() => {});

// Where a page's start goes (bench/pagestart.py reads these): `swarm:<step>` marks.
const mark = (step) => globalThis.performance?.mark?.(`swarm:${step}`);

function fail(message) {
  const status = document.getElementById("swarm-status");
  status.dataset.state = "offline";
  status.dataset.reason = message;
  status.dataset.reasons = "start_failed";
  status.querySelector(".state-reason").textContent = message;
  console.error(message);
}

// WebCrypto (the identity's keys) exists only in a secure context: HTTPS, or plain HTTP on
// loopback. Elsewhere the page says so and starts nothing, rather than failing on its first key.
function secureContext() {
  return globalThis.isSecureContext !== false && typeof globalThis.crypto?.subtle?.digest === "function";
}

function explainInsecureContext() {
  const status = document.getElementById("swarm-status");
  const message = "not a secure context: open this page over HTTPS";
  status.dataset.state = "offline";
  status.dataset.reasons = "insecure_context";
  status.dataset.reason = message;
  status.querySelector(".state-reason").textContent = message;
  const https = new URL(location.href);
  https.protocol = "https:";
  // An HTTPS server on another port than this plain one is unknown: the default port it is.
  if (location.protocol === "http:") https.port = "";
  const link = document.getElementById("insecure-https");
  link.href = https.href;
  link.textContent = https.href;
  document.getElementById("insecure-origin").textContent = location.origin;
  document.getElementById("insecure-context").hidden = false;
  console.warn(`Swarm: ${message} (WebCrypto is not available at ${location.origin})`);
}

async function main() {
  mark("main");
  if (!secureContext()) {
    explainInsecureContext();
    return;
  }
  let config;
  try {
    config = parseConfig(JSON.parse(document.getElementById("swarm-config").textContent), location.href);
  } catch (error) {
    fail(`bad page config: ${error.message}`);
    return;
  }
  // A share link's holder hints (&h=): peers to dial before anyone else.
  // They are dialed for its manifest (a full holder still takes that download).
  const downloadCard = document.getElementById("download");
  if (downloadCard) {
    config.hints = parseShareHints(location.hash);
    config.hintManifest = downloadCard.dataset.manifestId || null;
  }
  const { store, problem } = await openStore();
  mark("store");
  const peer = new SwarmPeer({ config, store });
  // Read-only hooks for people and tests (DESIGN section 9): peerId, connectedPeers().
  window.swarm = peer;
  // The service worker keeps this version of the page for offline use (docs/offline.md).
  startOffline({
    version: staticVersion(import.meta.url),
    log: (level, code, message) => peer.log(level, "offline", code, message),
    busy: () => peer.files?.busy ?? false,
  });
  // Tabs of this origin share the stored identity: when one restores another identity, the
  // others reload as it rather than keep running as the one it replaced (a tab without
  // IndexedDB has an identity of its own and nothing to reload).
  const identityChannel = store.persistent && typeof BroadcastChannel === "function" ? new BroadcastChannel(IDENTITY_CHANNEL) : null;
  identityChannel?.addEventListener("message", (event) => {
    if (event.data?.peer_id === peer.peerId) return;
    peer.log("info", "identity", "identity_replaced", `another tab restored identity ${event.data?.peer_id}; reloading`);
    location.reload();
  });
  if (problem) peer.log("warn", "store", "no_indexeddb", `IndexedDB unavailable (${problem}): nothing is kept after this tab`);
  const content = new ContentStore(store.db ?? null);
  // Share links name the community only when the page was opened for another than the default.
  const linkQuery = new URL(location.href).searchParams.has("community") ? `?community=${encodeURIComponent(config.community)}` : "";
  peer.beforeConnect = async () => {
    const settings = await store.getSettings();
    const { PostService, GuardianService, RepairService, KeyShare, MailService, OutboxService, PageDht, Supernodes } = await later;
    peer.supernodes = new Supernodes({ peer }).start(settings);
    peer.files = await new FileService({ peer, store: content, linkQuery }).start(settings);
    // Repair by peers: while the person keeps copies for the swarm (docs/replication.md).
    peer.repair = new RepairService({ peer, files: peer.files }).start();
    peer.dht = await new PageDht({ peer, files: peer.files }).start();
    peer.keys = await new KeyShare({ peer, store: content, files: peer.files }).start();
    peer.posts = await new PostService({ peer, store: content }).start(settings);
    peer.guardians = await new GuardianService({ peer, store: content, keys: peer.keys, onRecovered: (id) => onRestored(id) }).start();
    peer.mail = await new MailService({ peer, store: content, keys: peer.keys }).start();
    peer.outbox = await new OutboxService({ peer, store: content, mail: peer.mail, keys: peer.keys, files: peer.files, posts: peer.posts }).start();
    mark("content");
  };
  // After a restore (backup or guardians) the other tabs and this one reload as that peer.
  const onRestored = (peerId) => {
    identityChannel?.postMessage({ type: "restored", peer_id: peerId });
    location.reload();
  };
  try {
    await peer.start();
  } catch (error) {
    fail(`could not start: ${error.message}`);
    peer.log("error", "swarm", "start_failed", String(error?.stack ?? error));
    return;
  }
  // A share link's download starts first: the cards below do not change what it fetches.
  const panel = document.getElementById("download");
  let download = null;
  if (panel) {
    let key = null;
    let keyError = null;
    try {
      key = parseShareFragment(location.hash);
    } catch (error) {
      keyError = error;
    }
    download = new DownloadPanel({ peer, files: peer.files, manifestId: panel.dataset.manifestId, key, keyError }).mount();
  }
  const { FeedUI, GuardiansUI, OutboxUI, SwarmUI } = await later;
  new SwarmUI(peer, { onRestored }).mount();
  new FilesUI({ peer, files: peer.files, keys: peer.keys, outbox: peer.outbox }).mount();
  new OutboxUI({ outbox: peer.outbox }).mount();
  new FeedUI({ peer, posts: peer.posts, files: peer.files }).mount();
  new GuardiansUI({ peer, guardians: peer.guardians }).mount();
  // Every control now has its handlers and shows the stored settings (tests wait for this).
  document.documentElement.dataset.ui = "mounted";
  mark("mounted");
  await download;
}

// Every form of the page is handled by its script: none may submit natively (a click before
// the UI has mounted its handlers would otherwise reload the page).
addEventListener("submit", (event) => event.preventDefault(), true);

// A page restored from the back/forward cache said bye to its peers when it was hidden.
addEventListener("pageshow", (event) => {
  if (event.persisted) location.reload();
});

main();
