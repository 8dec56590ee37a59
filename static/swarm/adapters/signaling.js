// Signaling through the real peerjs client: one Peer per endpoint attempt, the key-bound id
// proven with a signal token, reconnection with backoff, failover to the next configured
// endpoint. DataConnections survive a lost signaling socket (only new dials need it).
import { Peer } from "peerjs";

import { makeSignalToken } from "../protocol/signal_token.js";

export const RECONNECT_BASE_MS = 1_000;
export const RECONNECT_MAX_MS = 30_000;
const ATTEMPTS_PER_ENDPOINT = 2; // failed (re)connections before moving to the next endpoint
const FATAL = new Set(["browser-incompatible", "invalid-key", "invalid-id", "ssl-unavailable"]);
const UNAVAILABLE_RE = /Could not connect to peer (\S+)/;

export class Signaling extends EventTarget {
  /**
   * `rtc` is the RTCConfiguration PeerJS makes every connection with; it is shared, not copied,
   * so fresh TURN credentials written into it (turn.js) reach the next connection.
   * @param {{ endpoints: any[], peerId: string, signer: any, rtc?: {iceServers: object[], iceTransportPolicy?: string}, clock?: () => number, log?: (level: string, code: string, message: string) => void }} args
   */
  constructor({ endpoints, peerId, signer, rtc = { iceServers: [] }, clock = Date.now, log = () => {} }) {
    super();
    this.endpoints = endpoints;
    this.peerId = peerId;
    this.signer = signer;
    this.rtc = rtc;
    this.clock = clock;
    this.log = log;
    this.index = 0;
    this.failures = 0;
    this.peer = null;
    this.retired = []; // earlier Peers whose DataConnections are still open
    this.state = "idle"; // connecting | open | reconnecting | failed | stopped
    this.timer = null;
    this.openedAt = null;
  }

  get endpoint() {
    return this.endpoints[this.index];
  }

  #setState(state, detail = null) {
    if (this.state === state && detail === null) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, reason: detail, endpoint: this.endpoint.url } }));
  }

  start() {
    this.#connect();
  }

  async #token() {
    return makeSignalToken(this.signer, { now: this.clock(), peerId: this.peerId });
  }

  async #connect() {
    if (this.state === "stopped") return;
    this.#setState(this.peer ? "reconnecting" : "connecting");
    const { host, port, path, secure, key } = this.endpoint;
    const peer = new Peer(this.peerId, {
      host,
      port,
      path,
      secure,
      key,
      token: await this.#token(),
      config: this.rtc,
      debug: 0,
    });
    if (this.peer) this.retired.push(this.peer);
    this.peer = peer;
    peer.on("open", () => {
      if (peer !== this.peer) return;
      this.failures = 0;
      this.openedAt = this.clock();
      this.log("info", "signal_open", `signaling connected to ${this.endpoint.url}`);
      this.#setState("open");
    });
    peer.on("connection", (conn) => this.dispatchEvent(new CustomEvent("connection", { detail: conn })));
    peer.on("disconnected", () => {
      if (peer === this.peer && this.state !== "stopped") this.#retry("disconnected");
    });
    peer.on("close", () => {
      if (peer === this.peer && this.state !== "stopped") this.#retry("closed");
    });
    peer.on("error", (error) => this.#onError(peer, error));
  }

  #onError(peer, error) {
    const type = error?.type ?? "unknown";
    const message = String(error?.message ?? error);
    const unavailable = type === "peer-unavailable" ? UNAVAILABLE_RE.exec(message) : null;
    if (unavailable) {
      this.dispatchEvent(new CustomEvent("unavailable", { detail: unavailable[1] }));
      return;
    }
    if (peer !== this.peer) return;
    this.log(FATAL.has(type) ? "error" : "warn", `signal_${type.replaceAll("-", "_")}`, message);
    if (FATAL.has(type)) {
      this.#setState("failed", message);
      return;
    }
    // network/server/socket errors end in "disconnected" or "close", which schedule the retry;
    // "unavailable-id" (our id still held after a drop) is retried the same way.
    if (type === "unavailable-id" || peer.destroyed) this.#retry(type);
  }

  /** Whether an attempt failed and the next one waits its back-off. */
  get retrying() {
    return this.timer !== null;
  }

  #retry(reason) {
    if (this.timer !== null) return;
    this.failures += 1;
    if (this.failures > ATTEMPTS_PER_ENDPOINT && this.endpoints.length > 1) {
      this.index = (this.index + 1) % this.endpoints.length;
      this.failures = 1;
      this.log("warn", "signal_failover", `switching signaling to ${this.endpoint.url}`);
    }
    const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** (this.failures - 1)) * (0.75 + Math.random() / 2);
    this.#setState("reconnecting", `${reason}; retry in ${Math.round(delay / 1000)} s`);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.#reconnect();
    }, delay);
  }

  async #reconnect() {
    const peer = this.peer;
    const sameEndpoint = peer && peer.options.host === this.endpoint.host && peer.options.port === this.endpoint.port;
    if (peer && !peer.destroyed && peer.disconnected && sameEndpoint) {
      peer.options.token = await this.#token(); // tokens live 10 minutes
      try {
        peer.reconnect();
        return;
      } catch (error) {
        this.log("warn", "signal_reconnect_failed", String(error?.message ?? error));
      }
    }
    if (peer && !peer.destroyed) peer.disconnect();
    this.#connect();
  }

  /** Reconnect now rather than at the end of the back-off (the browser is online again). */
  retryNow() {
    if (this.state === "open" || this.state === "stopped" || this.state === "failed") return;
    this.failures = 0; // an attempt under way that fails is retried after the shortest delay
    if (this.timer === null) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.failures = 0;
    this.log("info", "signal_retry_now", "reconnecting signaling now");
    this.#reconnect();
  }

  /** An outbound DataConnection, or null while signaling is down. `metadata`: what it is for (mesh.js errandOf). */
  connect(peerId, metadata = undefined) {
    if (!this.peer || this.state !== "open") return null;
    return this.peer.connect(peerId, { serialization: "raw", reliable: true, metadata }) ?? null;
  }

  /** Drop retired Peers once none of their connections is open. */
  sweep() {
    this.retired = this.retired.filter((peer) => {
      const open = Object.values(peer.connections).some((list) => list.some((c) => c.open));
      if (!open) peer.destroy();
      return open;
    });
  }

  stop() {
    this.#setState("stopped");
    clearTimeout(this.timer);
    this.timer = null;
    for (const peer of [...this.retired, this.peer]) peer?.destroy();
    this.retired = [];
  }
}
