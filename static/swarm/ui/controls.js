// The Controls card's pause and block list (docs/browser.md "Pause and blocks"): the pause
// toggle and its finer form (a direction, for a while), the block form for any peer id,
// the list of blocks to review and lift, export and import. The logic is in
// protocol/controls.js; this is only the DOM.
import { deadlineAfter, MAX_BLOCKS_FILE_CHARS } from "../protocol/controls.js";

const $ = (id) => document.getElementById(id);
const short = (peerId) => `${peerId.slice(0, 7)}…${peerId.slice(-4)}`;
const DIRECTION_TEXT = { both: "both ways", inbound: "inbound", outbound: "outbound" };

/** "14:05:30", or "3 Jan, 14:05" when not today. */
export function whenText(ms, now = Date.now()) {
  const at = new Date(ms);
  const sameDay = at.toDateString() === new Date(now).toDateString();
  const time = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  return sameDay ? time : `${at.toLocaleDateString([], { day: "numeric", month: "short" })}, ${time}`;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// A "For" select with a "custom" choice that shows a minutes box: null (no end) or a deadline.
function chosenDeadline(select, minutes, now) {
  if (select.value === "") return null;
  const value = select.value === "custom" ? Number(minutes.value.trim() || Number.NaN) : Number(select.value);
  return deadlineAfter(value, now);
}

function showError(node, error) {
  node.hidden = !error;
  node.textContent = error ? `${error.code ?? "error"}: ${error.message}` : "";
  if (error) node.dataset.error = error.code ?? "error";
  else delete node.dataset.error;
}

export class PauseBlockControls {
  /** @param {import("../adapters/peer.js").SwarmPeer} peer */
  constructor(peer) {
    this.peer = peer;
    this.listKey = null; // what the list shows: redrawn only when it changes (keeps focus)
  }

  mount() {
    const { peer } = this;
    $("toggle-pause").addEventListener("change", (e) => peer.setPaused(/** @type {HTMLInputElement} */ (e.target).checked));
    $("pause-resume").addEventListener("click", () => peer.resume());
    for (const [select, box] of [
      ["pause-for", "pause-minutes"],
      ["block-for", "block-minutes"],
    ]) {
      $(select).addEventListener("change", () => {
        $(box).hidden = $(select).value !== "custom";
        if (!$(box).hidden) $(box).focus();
      });
    }
    $("pause-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const until = chosenDeadline($("pause-for"), $("pause-minutes"), peer.clock());
        await peer.pause($("pause-direction").value, { until });
        showError($("pause-error"), null);
      } catch (error) {
        showError($("pause-error"), error);
      }
      this.render();
    });
    $("block-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const until = chosenDeadline($("block-for"), $("block-minutes"), peer.clock());
        await peer.block($("block-peer-id").value, { direction: $("block-direction").value, reason: $("block-reason").value, until });
        showError($("block-error"), null);
        $("block-peer-id").value = "";
        $("block-reason").value = "";
      } catch (error) {
        showError($("block-error"), error);
      }
      this.render();
    });
    $("blocks-export").addEventListener("click", () => this.#export());
    $("blocks-import-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.#import();
    });
  }

  render() {
    const mesh = this.peer.node?.mesh;
    if (!mesh) return;
    this.#pause(mesh);
    this.#blocks(mesh);
  }

  #pause(mesh) {
    const { pause } = mesh;
    $("toggle-pause").checked = pause.active;
    const box = $("pause-state");
    const direction = pause.direction ?? "";
    const until = pause.until === null ? "" : String(pause.until);
    if (box.dataset.direction === direction && box.dataset.until === until) return;
    box.dataset.direction = direction;
    box.dataset.until = until;
    $("pause-resume").hidden = !pause.active;
    $("pause-state-text").textContent = pause.active
      ? `Paused ${DIRECTION_TEXT[direction]}${pause.until === null ? " until you resume" : ` until ${whenText(pause.until)}`}`
      : "";
  }

  #blocks(mesh) {
    const list = mesh.blocked.list();
    $("blocked-count").textContent = String(list.length);
    const key = JSON.stringify(list);
    if (key === this.listKey) return;
    this.listKey = key;
    $("blocked-list").replaceChildren(
      ...list.map((b) =>
        el(
          "li",
          { class: "block-item", "data-peer-id": b.peerId, "data-direction": b.direction, "data-until": b.until === null ? "" : String(b.until) },
          el(
            "span",
            { class: "block-what" },
            el("span", { class: "mono small", title: b.peerId }, short(b.peerId)),
            el(
              "small",
              {},
              `${DIRECTION_TEXT[b.direction]} · ${b.until === null ? "no end" : `until ${whenText(b.until)}`}${b.reason ? ` · ${b.reason}` : ""}`,
            ),
          ),
          el(
            "button",
            { type: "button", class: "btn tiny unblock", "aria-label": `Lift the block of ${b.peerId}`, onclick: () => this.peer.unblock(b.peerId) },
            "Lift",
          ),
        ),
      ),
    );
  }

  #export() {
    const data = this.peer.exportBlocks();
    const blob = new Blob([`${JSON.stringify(data, null, 2)}\n`], { type: "application/json" });
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: `swarm-blocks-${new Date(data.exported_at).toISOString().slice(0, 10)}.json`, hidden: "" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    this.#result("exported", `Exported ${data.blocks.length} block(s).`);
  }

  async #import() {
    const file = /** @type {HTMLInputElement} */ ($("blocks-import-file")).files?.[0];
    if (!file) return this.#result("failed", "no_file: choose a block list export first", "no_file");
    try {
      if (file.size > MAX_BLOCKS_FILE_CHARS) throw Object.assign(new Error("not a block list export (too large)"), { code: "bad_blocks_file" });
      const counts = await this.peer.importBlocks(await file.text());
      this.#result("imported", `Imported: ${counts.added} added, ${counts.updated} updated, ${counts.unchanged} unchanged.`);
    } catch (error) {
      this.#result("failed", `${error.code ?? "import_failed"}: ${error.message}`, error.code ?? "import_failed");
    }
    this.render();
  }

  #result(state, text, code = null) {
    const out = $("blocks-result");
    out.dataset.state = state;
    if (code) out.dataset.error = code;
    else delete out.dataset.error;
    out.textContent = text;
  }
}
