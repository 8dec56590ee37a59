// The Peers card's "Known, not connected" list: the peer book's peers this page is not
// connected to, why (adapters/knownpeers.js), and Dial / Always allow / Block. Rows are
// updated in place, so a focused button stays focused across the 1 s refresh.
import { $, ago, el, setText, short } from "./dom.js";

export class KnownPeersUI {
  constructor(peer) {
    this.peer = peer;
    /** @type {Map<string, HTMLElement>} peer id -> its li */
    this.rows = new Map();
  }

  mount() {
    this.list = $("known-peers");
    if (!this.list) return this;
    this.render();
    return this;
  }

  render() {
    if (!this.list) return;
    const rows = this.peer.knownPeers();
    const now = this.peer.clock();
    $("known-count").textContent = String(rows.length);
    $("known-empty").hidden = rows.length > 0;
    const keep = new Set(rows.map((r) => r.peerId));
    for (const [peerId, li] of this.rows) {
      if (!keep.has(peerId)) {
        li.remove();
        this.rows.delete(peerId);
      }
    }
    let previous = null;
    for (const row of rows) {
      let li = this.rows.get(row.peerId);
      if (!li) {
        li = this.#row(row.peerId);
        this.rows.set(row.peerId, li);
      }
      this.#update(li, row, now);
      // Move only what is out of place: moving a node would take the focus off its button.
      const expected = previous ? previous.nextElementSibling : this.list.firstElementChild;
      if (expected !== li) {
        if (previous) previous.after(li);
        else this.list.prepend(li);
      }
      previous = li;
    }
  }

  #row(peerId) {
    const { peer } = this;
    const label = short(peerId);
    const result = el("span", { class: "known-result small", role: "status" });
    const dial = () => {
      try {
        const how = peer.connectTo(peerId);
        result.textContent = how === "connected" ? "already connected" : "dialing…";
      } catch (error) {
        result.textContent = `${error.code}: ${error.message}`;
      }
    };
    return el(
      "li",
      { class: "known-peer", "data-known-peer": "", "data-peer-id": peerId },
      el("div", { class: "known-head" }, el("span", { class: "mono", title: peerId }, label), el("span", { class: "known-meta small muted" })),
      el("div", { class: "known-why small" }),
      el(
        "div",
        { class: "known-actions" },
        el("button", { type: "button", class: "btn tiny known-dial", "aria-label": `Dial ${label}`, onclick: dial }, "Dial"),
        el(
          "button",
          {
            type: "button",
            class: "btn tiny always known-allow",
            "aria-pressed": "false",
            "aria-label": `Always allow ${label}`,
            onclick: (e) => peer.setAllowed(peerId, e.currentTarget.getAttribute("aria-pressed") !== "true"),
          },
          "Always allow",
        ),
        el("button", { type: "button", class: "btn tiny danger known-block", "aria-label": `Block ${label}`, onclick: () => peer.block(peerId) }, "Block"),
        result,
      ),
    );
  }

  #update(li, row, now) {
    if (li.dataset.why !== row.why) li.dataset.why = row.why;
    li.dataset.allowed = String(row.allowed);
    const seen = row.lastSeen ? `seen ${ago(row.lastSeen, now)}` : "never seen";
    const score = row.score === null ? "" : ` · score ${row.score.toFixed(2)}`;
    const tries = row.failures || row.successes ? ` · ${row.successes} ok / ${row.failures} failed` : "";
    setText(li.querySelector(".known-meta"), `${seen}${score}${tries}`);
    setText(li.querySelector(".known-why"), row.whyText);
    const allow = li.querySelector(".known-allow");
    allow.setAttribute("aria-pressed", String(row.allowed));
    setText(allow, row.allowed ? "Allowed always" : "Always allow");
    li.querySelector(".known-dial").disabled = row.why === "dialing" || row.why === "connecting" || row.why === "blocked";
  }
}
