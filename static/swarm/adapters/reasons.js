// The page's state for #swarm-status (DESIGN sections 9 and 11), pure: online / degraded /
// offline, the reason codes of that state (data-reasons) and their text.

/** @type {Record<string, string>} */
export const REASON_TEXT = {
  network_offline: "no network",
  paused: "paused",
  signaling_down: "signaling unreachable",
  no_peers: "no peers connected",
  peers_unresponsive: "peer(s) not responding",
  isolated: "isolated: allowed peers only",
  rendezvous_failing: "beacons and capsules unreachable",
  beacon_slow: "beacon slow",
  peers_blocked: "blocked",
};

// A beacon whose last announce took longer than this is named slow (beacon_slow).
export const BEACON_SLOW_MS = 3_000;
// Rounds in a row where every beacon and capsule failed before it is a reason even with peers.
export const RENDEZVOUS_STREAK = 3;
// Reasons that say what the person chose rather than what went wrong: listed, state unchanged.
const NOTES = new Set(["peers_blocked"]);

/** "paused", "paused inbound", "paused outbound until 14:05" (controls.js Pause). */
export function pauseText(pause, formatTime = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })) {
  if (!pause?.direction) return REASON_TEXT.paused;
  const which = pause.direction === "both" ? "" : ` ${pause.direction}`;
  return `${REASON_TEXT.paused}${which}${pause.until ? ` until ${formatTime(pause.until)}` : ""}`;
}

/**
 * @param {{ online: boolean, signal?: string, paused: boolean, isolated: boolean, peers: number,
 *   unresponsive: number, rendezvousFailing: boolean, rendezvousStreak?: number,
 *   slowBeacons?: number, blocked?: number,
 *   pause?: { direction: string | null, until: number | null } | null, formatTime?: (ms: number) => string }} s
 *   `online`: navigator.onLine; `signal`: the signaling state (open, connecting, reconnecting,
 *   failed...); `peers`: open connections; `unresponsive`: those not answering pings;
 *   `rendezvousFailing`: every beacon and capsule of the last round failed;
 *   `rendezvousStreak`: rounds in a row that did; `slowBeacons`: beacons whose last announce
 *   took over BEACON_SLOW_MS; `blocked`: peers this page blocks (a note: the state stays);
 *   `paused`: both directions paused; `pause`: which direction and until when (one
 *   direction: reason "paused" too, but the page keeps its other connections).
 * @returns {{ state: "online" | "degraded" | "offline", reason: string | null, reasons: string[], text: string | null, texts: string[], peers: number }}
 *   `reason`: the text of the first reason (data-reason), `text`: every reason's text,
 *   `texts`: each reason's text, in the order of `reasons` (the status popover).
 */
export function pageStatus(s) {
  const reasons = [];
  const text = [];
  const add = (code, words = REASON_TEXT[code]) => {
    reasons.push(code);
    text.push(words);
  };
  if (!s.online) add("network_offline");
  /** @type {"online" | "degraded" | "offline"} */
  let state = "online";
  const pause = s.pause?.direction ? s.pause : null;
  if (s.paused) {
    add("paused", pauseText(pause, s.formatTime));
    state = "offline";
  } else {
    if (pause) add("paused", pauseText(pause, s.formatTime));
    if (s.signal !== "open") add("signaling_down", s.signal === "failed" ? "signaling refused this page" : REASON_TEXT.signaling_down);
    if (s.peers === 0) add("no_peers");
    if (s.unresponsive > 0) add("peers_unresponsive", `${s.unresponsive} ${REASON_TEXT.peers_unresponsive}`);
    if (s.isolated) add("isolated");
    const streak = s.rendezvousStreak ?? 0;
    if (s.rendezvousFailing && s.signal === "open" && (s.peers === 0 || streak >= RENDEZVOUS_STREAK)) {
      add("rendezvous_failing", streak > 1 ? `${REASON_TEXT.rendezvous_failing} (${streak} rounds in a row)` : REASON_TEXT.rendezvous_failing);
    }
    if ((s.slowBeacons ?? 0) > 0) add("beacon_slow", `${REASON_TEXT.beacon_slow} (over ${BEACON_SLOW_MS / 1000} s)`);
    if ((s.blocked ?? 0) > 0) add("peers_blocked", `${s.blocked} peer${s.blocked === 1 ? "" : "s"} ${REASON_TEXT.peers_blocked}`);
    const faults = reasons.filter((code) => !NOTES.has(code));
    state = s.peers === 0 ? "offline" : faults.length > 0 ? "degraded" : "online";
  }
  const peers = s.paused ? 0 : s.peers;
  return { state, reason: text[0] ?? null, reasons, text: text.length ? text.join(" · ") : null, texts: text, peers };
}
