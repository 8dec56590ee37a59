// Operations dashboard: draws the charts embedded by the admin page (#sd-data) with uPlot.
import uPlot from "uplot";

const PALETTE = ["#2f7ed8", "#e4572e", "#17a589", "#f3a712", "#8e44ad", "#5d6d7e", "#c0392b", "#16a085"];
const REFRESH_MS = 60_000;
const AUTO_KEY = "swarm-dashboard-autorefresh";

function cssVar(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

function drawChart(el, data) {
  const unit = el.dataset.unit ?? "";
  if (!data || !data.x.length) {
    el.classList.add("sd-empty");
    el.textContent = "No data in this window yet.";
    return null;
  }
  const axisColor = cssVar("--body-quiet-color", "#666");
  const gridColor = cssVar("--hairline-color", "#e8e8e8");
  const axis = { stroke: axisColor, grid: { stroke: gridColor, width: 1 }, ticks: { stroke: gridColor } };
  const series = [
    {},
    ...data.series.map((line, i) => ({
      label: line.label,
      stroke: PALETTE[i % PALETTE.length],
      width: 2,
      spanGaps: false,
      points: { size: 4 },
      value: (u, v) => (v == null ? "–" : `${v}${unit}`),
    })),
  ];
  const opts = {
    width: Math.max(280, el.clientWidth),
    height: 220,
    series,
    axes: [axis, { ...axis, size: 56, values: (u, ticks) => ticks.map((t) => `${t}${unit}`) }],
    scales: { x: { time: true } },
    legend: { live: true },
    cursor: { drag: { x: true, y: false } },
  };
  const min = Number(el.dataset.min);
  if (min) {
    opts.hooks = {
      draw: [
        (u) => {
          const y = u.valToPos(min, "y", true);
          if (y < u.bbox.top || y > u.bbox.top + u.bbox.height) return;
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = "#f3a712";
          ctx.setLineDash([6, 4]);
          ctx.beginPath();
          ctx.moveTo(u.bbox.left, y);
          ctx.lineTo(u.bbox.left + u.bbox.width, y);
          ctx.stroke();
          ctx.restore();
        },
      ],
    };
  }
  return new uPlot(opts, [data.x, ...data.series.map((s) => s.values)], el);
}

function relative(ms) {
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

function main() {
  const data = JSON.parse(document.getElementById("sd-data").textContent);
  const plots = [];
  for (const el of document.querySelectorAll(".sd-chart")) {
    const plot = drawChart(el, data[el.dataset.chart]);
    if (plot) plots.push([el, plot]);
  }
  const resize = () => {
    for (const [el, plot] of plots) plot.setSize({ width: Math.max(280, el.clientWidth), height: 220 });
  };
  window.addEventListener("resize", resize);
  for (const el of document.querySelectorAll(".sd-when[data-ms]")) {
    const ms = Number(el.dataset.ms);
    el.textContent = relative(ms);
    el.title = new Date(ms).toISOString();
  }
  const auto = document.getElementById("sd-autorefresh");
  auto.checked = localStorage.getItem(AUTO_KEY) === "1";
  auto.addEventListener("change", () => localStorage.setItem(AUTO_KEY, auto.checked ? "1" : "0"));
  setInterval(() => auto.checked && location.reload(), REFRESH_MS);
  document.getElementById("swarm-dashboard").dataset.ready = "1";
}

main();
