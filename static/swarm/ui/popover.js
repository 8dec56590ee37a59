// The status popover: the button next to #swarm-status opens a list of every reason of the
// current state (data-reasons) in words, each with what the person can do about it (Retry
// now, Resume, ...), and "Open diagnostics". Keyboard: the button toggles it, Escape closes
// it and gives the focus back to the button; a click outside closes it too.
import { $, el } from "./dom.js";

/** @type {Record<string, string>} what each reason means for the person, beyond its short text */
export const REASON_HELP = {
  network_offline: "This browser has no network: nothing can be dialed until it is back.",
  paused: "The mesh is paused: no connection, nothing sent or accepted.",
  signaling_down: "The signaling server does not answer: open connections keep working, new peers cannot be dialed.",
  no_peers: "No peer is connected: this page finds others through rendezvous, its cache and seeds.",
  peers_unresponsive: "Some connected peers stopped answering pings; they are dropped after 180 s of silence.",
  isolated: "Isolated: only peers you always allow are connected or dialed.",
  rendezvous_failing: "Beacons and capsules do not answer: new peers come only from the cache and connected peers.",
  beacon_slow: "A beacon answers slowly; peers are still found, later.",
  peers_blocked: "Blocked peers cannot connect to this page, nor this page to them.",
  start_failed: "The page could not start.",
  insecure_context: "This page needs HTTPS.",
};

// reason -> [action, label]
const ACTIONS = {
  paused: ["resume", "Resume"],
  signaling_down: ["retry", "Retry now"],
  no_peers: ["retry", "Retry now"],
  rendezvous_failing: ["retry", "Retry now"],
  beacon_slow: ["retry", "Retry now"],
  isolated: ["unisolate", "Stop isolating"],
  peers_blocked: ["blocks", "Review blocks"],
  peers_unresponsive: ["diagnostics", "Open diagnostics"],
  network_offline: ["diagnostics", "Open diagnostics"],
};

export class StatusPopover {
  constructor(peer) {
    this.peer = peer;
    this.key = null;
  }

  mount() {
    this.button = $("status-details");
    this.box = $("status-popover");
    this.list = $("status-reasons");
    if (!this.button || !this.box) return this;
    this.button.addEventListener("click", () => (this.box.hidden ? this.open() : this.close()));
    this.box.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        this.close(true);
      }
    });
    this.button.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !this.box.hidden) this.close(true);
    });
    document.addEventListener("pointerdown", (e) => {
      if (!this.box.hidden && !this.box.contains(e.target) && !this.button.contains(e.target)) this.close();
    });
    $("status-open-diagnostics").addEventListener("click", () => this.#act("diagnostics"));
    this.render();
    return this;
  }

  open() {
    this.box.hidden = false;
    this.button.setAttribute("aria-expanded", "true");
    this.render();
    (this.box.querySelector("button.reason-action") ?? $("status-open-diagnostics")).focus();
  }

  close(focusButton = false) {
    if (this.box.hidden) return;
    this.box.hidden = true;
    this.button.setAttribute("aria-expanded", "false");
    if (focusButton) this.button.focus();
  }

  render() {
    if (!this.box) return;
    const status = this.peer.status();
    const count = status.reasons.length;
    this.button.dataset.count = String(count);
    this.button.setAttribute("aria-label", count ? `Status details: ${count} reason${count === 1 ? "" : "s"}` : "Status details");
    const key = status.reasons.map((code, i) => `${code}:${status.texts?.[i] ?? ""}`).join("|");
    if (key === this.key) return;
    this.key = key;
    // Rebuilt only when the reasons change, so a focused action keeps its focus.
    const hadFocus = this.list.contains(document.activeElement) ? document.activeElement.dataset.action : null;
    this.list.replaceChildren(
      ...status.reasons.map((code, i) => {
        const [action, label] = ACTIONS[code] ?? [null, null];
        return el(
          "li",
          { class: "status-reason", "data-code": code },
          el("div", {}, el("strong", {}, status.texts?.[i] ?? code)),
          REASON_HELP[code] ? el("p", { class: "small muted" }, REASON_HELP[code]) : null,
          action ? el("button", { type: "button", class: "btn small reason-action", "data-action": action, onclick: () => this.#act(action) }, label) : null,
        );
      }),
    );
    $("status-ok").hidden = count > 0;
    if (hadFocus) (this.list.querySelector(`[data-action="${hadFocus}"]`) ?? $("status-open-diagnostics")).focus();
  }

  async #act(action) {
    const { peer } = this;
    if (action === "resume") await peer.setPaused(false);
    else if (action === "retry") peer.retryNow();
    else if (action === "unisolate") await peer.setIsolated(false);
    else if (action === "blocks") {
      this.close();
      const details = $("blocked-details");
      if (details) {
        details.open = true;
        details.scrollIntoView({ block: "center" });
        details.querySelector("summary")?.focus();
      }
      return;
    } else if (action === "diagnostics") {
      this.close();
      $("debug-card").scrollIntoView({ block: "start" });
      $("debug-feed").focus();
      return;
    }
    this.render();
  }
}
