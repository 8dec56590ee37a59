// Keep test traffic on 127.0.0.1: Chromium also offers the machine's other interfaces, and
// two Chromium peers then pair 127.0.0.1 with them. This wraps RTCPeerConnection (load it
// before peerjs) so that only loopback candidates are announced and accepted; peerjs itself
// is untouched. A classic script, served by tests/support/page_server.py to the test pages.
"use strict";
{
  const Native = window.RTCPeerConnection;
  const loopback = (text) => text.split(" ")[4] === "127.0.0.1";
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      let handler = null;
      super.onicecandidate = (event) => {
        if (!event.candidate?.candidate || loopback(event.candidate.candidate)) {
          handler?.(event);
        }
      };
      Object.defineProperty(this, "onicecandidate", {
        get: () => handler,
        set: (h) => {
          handler = h;
        },
      });
    }
    addIceCandidate(candidate, ...rest) {
      if (candidate?.candidate && !loopback(candidate.candidate)) return Promise.resolve();
      return super.addIceCandidate(candidate, ...rest);
    }
  };
}
