// The status UI: indicator (#swarm-status, DESIGN section 9), peers and approval queue,
// controls, identity, diagnostics feed and charts. Reads a SwarmPeer; all DOM lives here.

import { BAD_BACKUP, exportIdentity, IdentityError, importIdentity, MAX_BACKUP_CHARS, readBackup } from "../adapters/identity.js";
import { isValidCommunity } from "../protocol/ticket.js";
import { HealthUI } from "./health.js";
import { KnownPeersUI } from "./known.js";
import { StatusPopover } from "./popover.js";
import { PauseBlockControls } from "./controls.js";
import { $, clockTime, el, patch, setText, short, throttled } from "./dom.js";

const REFRESH_MS = 1_000;
// A change (a connection, a frame's figures) redraws the card at most this often: a page
// joining the swarm changes many times a second, and each draw is style, layout and paint
// on the main thread its start needs.
const CHANGE_DRAW_MS = 250;
const FEED_LIMIT = 200;
// Time axis labels as HH:MM:SS, without uPlot's second row with the date.
// At least a minute of time on the x axis (a single sample would otherwise give a zero range).
// Before the first sample the axis shows the last minute (not 00:00:00 of 1970).
const TIME_SCALE = {
  time: true,
  range: (_u, min, max) => {
    if (max === null) max = Date.now() / 1000;
    return [Math.min(min ?? max, max - 60), max];
  },
};
const TIME_AXIS = {
  space: 80, // px between ticks: room for HH:MM:SS
  stroke: "#8b95a7",
  grid: { stroke: "rgba(139,149,167,0.15)" },
  ticks: { stroke: "rgba(139,149,167,0.3)" },
  values: (_u, splits) => splits.map((s) => clockTime(s * 1000)),
};

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

export class SwarmUI {
  /** `onRestored(peerId)`: called once another identity is stored (the page reloads as it). */
  constructor(peer, { onRestored = () => location.reload() } = {}) {
    this.peer = peer;
    this.onRestored = onRestored;
    this.status = $("swarm-status");
    this.level = "info";
  }

  mount() {
    const { peer } = this;
    this.status.dataset.peerId = peer.peerId;
    $("self-id").textContent = short(peer.peerId);
    $("self-id").addEventListener("click", () => navigator.clipboard?.writeText(peer.peerId));
    $("identity-id").textContent = peer.peerId;
    $("identity-kind").textContent = peer.identity.extractable
      ? "Key stored as raw bytes (this browser lacks WebCrypto Ed25519)."
      : "Signing key is non-extractable; export makes an encrypted backup.";
    $("mesh-target").textContent = `target ${peer.config.mesh.target} · max ${peer.config.mesh.max}`;
    this.#controls();
    this.pauseBlock = new PauseBlockControls(peer); // pause and blocks (ui/controls.js)
    this.pauseBlock.mount();
    this.#feed();
    // Known peers, node health and endpoints, the status popover (issue 19): their own modules.
    this.parts = [new KnownPeersUI(peer).mount(), new HealthUI(peer).mount(), new StatusPopover(peer).mount()];
    // uPlot (145 KB) is fetched after the page has started: nothing waits for the charts.
    import("uplot").then(({ default: uPlot }) => this.#charts(uPlot));
    // The indicator (DESIGN section 9) follows every change at once; it is a few attributes,
    // set only when they differ. The rest of the card follows at most every CHANGE_DRAW_MS.
    const draw = throttled(() => this.render(), CHANGE_DRAW_MS);
    peer.addEventListener("change", () => {
      this.#status();
      draw();
    });
    peer.addEventListener("sample", () => this.#updateCharts());
    setInterval(draw, REFRESH_MS);
    this.render();
  }

  render() {
    this.#status();
    this.#peers();
    this.#queue();
    this.#side();
    for (const part of this.parts ?? []) part.render();
    this.pauseBlock?.render();
  }

  #status() {
    const { state, reason, reasons, text, peers } = this.peer.status();
    const s = this.status;
    setData(s, "state", state);
    setData(s, "peerCount", String(peers));
    setData(s, "supernode", String(this.peer.supernodes?.self ?? false)); // DESIGN section 11
    setData(s, "reason", reason ?? ""); // the first reason's text
    setData(s, "reasons", reasons.join(" ")); // every reason's code (DESIGN section 11)
    setText(s.querySelector(".state-label"), state);
    setText(s.querySelector(".state-reason"), text ?? `${peers} peer${peers === 1 ? "" : "s"}`);
    const title = `Swarm · ${state} · ${peers}`;
    if (document.title !== title) document.title = title;
  }

  #peers() {
    const rows = $("peer-rows");
    const peers = this.peer.connectedPeers();
    const now = this.peer.clock();
    setText($("peer-count"), String(peers.length));
    $("peers-empty").hidden = peers.length > 0;
    setText($("peers-empty"), this.peer.node?.mesh.paused ? "Paused: no connections." : "No peer connected yet.");
    patch(
      rows,
      peers.map((p) =>
        el(
          "tr",
          {
            class: `peer health-${p.health}`,
            "data-peer-row": "",
            "data-peer-id": p.peerId,
            "data-via": this.peer.viaOf(p.peerId),
            "data-supernode": String(this.peer.supernodes?.isSupernode(p.peerId) ?? false),
            "data-ice": this.peer.iceOf(p.peerId),
          },
          el(
            "td",
            { class: "mono", title: `${p.peerId}\n${p.agent ?? ""}${p.outbound ? " (we dialed)" : " (dialed us)"}` },
            el("span", { class: "health-dot" }),
            short(p.peerId),
            this.peer.viaOf(p.peerId) === "mesh" ? el("small", { class: "muted", title: "signaled through other peers" }, " · mesh") : null,
            this.peer.supernodes?.isSupernode(p.peerId) ? el("small", { class: "supernode-tag", title: "elected supernode" }, " · supernode") : null,
          ),
          el(
            "td",
            { class: "num" },
            p.rtt === null ? "–" : `${Math.round(p.rtt)} ms`,
            p.loss > 0 ? el("small", { class: "loss" }, ` ${Math.round(p.loss * 100)}%`) : null,
          ),
          el("td", { class: "num small" }, `${bytes(p.bytesOut)} / ${bytes(p.bytesIn)}`),
          el("td", { class: "num small" }, duration(now - p.since)),
          el(
            "td",
            { class: "num" },
            el(
              "button",
              {
                type: "button",
                class: "btn tiny danger block-peer",
                "data-peer-id": p.peerId,
                title: "Block this peer",
                onclick: () => this.peer.block(p.peerId),
              },
              "Block",
            ),
          ),
        ),
      ),
    );
  }

  #queue() {
    const queue = this.peer.approvalQueue();
    $("approval-card").hidden = queue.length === 0;
    setText($("queue-count"), String(queue.length));
    patch(
      $("approval-queue"),
      queue.map((q) =>
        el(
          "li",
          { class: "queue-item", "data-peer-id": q.peerId },
          el("span", { class: "mono", title: q.peerId }, short(q.peerId)),
          el(
            "span",
            { class: "actions" },
            el("button", { type: "button", class: "btn tiny approve", onclick: () => this.peer.approve(q.peerId) }, "Approve"),
            el("button", { type: "button", class: "btn tiny always", onclick: () => this.peer.approve(q.peerId, { always: true }) }, "Always"),
            el("button", { type: "button", class: "btn tiny danger deny", onclick: () => this.peer.deny(q.peerId) }, "Deny"),
          ),
        ),
      ),
    );
  }

  #side() {
    const { peer } = this;
    const mesh = peer.node?.mesh;
    if (!mesh) return;
    $("toggle-isolate").checked = mesh.isolated;
    $("toggle-approval").checked = mesh.options.approval === "manual";
    if (this.peer.supernodes) $("toggle-supernode").checked = this.peer.supernodes.optIn;
    const now = peer.clock();
    const state = peer.schedule.state(now);
    const next = Math.max(0, peer.schedule.nextRoundAt - now);
    const label =
      state === "suspended"
        ? "off (paused or isolated)"
        : peer.rendezvousRunning
          ? "running…"
          : state === "paused"
            ? `paused, retry in ${duration(next)}`
            : `next round in ${duration(next)}`;
    setText($("rendezvous-state"), label);
    setData($("rendezvous-state"), "state", state);
    const stats = peer.node.stats;
    const ttfp = peer.timeToFirstPeerMs === null ? "–" : `${peer.timeToFirstPeerMs} ms`;
    patch(
      $("net-stats"),
      [
        ["known", peer.node.book.liveCount(now)],
        ["first peer", ttfp],
        ["sent", bytes(stats.bytesOut)],
        ["received", bytes(stats.bytesIn)],
        ["gossip", stats.gossipDelivered],
        ["dropped", Object.values(stats.dropped).reduce((a, b) => a + b, 0)],
      ].map(([k, v]) => el("span", { class: "stat" }, el("small", {}, k), el("b", {}, String(v)))),
    );
  }

  #controls() {
    const { peer } = this;
    $("toggle-isolate").addEventListener("change", (e) => peer.setIsolated(e.target.checked));
    $("toggle-approval").addEventListener("change", (e) => peer.setApproval(e.target.checked ? "manual" : "auto"));
    $("toggle-supernode").addEventListener("change", (e) => peer.supernodes?.setOptIn(e.target.checked));
    $("rendezvous-retry").addEventListener("click", () => peer.retryRendezvous());
    // Communities: this page belongs to one (its URL says which); joining another loads the
    // page for it, leaving goes back to the server's default.
    $("community-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const name = $("community-name").value.trim().toLowerCase();
      if (!isValidCommunity(name)) {
        $("community-error").textContent = "bad_community: 1 to 63 of a-z, 0-9 and -, starting with a letter or digit";
        $("community-error").hidden = false;
        return;
      }
      location.assign(`/?community=${encodeURIComponent(name)}`);
    });
    $("community-leave").addEventListener("click", () => location.assign("/"));
    $("peer-connect-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const id = $("peer-connect").value.trim();
      try {
        const how = peer.connectTo(id);
        const said = { connected: "already connected", looking_up: `looking ${short(id)} up in the DHT…` };
        $("peer-connect-result").textContent = said[how] ?? `dialing ${short(id)}…`;
        $("peer-connect").value = "";
      } catch (error) {
        $("peer-connect-result").textContent = `${error.code}: ${error.message}`;
      }
    });
    $("export-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const out = $("export-result");
      out.textContent = "Encrypting…";
      try {
        const backup = await exportIdentity(peer.identity.record, $("export-pass").value);
        const blob = new Blob([JSON.stringify(backup, null, 2)], { type: "application/json" });
        const link = el("a", { href: URL.createObjectURL(blob), download: `swarm-identity-${peer.peerId.slice(0, 8)}.json` }, "Download the backup");
        out.replaceChildren(link, " (keep the passphrase: it cannot be recovered)");
        $("export-pass").value = "";
      } catch (error) {
        out.textContent = error.message;
      }
    });
    $("restore-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.#restore();
    });
  }

  // #restore-result: data-state working | failed | restored, data-error = the IdentityError code.
  async #restore() {
    const out = $("restore-result");
    const button = $("restore-go");
    const show = (state, text, code = null) => {
      out.dataset.state = state;
      if (code) out.dataset.error = code;
      else delete out.dataset.error;
      out.textContent = text;
    };
    const file = $("restore-file").files?.[0];
    if (!file) return show("failed", "Choose the backup file that Export key saved.", "no_file");
    if (!this.peer.store.persistent) {
      return show("failed", "This browser keeps no storage for this site (a private window?): the identity would be lost on reload.", "no_storage");
    }
    button.disabled = true;
    show("working", "Checking the backup…");
    try {
      if (file.size > MAX_BACKUP_CHARS) throw new IdentityError(BAD_BACKUP, "not a swarm identity backup (the file is too large)");
      const backup = readBackup(await file.text());
      const restored = await importIdentity(this.peer.store, backup, $("restore-passphrase").value);
      $("restore-passphrase").value = "";
      show("restored", `Restored ${restored.peerId}: reloading as that peer…`);
      this.peer.log("info", "identity", "identity_restored", `identity ${restored.peerId} restored from a backup; reloading`);
      this.onRestored(restored.peerId);
    } catch (error) {
      show("failed", error.message, error.code ?? "restore_failed");
      this.peer.log("warn", "identity", error.code ?? "restore_failed", `restore refused: ${error.message}`);
      button.disabled = false;
    }
  }

  #feed() {
    const feed = $("debug-feed");
    const select = $("debug-level");
    const levels = ["debug", "info", "warn", "error"];
    const item = (e) =>
      el(
        "li",
        { class: `ev ${e.level}`, "data-code": e.code },
        el("time", {}, clockTime(e.ts)),
        el("span", { class: "lvl" }, e.level),
        el("span", { class: "src" }, e.source),
        el("span", { class: "code" }, e.code),
        el("span", { class: "msg" }, e.message, e.peerId ? el("span", { class: "muted" }, ` · ${short(e.peerId)}`) : null),
      );
    const redraw = () => feed.replaceChildren(...this.peer.diagnostics.list(this.level).map(item));
    select.addEventListener("change", () => {
      this.level = select.value;
      redraw();
    });
    this.peer.diagnostics.subscribe((e) => {
      if (levels.indexOf(e.level) < levels.indexOf(this.level)) return;
      feed.prepend(item(e));
      while (feed.children.length > FEED_LIMIT) feed.lastChild.remove();
    });
    redraw();
  }

  #charts(uPlot) {
    this.uPlot = uPlot;
    const axis = { stroke: "#8b95a7", grid: { stroke: "rgba(139,149,167,0.15)" }, ticks: { stroke: "rgba(139,149,167,0.3)" } };
    const size = (node) => ({ width: Math.max(200, node.clientWidth), height: 160 });
    const peersNode = $("chart-peers");
    this.peersChart = new uPlot(
      {
        ...size(peersNode),
        legend: { show: false },
        scales: { x: TIME_SCALE, y: { range: (_u, _min, max) => [0, Math.max(4, max + 1)] } },
        axes: [TIME_AXIS, { ...axis, size: 36 }],
        series: [{}, { label: "peers", stroke: "#34d399", fill: "rgba(52,211,153,0.12)", width: 2, paths: uPlot.paths.stepped({ align: 1 }) }],
      },
      [[], []],
      peersNode,
    );
    this.latencyNode = $("chart-latency");
    this.latencyUrls = [];
    this.#buildLatencyChart();
    this.#updateCharts();
    addEventListener("resize", () => {
      this.peersChart.setSize(size(peersNode));
      this.latencyChart.setSize(size(this.latencyNode));
    });
  }

  #buildLatencyChart() {
    const colors = ["#60a5fa", "#f59e0b", "#f472b6", "#a78bfa"];
    const axis = { stroke: "#8b95a7", grid: { stroke: "rgba(139,149,167,0.15)" }, ticks: { stroke: "rgba(139,149,167,0.3)" } };
    this.latencyChart?.destroy();
    this.latencyChart = new this.uPlot(
      {
        width: Math.max(200, this.latencyNode.clientWidth),
        height: 160,
        legend: { show: this.latencyUrls.length > 1 },
        scales: { x: TIME_SCALE, y: { range: (_u, _min, max) => [0, Math.max(20, (max ?? 0) * 1.2)] } },
        axes: [TIME_AXIS, { ...axis, size: 44 }],
        series: [
          {},
          ...this.latencyUrls.map((url, i) => ({
            label: new URL(url).host,
            stroke: colors[i % colors.length],
            width: 2,
            spanGaps: false,
            points: { show: true, size: 4 },
          })),
        ],
      },
      [[], ...this.latencyUrls.map(() => [])],
      this.latencyNode,
    );
  }

  #updateCharts() {
    if (!this.peersChart) return; // not loaded yet
    const s = this.peer.metrics.series;
    this.peersChart.setData([s.t, s.peers]);
    const urls = [...s.latency.keys()];
    if (urls.join() !== this.latencyUrls.join()) {
      this.latencyUrls = urls;
      this.#buildLatencyChart();
    }
    this.latencyChart.setData([s.t, ...urls.map((u) => s.latency.get(u))]);
  }
}

function setData(node, key, value) {
  if (node.dataset[key] !== value) node.dataset[key] = value;
}
