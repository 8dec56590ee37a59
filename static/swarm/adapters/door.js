// The page's side of a super-peer's door (docs/superpeer.md "The door", docs/browser.md
// "With the server gone"): a WebSocket to a super-peer that carries mesh signaling when the
// signaling server cannot be reached and the page has no connection to signal through.
//
// Entering: `?id=<peer id>&token=<signal token>`; the door answers with its signed presence
// ticket (checked here: the page learns whom it reached), then binary wire frames both
// ways, only `signal` and `reach`. The page treats the socket as one more neighbour of its
// MeshSignal (connection id DOOR_CONN) and dials the super-peer through it; once that
// connection is open it closes the door.

import { makeSignalToken } from "../protocol/signal_token.js";
import { verifyTicket } from "../protocol/ticket.js";
import { decodeFrame } from "../protocol/wire.js";

export const DOOR_CONN = "door";
const TICKET_TIMEOUT_MS = 5_000;

export class Door {
  /**
   * @param {{ url: string, peerId: string, signer: any, community: string, clock: () => number,
   *           log: (level: string, code: string, message: string) => void,
   *           onEnter: (superPeerId: string) => void, onFrame: (frame: any) => void, onLeave: (reason: string) => void,
   *           WebSocketImpl?: typeof WebSocket }} args
   */
  constructor({ url, peerId, signer, community, clock, log, onEnter, onFrame, onLeave, WebSocketImpl = WebSocket }) {
    this.url = url;
    this.peerId = peerId;
    this.signer = signer;
    this.community = community;
    this.clock = clock;
    this.log = log;
    this.onEnter = onEnter;
    this.onFrame = onFrame;
    this.onLeave = onLeave;
    this.WebSocketImpl = WebSocketImpl;
    this.superPeerId = null;
    this.ws = null;
    this.closed = false;
  }

  async open() {
    const token = await makeSignalToken(this.signer, { now: this.clock(), peerId: this.peerId });
    if (this.closed) return;
    const url = new URL(this.url, location.href);
    url.searchParams.set("id", this.peerId);
    url.searchParams.set("token", token);
    const ws = new this.WebSocketImpl(url.href);
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    const timer = setTimeout(() => this.close("door_no_ticket"), TICKET_TIMEOUT_MS);
    ws.addEventListener("message", (event) => {
      if (this.superPeerId === null) {
        clearTimeout(timer);
        this.#entered(event.data).catch((error) => {
          this.log("warn", error?.code ?? "door_bad_ticket", `the door at ${this.url} sent no valid ticket: ${error?.message ?? error}`);
          this.close("door_bad_ticket");
        });
        return;
      }
      if (typeof event.data === "string") return;
      let frame;
      try {
        frame = decodeFrame(new Uint8Array(event.data));
      } catch (error) {
        this.log("warn", error?.code ?? "bad_frame", `the door at ${this.url} sent a bad frame`);
        this.close("door_bad_frame");
        return;
      }
      if (frame.t === "signal" || frame.t === "reach") this.onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      clearTimeout(timer);
      this.close(event.reason || `door_closed_${event.code}`);
    });
    ws.addEventListener("error", () => {}); // a close follows
  }

  async #entered(data) {
    if (typeof data !== "string") throw Object.assign(new Error("no ticket"), { code: "door_bad_ticket" });
    const ticket = await verifyTicket(JSON.parse(data).ticket, { now: this.clock(), community: this.community });
    if (this.closed) return;
    this.superPeerId = ticket.peerId;
    this.log("info", "door_open", `through the door at ${this.url} to super-peer ${ticket.peerId}`);
    this.onEnter(ticket.peerId);
  }

  /** One wire frame's bytes to the super-peer; false when the door is not open. */
  send(bytes) {
    if (this.closed || this.superPeerId === null || this.ws?.readyState !== 1) return false;
    this.ws.send(bytes);
    return true;
  }

  close(reason = "door_closed") {
    if (this.closed) return;
    this.closed = true;
    try {
      this.ws?.close(1000, "done");
    } catch {
      // already closing
    }
    this.onLeave(reason);
  }
}
