// Entry point of the page: read the config, open storage, start the peer, show it.
import { parseConfig } from "./config.js";
import { SwarmPeer } from "./peer.js";
import { openStore } from "./store.js";
import { SwarmUI } from "./ui.js";

function fail(message) {
  const status = document.getElementById("swarm-status");
  status.dataset.state = "offline";
  status.dataset.reason = message;
  status.querySelector(".state-reason").textContent = message;
  console.error(message);
}

async function main() {
  let config;
  try {
    config = parseConfig(JSON.parse(document.getElementById("swarm-config").textContent), location.href);
  } catch (error) {
    fail(`bad page config: ${error.message}`);
    return;
  }
  const { store, problem } = await openStore();
  const peer = new SwarmPeer({ config, store });
  // Read-only hooks for people and tests (DESIGN section 9): peerId, connectedPeers().
  window.swarm = peer;
  if (problem) peer.log("warn", "store", "no_indexeddb", `IndexedDB unavailable (${problem}): nothing is kept after this tab`);
  try {
    await peer.start();
  } catch (error) {
    fail(`could not start: ${error.message}`);
    peer.log("error", "swarm", "start_failed", String(error?.stack ?? error));
    return;
  }
  new SwarmUI(peer).mount();
}

// A page restored from the back/forward cache said bye to its peers when it was hidden.
addEventListener("pageshow", (event) => {
  if (event.persisted) location.reload();
});

main();
