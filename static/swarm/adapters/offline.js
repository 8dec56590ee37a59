// The page's side of the service worker (static/swarm/sw.js, docs/offline.md): registers
// /sw.js, tells the worker which static version this page runs (so that version's cache stays
// while the page is open) and says hello once started and whenever a new worker takes over
// (the worker then deletes the caches no open page uses).

const VERSION_RE = /\/v\/([0-9a-f]{8,64})\//;

/** The static version in a module URL (/static/v/<version>/swarm/main.js), or null. */
export function staticVersion(moduleUrl) {
  const match = VERSION_RE.exec(new URL(moduleUrl).pathname);
  return match ? match[1] : null;
}

/**
 * Register the worker (pages served under a versioned prefix only) and answer its questions.
 * Never throws and never waits: the page starts the same with or without a worker.
 * @param {{ version: string | null, log: (level: string, code: string, message: string) => void, busy?: () => boolean }} args
 */
export function startOffline({ version, log, busy = () => false }) {
  const container = globalThis.navigator?.serviceWorker;
  if (!container) {
    log("info", "sw_unsupported", "no service worker here: the page needs the server to load");
    return;
  }
  container.addEventListener("message", (event) => {
    if (event.data?.type === "swarm-version?") event.ports[0]?.postMessage({ type: "swarm-version", version });
  });
  container.startMessages();
  if (!version) return;
  const hello = () => container.controller?.postMessage({ type: "swarm-hello", version });
  container.addEventListener("controllerchange", hello);
  hello();
  // Installing a worker fetches every file of the page (about 0.8 MB): not while the page
  // starts and makes its first connections, nor while files move (`busy()`: the pages' CPU is
  // what limits a transfer), but once it has loaded and the browser is idle.
  whenSettled(() => register(container, log), busy);
}

const SETTLE_MS = 3_000;
const BUSY_RECHECK_MS = 2_000;
export const BUSY_MAX_MS = 120_000; // a download waiting for a holder does not keep it away for ever

/** Runs `run` once the page has loaded, SETTLE_MS more have passed, the browser is idle and
 * `busy()` is false (or has been true for BUSY_MAX_MS). */
export function whenSettled(run, busy = () => false, { now = () => performance.now(), doc = globalThis.document, win = globalThis } = {}) {
  let since = null;
  const attempt = () => {
    since ??= now();
    if (busy() && now() - since < BUSY_MAX_MS) setTimeout(attempt, BUSY_RECHECK_MS);
    else run();
  };
  const idle = () => (typeof win.requestIdleCallback === "function" ? win.requestIdleCallback(attempt, { timeout: SETTLE_MS }) : attempt());
  const later = () => setTimeout(idle, SETTLE_MS);
  if (doc.readyState === "complete") later();
  else win.addEventListener("load", later, { once: true });
}

function register(container, log) {
  container.register("/sw.js", { scope: "/" }).then(
    (registration) => {
      const worker = registration.installing ?? registration.waiting;
      if (worker) log("info", "sw_installing", "caching the page for offline use");
      worker?.addEventListener("statechange", () => {
        if (worker.state === "activated") log("info", "sw_ready", "the page now opens without a network");
        if (worker.state === "redundant") log("warn", "sw_failed", "the offline copy could not be made; retried at the next load");
      });
    },
    (error) => log("warn", "sw_register_failed", `no offline copy: ${error?.message ?? error}`),
  );
}
