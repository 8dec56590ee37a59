// The files card (#files: share by picker or drag-and-drop, the list of files with progress,
// links, open/save, share with a peer, delete) and the download panel of /f/<id> pages
// (#download, DESIGN section 9: data-state fetching -> complete | failed, data-sha256).
import { $, ago, bytes, copy, el, rate, short, throttled } from "./dom.js";
import { parseBudgetMb } from "../content/keeping.js";

const REFRESH_MS = 500;
const extension = (name) => (name?.includes(".") ? name.split(".").pop().slice(0, 4).toUpperCase() : "FILE");

function pct(held, total) {
  return total ? Math.floor((100 * held) / total) : 0;
}

export class FilesUI {
  constructor({ peer, files, keys, outbox }) {
    this.peer = peer;
    this.files = files;
    this.keys = keys;
    this.outbox = outbox;
    this.shareItems = {}; // manifest id -> the outbox item of its last key sent
    this.shareOpen = new Set(); // rows whose "share with a peer" form is open
  }

  mount() {
    $("files").hidden = false;
    const input = $("share-file");
    input.addEventListener("change", () => {
      for (const file of input.files) this.#share(file);
      input.value = "";
    });
    const zone = $("drop-zone");
    for (const type of ["dragenter", "dragover"]) {
      zone.addEventListener(type, (e) => {
        e.preventDefault();
        zone.classList.add("over");
      });
    }
    for (const type of ["dragleave", "drop"]) zone.addEventListener(type, () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      for (const file of e.dataTransfer?.files ?? []) this.#share(file);
    });
    // A file dropped anywhere else on the page should not navigate away from it.
    addEventListener("dragover", (e) => e.preventDefault());
    addEventListener("drop", (e) => e.preventDefault());
    $("share-copy").addEventListener("click", (e) => copy($("share-link").href, e.currentTarget));
    const draw = throttled(() => this.render(), REFRESH_MS);
    this.files.addEventListener("change", draw);
    this.outbox.addEventListener("change", draw);
    this.peer.addEventListener("change", () => this.#peerOptions());
    setInterval(draw, REFRESH_MS);
    this.#keepControls();
    this.render();
    this.#peerOptions();
  }

  // "Keep copies for the swarm" and its storage budget, in the controls card.
  #keepControls() {
    const toggle = $("toggle-keep");
    const budget = $("keep-budget");
    const error = $("keep-error");
    if (!toggle) return;
    toggle.checked = this.files.keeping.keep;
    budget.value = String(this.files.keeping.budget / 1e6);
    const apply = async (changes) => {
      error.hidden = true;
      try {
        await this.files.setKeeping(changes);
      } catch (e) {
        error.textContent = e.message;
        error.dataset.code = e.code ?? "error";
        error.hidden = false;
      }
      toggle.checked = this.files.keeping.keep;
      this.render();
    };
    toggle.addEventListener("change", () => apply({ keep: toggle.checked }));
    $("keep-form").addEventListener("submit", (e) => {
      e.preventDefault();
      let value;
      try {
        value = parseBudgetMb(budget.value);
      } catch (err) {
        error.textContent = err.message;
        error.dataset.code = err.code;
        error.hidden = false;
        return;
      }
      apply({ budget: value });
    });
  }

  #keepUsage() {
    const usage = $("keep-usage");
    if (!usage) return;
    const { plan } = this.files;
    usage.dataset.kept = String(plan.kept.size);
    usage.dataset.used = String(plan.used);
    const copies = this.files.swarmCopies();
    usage.dataset.keyless = String(copies.length);
    const keyless = copies.filter((r) => plan.kept.has(r.id)).length;
    usage.textContent = plan.keep
      ? `${plan.kept.size} download${plan.kept.size === 1 ? "" : "s"} kept${keyless ? ` (${keyless} without a key)` : ""} · ${bytes(plan.used)} of ${bytes(plan.budget)}${plan.refused.size ? ` · ${plan.refused.size} not kept (budget full)` : ""}`
      : "Off: downloads are cached, not counted as replicas. Files you share are always kept.";
    this.#swarmCopies(copies);
  }

  // Copies kept for the swarm without a key (repair by peers): not the person's files, never
  // opened here; each says what it takes and can be removed.
  #swarmCopies(copies) {
    const list = $("swarm-copies");
    if (!list) return;
    list.hidden = copies.length === 0;
    list.replaceChildren(
      ...copies.map((record) => {
        const progress = this.files.progressOf(record.id);
        const total = progress?.total ?? record.chunkCount ?? 0;
        const state = record.state === "complete" ? this.files.keepStateOf(record.id).state : record.state;
        const what =
          record.state === "complete"
            ? state === "kept"
              ? "kept for the swarm without a key"
              : "held for the swarm without a key (not counted: budget full or keeping off)"
            : record.state === "fetching"
              ? `copying for the swarm without a key · ${pct(progress?.held ?? record.held ?? 0, total)}%`
              : `copy failed: ${record.message ?? record.reason}`;
        const size = record.size !== undefined && record.size !== null ? bytes(record.size) : "size unknown";
        const name = record.name ?? `file ${record.id.slice(0, 10)}…`;
        return el(
          "li",
          { class: "swarm-copy", "data-id": record.id, "data-state": record.state, "data-keep": state },
          el("span", { class: "swarm-copy-text", title: record.id }, `${name} · ${size} · ${what}`),
          el(
            "button",
            {
              type: "button",
              class: "btn tiny danger remove-swarm-copy",
              "aria-label": `Remove the copy of ${name}`,
              onclick: () => this.files.remove(record.id),
            },
            "Remove",
          ),
        );
      }),
    );
  }

  async #share(file) {
    const error = $("files-error");
    error.hidden = true;
    try {
      const record = await this.files.share(file);
      const link = $("share-link");
      link.href = this.files.shareLink(record);
      link.textContent = link.href;
      link.dataset.manifestId = record.id;
      $("share-name").textContent = record.name;
      $("share-result").hidden = false;
    } catch (e) {
      error.textContent = e.message;
      error.dataset.code = e.code ?? "error";
      error.hidden = false;
    }
  }

  #peerOptions() {
    $("peer-ids").replaceChildren(...this.peer.connectedPeers().map((p) => el("option", { value: p.peerId })));
  }

  render() {
    const list = this.files.list();
    const sharing = [...this.files.sharing.values()];
    $("files-count").textContent = String(list.length);
    const up = this.files.uploader.stats;
    $("files-stats").textContent = `${bytes(up.bytes)} served · ${up.chunks} chunks`;
    $("files-empty").hidden = list.length + sharing.length > 0;
    $("file-list").replaceChildren(...sharing.map((job) => this.#sharingRow(job)), ...list.map((record) => this.#row(record)));
    this.#keepUsage();
  }

  #sharingRow(job) {
    const p = pct(job.done, job.size);
    return el(
      "li",
      { class: "file sharing", "data-state": "sharing" },
      el(
        "div",
        { class: "file-main" },
        el("span", { class: "file-icon" }, extension(job.name)),
        el("div", { class: "file-text" }, el("div", { class: "file-name" }, job.name), el("div", { class: "file-meta" }, `${bytes(job.size)} · ${job.phase}…`)),
      ),
      el(
        "div",
        { class: "file-progress" },
        el("div", { class: "bar up" }, el("span", { style: `width:${p}%` })),
        el("div", { class: "file-rate" }, `${p}% hashed and encrypted`),
      ),
    );
  }

  #row(record) {
    const progress = this.files.progressOf(record.id);
    const state = record.state;
    const who =
      record.role === "shared"
        ? "shared by you"
        : record.role === "offered"
          ? `offered by ${short(record.from)}`
          : record.author
            ? `from ${short(record.author)}`
            : "download";
    const meta = [record.size !== undefined && record.size !== null ? bytes(record.size) : "size unknown", who, ago(record.addedAt, this.peer.clock())];
    let status;
    if (state === "fetching") {
      const total = progress?.total ?? record.chunkCount ?? 0;
      const held = progress?.held ?? record.held ?? 0;
      const p = pct(held, total);
      const sources = progress?.sources ?? [];
      const label = progress?.waiting
        ? `${p}% · ${waitingText(progress.waiting)}`
        : progress?.phase === "manifest"
          ? "looking for the manifest…"
          : `${p}% · ${rate(progress?.rate ?? 0)} · ${sources.length} source${sources.length === 1 ? "" : "s"}`;
      status = el(
        "div",
        { class: "file-progress" },
        el("div", { class: "bar down" }, el("span", { style: `width:${p}%` })),
        el(
          "div",
          { class: "file-rate" },
          label,
          ...sources.map((s) => el("span", { class: "source mono", title: s.peerId }, ` ${short(s.peerId)} ${s.received}`)),
        ),
      );
    } else if (state === "failed") {
      status = el(
        "div",
        { class: "file-progress" },
        el("div", { class: "file-error", "data-code": record.reason }, `failed: ${record.message ?? record.reason}`),
      );
    } else if (state === "offered") {
      status = el("div", { class: "file-progress" }, el("div", { class: "file-rate" }, "shared with you: fetch it when you like"));
    } else {
      const up = this.files.uploadOf(record.id);
      const parts = [`complete · ${record.chunkCount} chunks`];
      const keep = this.files.keepStateOf(record.id);
      if (keep.state === "kept") parts.push("kept for the swarm");
      else if (keep.state === "refused") parts.push(keep.message);
      if (record.recipients?.length) parts.push(`key sent to ${record.recipients.length}`);
      if (up) parts.push(`↑ ${bytes(up.bytes)} to ${up.peers} peer${up.peers === 1 ? "" : "s"}${up.rate > 0 ? ` · ${rate(up.rate)} now` : ""}`);
      status = el(
        "div",
        { class: "file-progress" },
        el("div", { class: `bar done${up?.rate > 0 ? " serving" : ""}` }, el("span", { style: "width:100%" })),
        el("div", { class: "file-rate" }, parts.join(" · ")),
      );
    }
    const actions = [];
    const button = (label, onclick, extra = {}) => el("button", { type: "button", class: `btn tiny ${extra.class ?? ""}`, onclick, ...extra.attrs }, label);
    if (state === "complete") {
      actions.push(button("Copy link", (e) => copy(this.files.shareLink(record), e.currentTarget), { class: "copy-link" }));
      actions.push(button("Open", () => this.#open(record, false), { class: "open" }));
      actions.push(button("Save", () => this.#open(record, true), { class: "save" }));
      actions.push(button("Share…", () => this.#toggleShare(record.id), { class: "share-with" }));
    }
    if (state === "offered" || state === "failed") {
      actions.push(
        button(state === "failed" ? "Retry" : "Download", () => this.files.download(record.id, record.key, { fileId: record.fileId, from: record.from }), {
          class: "fetch",
        }),
      );
    }
    actions.push(button("Delete", () => this.files.remove(record.id), { class: "danger delete" }));
    const row = el(
      "li",
      { class: `file ${state}`, "data-id": record.id, "data-state": state, "data-role": record.role, "data-keep": this.files.keepStateOf(record.id).state },
      el(
        "div",
        { class: "file-main" },
        el("span", { class: "file-icon" }, extension(record.name)),
        el(
          "div",
          { class: "file-text" },
          el("div", { class: "file-name", title: record.id }, record.name ?? `file ${record.id.slice(0, 10)}…`),
          el("div", { class: "file-meta" }, meta.join(" · ")),
        ),
      ),
      status,
      el("div", { class: "file-actions" }, ...actions),
    );
    if (this.shareOpen.has(record.id)) row.append(this.#shareForm(record));
    return row;
  }

  #toggleShare(id) {
    if (this.shareOpen.has(id)) this.shareOpen.delete(id);
    else this.shareOpen.add(id);
    this.render();
  }

  // The last key sent for a file, as its outbox item says (kept in the outbox until delivered).
  #shareText(record) {
    const item = this.outbox.get(this.shareItems[record.id] ?? "");
    if (!item) return this.shareStatus?.[record.id] ?? "Only this peer will be able to open it.";
    const to = short(item.target);
    if (item.state === "delivered") return `key sent to ${to} · delivered`;
    if (item.state === "sending") return `key sent to ${to} · waiting for its acknowledgement`;
    if (item.state === "failed") return `key to ${to} failed: ${item.message || item.reason}`;
    return `key to ${to} waits in the outbox: ${item.message || item.reason || "for a connection"}`;
  }

  #shareForm(record) {
    const status = el("span", { class: "share-status small muted" }, this.#shareText(record));
    const input = el("input", {
      class: "share-peer mono",
      list: "peer-ids",
      placeholder: "peer id (p…)",
      spellcheck: "false",
      value: this.shareDraft?.[record.id] ?? "",
    });
    input.addEventListener("input", () => {
      this.shareDraft ??= {};
      this.shareDraft[record.id] = input.value;
    });
    const form = el("form", { class: "share-form" }, input, el("button", { type: "submit", class: "btn tiny send-key" }, "Send key"), status);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const peerId = input.value.trim();
      this.shareStatus ??= {};
      this.shareDraft ??= {};
      try {
        // Into the outbox: sent now if the peer or a super-peer is connected, else later.
        this.shareItems[record.id] = this.outbox.shareKey(record.id, peerId).id;
        this.shareStatus[record.id] = null;
        this.shareDraft[record.id] = "";
      } catch (error) {
        delete this.shareItems[record.id];
        this.shareStatus[record.id] = error.message;
      }
      this.render();
    });
    // Keep typing focus across the periodic re-render.
    if (this.focused === record.id) queueMicrotask(() => input.focus());
    input.addEventListener("focus", () => (this.focused = record.id));
    input.addEventListener("blur", () => (this.focused = null));
    return form;
  }

  async #open(record, save) {
    const url = await this.files.open(record.id);
    const a = el("a", { href: url, target: "_blank", rel: "noopener", download: save ? record.name : null });
    document.body.append(a);
    a.click();
    a.remove();
  }
}

/** The panel of a share link page: fetch the file named by the path with the key in the fragment. */
// What a waiting download (transfer.js progress().waiting) is waiting for, in words.
function waitingText(waiting) {
  const since = Math.max(0, Math.round((Date.now() - waiting.since) / 1000));
  return waiting.reason === "holders_gone" ? `waiting for a holder to come back (gone for ${since} s)` : `waiting for a peer that holds this file (${since} s)`;
}

export class DownloadPanel {
  constructor({ peer, files, manifestId, key, keyError }) {
    this.peer = peer;
    this.files = files;
    this.id = manifestId;
    this.key = key;
    this.keyError = keyError;
    this.node = $("download");
  }

  async mount() {
    this.node.hidden = false;
    if (this.keyError) {
      this.#set("failed", { reason: this.keyError.code, message: `the link's key is unusable: ${this.keyError.message}` });
      return;
    }
    const draw = throttled(() => this.render(), REFRESH_MS);
    this.files.addEventListener("change", draw);
    this.files.addEventListener("complete", (e) => e.detail.id === this.id && this.render());
    this.files.addEventListener("failed", (e) => e.detail.id === this.id && this.render());
    setInterval(draw, REFRESH_MS);
    await this.files.download(this.id, this.key);
    this.render();
  }

  #set(state, { reason = null, message = "", sha256 = null } = {}) {
    const n = this.node;
    if (n.dataset.state !== state) n.dataset.state = state;
    if (reason) n.dataset.reason = reason;
    else delete n.dataset.reason;
    if (sha256) n.dataset.sha256 = sha256;
    if (state !== "fetching") delete n.dataset.waiting;
    $("download-state").textContent = state;
    $("download-message").textContent = message;
  }

  render() {
    const record = this.files.files.get(this.id);
    if (!record) return;
    const progress = this.files.progressOf(this.id);
    $("download-name").textContent = record.name ?? "waiting for the manifest…";
    const meta = [];
    if (record.size !== undefined && record.size !== null) meta.push(bytes(record.size));
    if (record.author) meta.push(`shared by ${short(record.author)}`);
    meta.push(`manifest ${this.id.slice(0, 12)}…`);
    $("download-meta").textContent = meta.join(" · ");
    const total = progress?.total ?? record.chunkCount ?? 0;
    const held = record.state === "complete" ? total : (progress?.held ?? 0);
    const p = record.state === "complete" ? 100 : pct(held, total);
    $("download-bar").style.width = `${p}%`;
    const sources = progress?.sources ?? [];
    $("download-sources").replaceChildren(
      ...sources.map((s) =>
        el("li", { "data-peer-id": s.peerId }, el("span", { class: "mono" }, short(s.peerId)), el("span", {}, `${s.received} chunks · ${rate(s.rate)}`)),
      ),
    );
    $("download-rate").textContent = record.state === "fetching" ? `${p}% · ${rate(progress?.rate ?? 0)}` : record.state === "complete" ? "100%" : "";
    if (record.state === "complete") {
      this.#set("complete", { sha256: record.sha256, message: `SHA-256 ${record.sha256}` });
      this.#actions(record);
    } else if (record.state === "failed") {
      this.#set("failed", { reason: record.reason, message: record.message ?? record.reason });
    } else {
      const waiting = progress?.waiting ?? null;
      const message = waiting
        ? `${waitingText(waiting)}: it goes on by itself when one is back; keep this page open.`
        : progress?.phase === "manifest"
          ? "asking peers for the manifest…"
          : "";
      this.#set("fetching", { message });
      // A hook for people and tests: why nothing arrives right now (transfer.js NO_HOLDER, HOLDERS_GONE).
      if (waiting) this.node.dataset.waiting = waiting.reason;
      else delete this.node.dataset.waiting;
    }
  }

  async #actions(record) {
    if (this.actionsShown) return;
    this.actionsShown = true;
    const url = await this.files.open(record.id);
    $("download-save").href = url;
    $("download-save").download = record.name;
    $("download-open").href = url;
    $("download-actions").hidden = false;
  }
}
