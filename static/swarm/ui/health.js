// The Network card's node health (uptime, connection and rendezvous success, beacon latency
// over the last hour and day: adapters/healthwindow.js) and where this page meets others (the
// signaling endpoint in use, each beacon and capsule with its latency and state).
import { $, el, setText } from "./dom.js";

const percent = (r) => (r === null ? "–" : `${Math.round(r * 100)} %`);
const ms = (v) => (v === null ? "–" : `${v} ms`);

function span(t) {
  const m = Math.round(t / 60_000);
  return m < 60 ? `${m} min` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

// [metric, label, cell text from a window's stats]
const ROWS = [
  ["uptime", "Uptime", (s) => `${span(s.uptimeMs)} (${percent(s.uptimeRatio)})`],
  ["conn_ratio", "Connections succeeded", (s) => (s.connAttempts ? `${percent(s.connRatio)} of ${s.connAttempts}` : "–")],
  ["rendezvous_ratio", "Rendezvous succeeded", (s) => (s.rendezvousAttempts ? `${percent(s.rendezvousRatio)} of ${s.rendezvousAttempts}` : "–")],
  ["beacon_latency", "Beacon latency (mean)", (s) => ms(s.beaconLatencyMs)],
];

export class HealthUI {
  constructor(peer) {
    this.peer = peer;
  }

  mount() {
    this.table = $("health-rows");
    if (!this.table) return this;
    this.table.replaceChildren(
      ...ROWS.map(([metric, label]) =>
        el(
          "tr",
          { "data-metric": metric },
          el("th", { scope: "row" }, label),
          el("td", { class: "num", "data-span": "hour" }, "–"),
          el("td", { class: "num", "data-span": "day" }, "–"),
        ),
      ),
    );
    this.render();
    return this;
  }

  render() {
    if (!this.table) return;
    const { peer } = this;
    const now = peer.clock();
    const windows = { hour: peer.metrics.window.hour(now), day: peer.metrics.window.day(now) };
    for (const [metric, , text] of ROWS) {
      for (const [name, stats] of Object.entries(windows)) {
        const cell = this.table.querySelector(`tr[data-metric="${metric}"] td[data-span="${name}"]`);
        setText(cell, text(stats));
      }
    }
    setText($("health-session"), span(now - peer.metrics.startedAt));
    this.#endpoints(now);
  }

  #endpoints(now) {
    const info = this.peer.signalingInfo();
    const node = $("signal-endpoint");
    if (info && node) {
      node.dataset.state = info.state;
      node.dataset.url = info.url;
      setText(node.querySelector(".endpoint-url"), info.url);
      const since = info.state === "open" && info.openedAt ? `, for ${span(now - info.openedAt)}` : "";
      const which = info.count > 1 ? ` (endpoint ${info.index + 1} of ${info.count})` : "";
      setText(node.querySelector(".endpoint-state"), `${info.state}${since}${which}`);
    }
    const list = $("rendezvous-endpoints");
    if (!list) return;
    const rows = this.peer.rendezvousEndpoints();
    const key = rows.map((r) => `${r.source} ${r.url} ${r.state} ${r.latencyMs} ${r.code}`).join("|");
    if (key === this.endpointsKey) return;
    this.endpointsKey = key;
    list.replaceChildren(
      ...rows.map((r) =>
        el(
          "li",
          { class: `endpoint ${r.source}`, "data-source": r.source, "data-url": r.url, "data-state": r.state },
          el("span", { class: "mono small break" }, el("span", { class: "muted" }, `${r.source} `), r.url),
          el(
            "span",
            { class: "small endpoint-state" },
            r.state === "unknown" ? "no round yet" : `${r.state}${r.code ? ` (${r.code})` : ""} · ${ms(r.latencyMs)}`,
          ),
        ),
      ),
    );
    $("rendezvous-endpoints-empty").hidden = rows.length > 0;
  }
}
