// The peers this page knows but is not connected to (the Peers card's "Known" list), pure:
// rows from the peer book and the mesh's state, each with why it is not connected in a
// stable code (data-why) and in words. `now` is always passed in.

/** @type {Record<string, string>} */
export const WHY_TEXT = {
  blocked: "blocked",
  paused: "paused: nothing is dialed",
  dialing: "dialing…",
  connecting: "connecting (hello or approval)",
  denied: "denied a moment ago",
  isolated: "isolated: not always allowed",
  left: "left (signaling says it is gone until a newer ticket)",
  backoff: "backing off after failure",
  held: "held off (it refused or asked to wait)",
  expired: "ticket expired and never connected",
  signaling_down: "cannot dial: signaling down",
  at_limit: "at connection limit",
  no_ticket: "not in the peer book (no ticket known): dial it by id",
  never_tried: "never tried",
  not_yet: "not dialed yet",
};

export const MAX_ROWS = 50;

const isGone = (entry) => entry.goneAtIssued !== null && entry.goneAtIssued !== undefined && entry.goneAtIssued >= entry.issuedAt;

function seconds(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return s < 120 ? `${s} s` : `${Math.ceil(s / 60)} min`;
}

/**
 * Why one known peer is not connected: `{ code, text }`, the first of these that applies.
 * @param {any} entry a PeerBook entry (or a stub `{peerId}` for an allowed peer the book lacks)
 * @param {{ paused: boolean, isolated: boolean, canDial: boolean, blocked: Set<string>,
 *   allowed: Set<string>, denied: Map<string, number>, dialing: Set<string> | Map<string, number>,
 *   connecting: Set<string>, conns: number, target: number, live: boolean }} m
 * @param {number} now
 */
export function whyNotConnected(entry, m, now) {
  const id = entry.peerId;
  const failures = entry.consecutiveFailures ?? 0;
  const wait = (entry.nextDialAt ?? 0) - now;
  if (m.blocked.has(id)) return { code: "blocked", text: WHY_TEXT.blocked };
  if (m.paused) return { code: "paused", text: WHY_TEXT.paused };
  if (m.dialing.has(id)) return { code: "dialing", text: WHY_TEXT.dialing };
  if (m.connecting.has(id)) return { code: "connecting", text: WHY_TEXT.connecting };
  if ((m.denied.get(id) ?? 0) > now) return { code: "denied", text: WHY_TEXT.denied };
  if (m.isolated && !m.allowed.has(id)) return { code: "isolated", text: WHY_TEXT.isolated };
  if (isGone(entry)) return { code: "left", text: WHY_TEXT.left };
  if (wait > 0 && failures > 0) return { code: "backoff", text: `${WHY_TEXT.backoff} ${failures}, retry in ${seconds(wait)}` };
  if (wait > 0) return { code: "held", text: `${WHY_TEXT.held}, retry in ${seconds(wait)}` };
  if (!m.live && !entry.seed && !entry.hint && !(entry.successes > 0)) return { code: "expired", text: WHY_TEXT.expired };
  if (!m.canDial) return { code: "signaling_down", text: WHY_TEXT.signaling_down };
  if (m.conns >= m.target) return { code: "at_limit", text: `${WHY_TEXT.at_limit} (${m.conns} of ${m.target})` };
  const tried = (entry.successes ?? 0) + (entry.failures ?? 0) > 0;
  return tried ? { code: "not_yet", text: WHY_TEXT.not_yet } : { code: "never_tried", text: WHY_TEXT.never_tried };
}

/**
 * The known-but-not-connected rows, best score first (at most MAX_ROWS), from a PeerBook and
 * a Mesh (protocol/peerbook.js, protocol/mesh.js). Peers always allowed but absent from the
 * book are listed too (the book forgets; the allow list does not).
 * @param {{ book: any, mesh: any, now: number, canDial: boolean, limit?: number }} args
 * @returns {{ peerId: string, lastSeen: number | null, score: number | null, source: string | null,
 *   failures: number, successes: number, allowed: boolean, why: string, whyText: string }[]}
 */
export function knownPeerRows({ book, mesh, now, canDial, limit = MAX_ROWS }) {
  const connected = new Set();
  const connecting = new Set();
  let conns = 0;
  for (const conn of mesh.conns.values()) {
    if (conn.state === "open") connected.add(conn.peerId);
    else connecting.add(conn.peerId);
    conns += 1;
  }
  const state = {
    // What keeps this page from dialing: an outbound (or two-way) pause or block.
    paused: mesh.pause ? mesh.pause.covers("outbound") : mesh.paused,
    isolated: mesh.isolated,
    canDial,
    blocked: mesh.blocked.outboundIds ? new Set(mesh.blocked.outboundIds(now)) : mesh.blocked,
    allowed: mesh.allowed,
    denied: mesh.denied,
    dialing: mesh.dialing,
    connecting,
    conns: conns + mesh.dialing.size,
    target: mesh.options.target,
  };
  const rows = [];
  for (const entry of book.entries.values()) {
    if (connected.has(entry.peerId)) continue;
    const live = book.isLive(entry, now);
    const why = whyNotConnected(entry, { ...state, live }, now);
    rows.push({
      peerId: entry.peerId,
      lastSeen: entry.lastSeen ?? null,
      score: book.score(entry, now),
      source: entry.source ?? null,
      failures: entry.failures ?? 0,
      successes: entry.successes ?? 0,
      allowed: mesh.allowed.has(entry.peerId),
      why: why.code,
      whyText: why.text,
    });
  }
  rows.sort((a, b) => b.score - a.score || (a.peerId < b.peerId ? -1 : 1));
  const out = rows.slice(0, limit);
  for (const peerId of [...mesh.allowed].sort()) {
    if (connected.has(peerId) || book.has(peerId) || out.length >= limit) continue;
    let why = whyNotConnected({ peerId, successes: 0 }, { ...state, live: false }, now);
    if (why.code === "expired") why = { code: "no_ticket", text: WHY_TEXT.no_ticket };
    out.push({ peerId, lastSeen: null, score: null, source: null, failures: 0, successes: 0, allowed: true, why: why.code, whyText: why.text });
  }
  return out;
}
