// Which way a dial goes while the signaling server is up: through the server, or through the
// mesh when the mesh has been faster (docs/protocol.md "The path of a dial"). Sans-IO and
// deterministic, the twin of peers/protocol/dialpath.py; shared vectors in
// tests/vectors/dialpath.json. The adapter asks `choose` before each dial and reports how long
// the dial took to open its data channel, or that it failed (`record(path, null)`).
import { ProtocolError } from "./errors.js";

export const SERVER = "server";
export const MESH = "mesh";
export const PATHS = Object.freeze([SERVER, MESH]);
export const BAD_PATH = "bad_path";
export const BAD_DURATION = "bad_duration";
export const MAX_DIAL_MS = 600_000;

export const DIAL_PATH_DEFAULTS = Object.freeze({ minSamples: 3, marginPct: 10, exploreEvery: 16, failMs: 20_000 });

const figures = () => ({ samples: 0, failures: 0, avgMs: 0, chosen: 0 });

export class DialPaths {
  /** @param {Partial<typeof DIAL_PATH_DEFAULTS>} [config] */
  constructor(config = {}) {
    this.config = { ...DIAL_PATH_DEFAULTS, ...config };
    /** @type {Record<string, {samples: number, failures: number, avgMs: number, chosen: number}>} */
    this.figures = { [SERVER]: figures(), [MESH]: figures() };
    this.routed = 0; // dials with the server up and a route known
  }

  /** The path with the better figures (the server unless the mesh wins by the margin). */
  faster() {
    const server = this.figures[SERVER];
    const mesh = this.figures[MESH];
    if (server.samples === 0 || mesh.samples === 0) return SERVER;
    const cut = (server.avgMs * (100 - this.config.marginPct)) / 100;
    return mesh.avgMs < cut ? MESH : SERVER;
  }

  /** @param {{ serverUp: boolean, routeKnown: boolean }} state @returns {string} */
  choose({ serverUp, routeKnown }) {
    if (!serverUp) return MESH;
    if (!routeKnown) return SERVER;
    this.routed += 1;
    const server = this.figures[SERVER];
    const mesh = this.figures[MESH];
    const low = this.config.minSamples;
    let path;
    if (server.samples < low || mesh.samples < low) {
      path = mesh.samples < server.samples ? MESH : SERVER;
    } else {
      path = this.faster();
      if (this.routed % this.config.exploreEvery === 0) path = path === SERVER ? MESH : SERVER;
    }
    this.figures[path].chosen += 1;
    return path;
  }

  /** A dial through `path` opened after `ms` milliseconds, or failed (`ms` null). */
  record(path, ms) {
    if (!PATHS.includes(path)) throw new ProtocolError(BAD_PATH, `no dial path ${JSON.stringify(path)}`);
    if (ms !== null && !(Number.isSafeInteger(ms) && ms >= 0 && ms <= MAX_DIAL_MS)) {
      throw new ProtocolError(BAD_DURATION, "a dial time is whole milliseconds, 0..600000");
    }
    const f = this.figures[path];
    const value = ms === null ? this.config.failMs : ms;
    if (ms === null) f.failures += 1;
    if (f.samples === 0) f.avgMs = value;
    else f.avgMs += (value - f.avgMs) / 4;
    f.samples += 1;
  }

  /** For status and diagnostics. */
  data() {
    const out = (f) => ({ samples: f.samples, failures: f.failures, avg_ms: Math.round(f.avgMs * 10) / 10, chosen: f.chosen });
    return { server: out(this.figures[SERVER]), mesh: out(this.figures[MESH]), routed: this.routed, faster: this.faster() };
  }
}
