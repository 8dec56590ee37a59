// A DataConnection whose offer, answer and ICE candidates travel through the mesh
// (docs/protocol.md "Signaling through the mesh") instead of the PeerJS server. It has the part
// of PeerJS's DataConnection that the page uses (peer, connectionId, open, dataChannel,
// send, close, on open | data | close | error) and carries the payloads PeerJS puts in its
// OFFER, ANSWER and CANDIDATE messages, so the super-peer's PeerJS-compatible negotiation
// takes them as they are. Serialization is raw (bytes in, ArrayBuffer out), reliable and ordered.

const OPEN_TIMEOUT_MS = 20_000;

function connectionId() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return `dc_${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export class MeshConnection {
  /**
   * @param {{ peer: string, sid: string, rtc: RTCConfiguration, signal: (kind: string, payload: any) => void,
   *           connectionId?: string, metadata?: any }} args  `rtc`: ICE servers and transport policy (the page's current
   *           ones, TURN credentials included); `signal` sends one of this session's messages through the mesh;
   *           `metadata`: what a dial is for (PeerJS's metadata; the answering side takes the offer's).
   */
  constructor({ peer, sid, rtc, signal, connectionId: id = connectionId(), metadata = null }) {
    this.peer = peer;
    this.sid = sid;
    this.connectionId = id;
    this.label = id;
    this.serialization = "raw";
    this.reliable = true;
    this.metadata = metadata;
    this.open = false;
    this.viaMesh = true;
    this.signal = signal;
    this.handlers = new Map();
    this.closed = false;
    this.dataChannel = null;
    this.remoteSet = false;
    this.early = []; // candidates that came before the remote description
    this.peerConnection = new RTCPeerConnection({ ...rtc });
    this.peerConnection.addEventListener("icecandidate", (e) => {
      if (e.candidate) this.signal("candidate", { candidate: e.candidate.toJSON(), type: "data", connectionId: this.connectionId });
    });
    this.peerConnection.addEventListener("connectionstatechange", () => {
      const state = this.peerConnection.connectionState;
      if (state === "failed" || state === "closed") this.close();
    });
    this.timer = setTimeout(() => {
      if (!this.open) this.#fail("mesh_open_timeout", "the connection did not open in time");
    }, OPEN_TIMEOUT_MS);
  }

  on(event, handler) {
    const list = this.handlers.get(event) ?? [];
    list.push(handler);
    this.handlers.set(event, list);
    return this;
  }

  #emit(event, value) {
    for (const handler of this.handlers.get(event) ?? []) handler(value);
  }

  /** The dialing side: a data channel, an offer (PeerJS's OFFER payload) sent through the mesh. */
  async dial() {
    this.#channel(this.peerConnection.createDataChannel(this.label, { ordered: true }));
    const offer = await this.peerConnection.createOffer();
    await this.peerConnection.setLocalDescription(offer);
    this.signal("offer", {
      sdp: { type: offer.type, sdp: offer.sdp },
      type: "data",
      connectionId: this.connectionId,
      label: this.label,
      serialization: this.serialization,
      reliable: this.reliable,
      metadata: this.metadata,
    });
    return this;
  }

  /** The answering side: take the offer's payload, answer through the mesh. */
  async accept(payload) {
    this.metadata = payload?.metadata ?? null;
    this.peerConnection.addEventListener("datachannel", (e) => this.#channel(e.channel));
    await this.peerConnection.setRemoteDescription(payload.sdp);
    this.remoteSet = true;
    await this.#addEarly();
    const answer = await this.peerConnection.createAnswer();
    await this.peerConnection.setLocalDescription(answer);
    this.signal("answer", { sdp: { type: answer.type, sdp: answer.sdp }, type: "data", connectionId: this.connectionId });
    return this;
  }

  /** A message of this session that came through the mesh: answer, candidate or bye. */
  async receive(kind, payload) {
    if (this.closed) return;
    try {
      if (kind === "answer" && !this.remoteSet) {
        await this.peerConnection.setRemoteDescription(payload.sdp);
        this.remoteSet = true;
        await this.#addEarly();
      } else if (kind === "candidate" && payload?.candidate) {
        if (this.remoteSet) await this.peerConnection.addIceCandidate(payload.candidate);
        else this.early.push(payload.candidate);
      } else if (kind === "bye") {
        this.close({ quiet: true });
      }
    } catch (error) {
      this.#fail("mesh_negotiation", String(error?.message ?? error));
    }
  }

  async #addEarly() {
    for (const candidate of this.early.splice(0)) await this.peerConnection.addIceCandidate(candidate);
  }

  #channel(channel) {
    this.dataChannel = channel;
    channel.binaryType = "arraybuffer";
    channel.addEventListener("open", () => {
      clearTimeout(this.timer);
      this.open = true;
      this.#emit("open");
    });
    channel.addEventListener("message", (e) => this.#emit("data", e.data));
    channel.addEventListener("close", () => this.close({ quiet: true }));
  }

  send(data) {
    if (this.open && this.dataChannel?.readyState === "open") this.dataChannel.send(data);
  }

  #fail(type, message) {
    this.#emit("error", { type, message });
    this.close();
  }

  close({ quiet = false } = {}) {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    if (!quiet && !this.open) this.signal("bye", { connectionId: this.connectionId });
    this.open = false;
    try {
      this.dataChannel?.close();
      this.peerConnection.close();
    } catch {
      // already closed
    }
    this.#emit("close");
  }
}
