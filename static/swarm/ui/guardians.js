// The Guardians card (DESIGN section 11): this identity's guardians and their receipts
// (#guardians .guardian[data-peer-id][data-state]), the split form and the shares kept on
// paper; the owners this page guards and their recovery requests (.recovery-request[data-for]
// [data-code] with .recovery-approve / .recovery-refuse); the recovery of an identity on this
// device (#recovery[data-state][data-have][data-need], its verification code, typed shares).
import { $, ago, avatar, el, patch, short } from "./dom.js";

const REFRESH_MS = 5_000;
const STATE_LABEL = { sent: "share sent, no receipt yet", held: "holds its share", revoked: "told to delete an old share" };

// 8 digits shown as two groups, the way people read them out.
const grouped = (code) => `${code.slice(0, 4)} ${code.slice(4)}`;

export class GuardiansUI {
  constructor({ peer, guardians }) {
    this.peer = peer;
    this.guardians = guardians;
    this.picked = new Set();
  }

  mount() {
    $("guardians-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.#split();
    });
    $("recover-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.#recover();
    });
    $("recover-share-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.#addShare();
    });
    $("recover-cancel").addEventListener("click", () => this.guardians.cancelRecovery().then(() => this.#error(null)));
    this.guardians.addEventListener("change", () => this.render());
    this.peer.addEventListener("change", () => this.#renderCandidates());
    setInterval(() => this.render(), REFRESH_MS);
    this.render();
    return this;
  }

  render() {
    this.#renderGuardians();
    this.#renderCandidates();
    this.#renderGuarding();
    this.#renderRecovery();
  }

  #renderGuardians() {
    const now = Date.now();
    const rows = this.guardians
      .guardianList()
      .map((g) =>
        el(
          "li",
          { class: "guardian", "data-peer-id": g.peerId, "data-state": g.state, "data-index": g.index },
          el("span", { class: "who" }, avatar(g.peerId), el("span", { class: "mono small", title: g.peerId }, short(g.peerId))),
          el(
            "span",
            { class: `small state-${g.state}` },
            `#${g.index} · ${STATE_LABEL[g.state] ?? g.state}`,
            el("span", { class: "muted last-seen" }, g.lastSeen ? ` · seen ${ago(g.lastSeen, now)}` : " · not seen yet"),
          ),
        ),
      );
    patch($("guardians"), rows);
  }

  #renderCandidates() {
    const list = this.guardians.candidates();
    const box = $("guardian-candidates");
    const checked = new Set([...box.querySelectorAll("input.guardian-pick:checked")].map((i) => /** @type {HTMLInputElement} */ (i).value));
    patch(
      box,
      list.map((c) =>
        el(
          "label",
          { class: "candidate small" },
          el("input", { type: "checkbox", class: "guardian-pick", value: c.peerId, checked: checked.has(c.peerId) }),
          el("span", { class: "mono", title: c.peerId }, short(c.peerId)),
          el("span", { class: "muted" }, c.connected ? " connected" : " met before"),
        ),
      ),
    );
    $("guardian-candidates-empty").hidden = list.length > 0;
  }

  async #split() {
    const out = $("guardians-result");
    const guardians = [...$("guardian-candidates").querySelectorAll("input.guardian-pick:checked")].map((i) => /** @type {HTMLInputElement} */ (i).value);
    const k = Number(/** @type {HTMLInputElement} */ ($("guardians-k")).value);
    const paper = Number(/** @type {HTMLInputElement} */ ($("guardians-paper")).value || 0);
    out.className = "small";
    out.dataset.state = "working";
    out.textContent = "Splitting…";
    try {
      const { paper: shares } = await this.guardians.split({ guardians, paper, k });
      for (const box of $("guardian-candidates").querySelectorAll("input.guardian-pick")) /** @type {HTMLInputElement} */ (box).checked = false;
      out.dataset.state = "done";
      delete out.dataset.error;
      out.textContent = `New set: any ${k} of ${guardians.length + paper} shares give this identity back. Earlier guardians are told to delete theirs.`;
      $("paper-shares").replaceChildren(
        ...shares.map((s) =>
          el(
            "li",
            { class: "paper-share", "data-index": s.index },
            el("span", { class: "small muted" }, `Share ${s.index} (write it down; it is not shown again):`),
            el("code", { class: "mono small break" }, s.mnemonic),
          ),
        ),
      );
    } catch (error) {
      out.className = "small error";
      out.dataset.state = "failed";
      out.dataset.error = error.code ?? "split_failed";
      out.textContent = error.message;
    }
    this.render();
  }

  #renderGuarding() {
    const held = this.guardians.holding();
    const requests = this.guardians.requests();
    $("guarding-box").hidden = held.length === 0 && requests.length === 0;
    patch(
      $("guarding"),
      held.map((h) =>
        el(
          "li",
          { class: "guarded", "data-owner": h.owner },
          el("span", { class: "mono small", title: h.owner }, short(h.owner)),
          el("span", { class: "small muted" }, `share ${h.index} of ${h.n} (${h.k} needed)`),
        ),
      ),
    );
    patch(
      $("recovery-requests"),
      requests.map((r) => this.#requestRow(r)),
    );
  }

  #requestRow(r) {
    const row = el(
      "li",
      { class: "recovery-request", "data-for": r.forPeer, "data-code": r.code, "data-state": r.state, "data-request": r.id },
      el(
        "span",
        { class: "small" },
        "Recovery of ",
        el("span", { class: "mono", title: r.forPeer }, short(r.forPeer)),
        " asked, code ",
        el("strong", { class: "mono" }, grouped(r.code)),
        r.conflict ? el("span", { class: "error" }, " · two requests show this code: do not approve") : null,
      ),
    );
    if (r.state === "pending") {
      const act = (fn) => () => fn(r.id).catch((error) => this.#error(error));
      row.append(
        el(
          "span",
          { class: "actions" },
          el("button", { type: "button", class: "btn tiny approve recovery-approve", onclick: act((id) => this.guardians.approve(id)) }, "Approve"),
          el("button", { type: "button", class: "btn tiny danger recovery-refuse", onclick: act((id) => this.guardians.refuse(id)) }, "Refuse"),
        ),
      );
    } else row.append(el("span", { class: "small muted" }, r.state));
    return row;
  }

  async #recover() {
    const input = /** @type {HTMLInputElement} */ ($("recover-peer"));
    try {
      this.#error(null);
      await this.guardians.startRecovery(input.value.trim());
    } catch (error) {
      this.#error(error);
    }
  }

  async #addShare() {
    const input = /** @type {HTMLTextAreaElement} */ ($("recover-share"));
    try {
      this.#error(null);
      await this.guardians.addTypedShare(input.value);
      input.value = "";
    } catch (error) {
      this.#error(error);
    }
  }

  #error(error) {
    const out = $("recovery-error");
    out.hidden = error === null;
    if (error === null) {
      delete out.dataset.error;
      out.textContent = "";
      return;
    }
    out.dataset.error = error.code ?? "error";
    out.textContent = error.message;
  }

  #renderRecovery() {
    const s = this.guardians.recoveryState();
    const box = $("recovery");
    box.dataset.state = s.state;
    box.dataset.have = String(s.have ?? 0);
    box.dataset.need = s.need === null || s.need === undefined ? "" : String(s.need);
    if (s.forPeer) box.dataset.for = s.forPeer;
    else delete box.dataset.for;
    const collecting = s.state === "collecting";
    $("recover-form").hidden = collecting || s.state === "recovered";
    $("recover-share-form").hidden = !collecting;
    $("recovery-code-line").hidden = !s.code || s.state === "recovered";
    $("recovery-code").textContent = s.code ? grouped(s.code) : "";
    $("recovery-code").dataset.code = s.code ?? "";
    let status = "";
    if (collecting) {
      status =
        s.need === null
          ? `Asking the guardians of ${short(s.forPeer)}… no share yet.`
          : s.have >= s.need
            ? `${s.have} shares, ${s.need} needed, but they do not combine (${s.reason}): waiting for more.`
            : `${s.have} of ${s.need} shares: ${s.need - s.have} more needed.`;
    } else if (s.state === "recovered") status = `Recovered ${s.forPeer} from ${s.have} shares: this page is that peer now.`;
    else if (s.state === "failed") status = `The request expired (${s.reason}): ask again.`;
    $("recovery-status").textContent = status;
    const answers = [
      ...Object.entries(s.bad).map(([peerId, code]) =>
        el(
          "li",
          { class: "recovery-bad", "data-peer-id": peerId, "data-code": code },
          el("span", { class: "mono small", title: peerId }, short(peerId)),
          el("span", { class: "small error" }, `sent a share that fails its checks (${code}): skipped`),
        ),
      ),
      ...s.refused.map((peerId) =>
        el(
          "li",
          { class: "recovery-refused", "data-peer-id": peerId },
          el("span", { class: "mono small", title: peerId }, short(peerId)),
          el("span", { class: "small muted" }, "refused"),
        ),
      ),
    ];
    patch($("recovery-answers"), answers);
  }
}
