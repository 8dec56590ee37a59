// Small DOM and formatting helpers shared by the page's UI modules.

export const $ = (id) => document.getElementById(id);

/** Set a node's text only when it differs (a write of the same text still costs a layout). */
export function setText(node, text) {
  if (node && node.textContent !== text) node.textContent = text;
}

export const short = (peerId) => `${peerId.slice(0, 7)}…${peerId.slice(-4)}`;

// An element's handlers given to el() as `on<type>`: one listener per type calls the handler
// stored here, so that patch() can give a node it keeps the handlers (and what they close
// over) of the node it was compared with.
const HANDLERS = Symbol("handlers");

function dispatch(event) {
  return this[HANDLERS]?.[event.type]?.call(this, event);
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    // Through the CSSOM: the page's policy (style-src 'self') refuses style attributes, and
    // the bars' widths and the avatars' colours were silently dropped.
    else if (key === "style") node.style.cssText = value;
    else if (key.startsWith("on")) {
      node[HANDLERS] ??= {};
      node[HANDLERS][key.slice(2)] = value;
      node.addEventListener(key.slice(2), dispatch);
    } else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/**
 * Make `parent`'s children look like `children` (nodes or strings, as el() takes them) while
 * touching only what differs: a list redrawn every second with the same content causes no
 * DOM change at all (no style, layout or paint), a changed figure changes one text node.
 * Where the count of children differs, they are replaced. Kept elements take the new ones'
 * handlers. Used by the cards that redraw on a timer (an idle page with a long feed rebuilt
 * it every second, on every page).
 */
export function patch(parent, children) {
  const next = children.filter((c) => c !== null && c !== undefined && c !== false).map((c) => (typeof c === "string" ? document.createTextNode(c) : c));
  const old = parent.childNodes;
  if (old.length !== next.length) {
    parent.replaceChildren(...next);
    return;
  }
  for (let i = 0; i < next.length; i += 1) morph(old[i], next[i]);
}

// The attributes that say which thing a row is. A row is changed in place only into the same
// thing: when a list shifts, the row under a pointer about to click "Block" is replaced, not
// made into another peer's row with the click still landing on it.
const IDENTITY = ["data-id", "data-peer-id", "data-owner", "data-request"];

function sameThing(old, next) {
  if (old.nodeType !== Node.ELEMENT_NODE) return true;
  return IDENTITY.every((name) => old.getAttribute(name) === next.getAttribute(name));
}

function morph(old, next) {
  if (old.nodeType !== next.nodeType || old.nodeName !== next.nodeName || !sameThing(old, next)) {
    old.replaceWith(next);
    return;
  }
  if (old.nodeType === Node.TEXT_NODE) {
    if (old.data !== next.data) old.data = next.data;
    return;
  }
  if (old.nodeType !== Node.ELEMENT_NODE) {
    if (!old.isEqualNode(next)) old.replaceWith(next);
    return;
  }
  for (const { name } of [...old.attributes]) if (!next.hasAttribute(name)) old.removeAttribute(name);
  for (const { name, value } of next.attributes) {
    if (old.getAttribute(name) === value) continue;
    if (name === "style") old.style.cssText = next.style.cssText;
    else old.setAttribute(name, value);
  }
  for (const type of Object.keys(next[HANDLERS] ?? {})) old.addEventListener(type, dispatch);
  old[HANDLERS] = next[HANDLERS];
  patch(old, [...next.childNodes]);
}

/** `draw` at most once per `everyMs`, however often it is asked for: a request inside the
 * interval is drawn at its end, with the state of then. While a file moves its progress
 * changes many times a second, and every draw is style, layout and paint on the main thread,
 * which the transfer needs (docs/browser.md "Serving"). */
export function throttled(draw, everyMs, now = () => performance.now()) {
  let timer = null;
  let last = -Infinity;
  const run = () => {
    timer = null;
    last = now();
    draw();
  };
  return () => {
    if (timer) return;
    const wait = last + everyMs - now();
    if (wait <= 0) run();
    else timer = setTimeout(run, wait);
  };
}

// Date.prototype.toLocaleString() and toLocaleTimeString() with options build a formatter on
// every call (a feed of 100 posts redrawn every second spent most of its script time there).
const DATE_TIME = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "numeric",
  day: "numeric",
  hour: "numeric",
  minute: "numeric",
  second: "numeric",
});
const CLOCK = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

/** `new Date(ms).toLocaleString()`, with one formatter. */
export const localTime = (ms) => DATE_TIME.format(ms);

/** HH:MM:SS in the local time zone (the diagnostics feed, the charts' time axis). */
export const clockTime = (ms) => CLOCK.format(ms);

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  if (n < 1000) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} KB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

export const rate = (bps) => `${bytes(Math.round(bps))}/s`;

export function ago(ms, now = Date.now()) {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 10) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(ms).toLocaleDateString();
}

// A stable colour per peer id (avatars, source bars).
export function hue(peerId) {
  let h = 0;
  for (const ch of peerId) h = (h * 31 + ch.charCodeAt(0)) % 360;
  return h;
}

export function avatar(peerId, label = "") {
  const letter = (label.trim()[0] ?? peerId[1] ?? "?").toUpperCase();
  return el("span", { class: "avatar", style: `--hue:${hue(peerId)}`, "aria-hidden": "true" }, letter);
}

// Text with http(s) links made clickable, built from text nodes (never innerHTML).
export function linkified(text) {
  const out = [];
  const re = /https?:\/\/[^\s<>"']+/g;
  let last = 0;
  for (const match of text.matchAll(re)) {
    if (match.index > last) out.push(text.slice(last, match.index));
    out.push(el("a", { href: match[0], target: "_blank", rel: "noopener noreferrer" }, match[0]));
    last = match.index + match[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

export async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    if (button) {
      const label = button.textContent;
      button.textContent = "Copied";
      setTimeout(() => (button.textContent = label), 1200);
    }
  } catch {
    window.prompt("Copy this:", text);
  }
}

// The paperclip of attachments (an inline SVG: emoji fonts are not everywhere).
export function clip() {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "icon");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", "M21 11.5l-8.6 8.6a5.5 5.5 0 01-7.8-7.8l9.2-9.2a3.7 3.7 0 015.2 5.2l-9.2 9.2a1.8 1.8 0 01-2.6-2.6l8.5-8.5");
  svg.append(path);
  return svg;
}
