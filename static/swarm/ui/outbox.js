// The Outbox card (DESIGN section 11): one `.outbox-item[data-id][data-kind][data-state]` per
// item of content/outbox.js, newest first, with what it waits for or whom it reached.
import { $, ago, el, patch, short } from "./dom.js";

const REFRESH_MS = 5_000;
const SHOWN = 50;
const KIND_LABEL = { post: "post", key: "file key" };

function stateText(item) {
  const n = item.deliveredTo.length;
  if (item.state === "delivered") {
    return item.kind === "key" ? `delivered to ${short(item.target)}` : `delivered to ${n} peer${n === 1 ? "" : "s"}`;
  }
  if (item.state === "failed") return `failed: ${item.message || item.reason}`;
  if (item.state === "sending") {
    const held = item.kind === "key" && !item.via.includes(item.target) ? ` (held by ${item.via.length} super-peer${item.via.length === 1 ? "" : "s"})` : "";
    return item.reason ? `sending${held}; now ${item.message || item.reason}` : `sending${held}`;
  }
  return `waiting: ${item.message || item.reason || "for a connection"}`;
}

export class OutboxUI {
  constructor({ outbox }) {
    this.outbox = outbox;
  }

  mount() {
    $("outbox-card").hidden = false;
    $("outbox-clear").addEventListener("click", () => this.outbox.clearFinished().then(() => this.render()));
    this.outbox.addEventListener("change", () => this.render());
    setInterval(() => this.render(), REFRESH_MS);
    this.render();
    return this;
  }

  render() {
    const now = Date.now();
    const items = this.outbox.items();
    const open = items.filter((i) => i.state === "waiting" || i.state === "sending").length;
    $("outbox-count").textContent = String(open);
    $("outbox-empty").hidden = items.length > 0;
    const rows = items.slice(0, SHOWN).map((item) =>
      el(
        "li",
        {
          class: `outbox-item state-${item.state}`,
          "data-id": item.id,
          "data-kind": item.kind,
          "data-state": item.state,
          "data-delivered-to": item.deliveredTo.length,
        },
        el("span", { class: "chip small" }, KIND_LABEL[item.kind] ?? item.kind),
        el(
          "span",
          { class: "label" },
          item.label,
          item.target ? el("span", { class: "muted small mono", title: item.target }, ` → ${short(item.target)}`) : null,
        ),
        el("span", { class: "small state" }, stateText(item)),
        el("span", { class: "muted small" }, ago(item.createdAt, now)),
      ),
    );
    patch($("outbox"), rows);
  }
}
