// The real peerjs client as an ES module. Its browser build is a classic script that sets
// window.peerjs, loaded by templates/swarm/_vendor.html with `defer`: deferred scripts run in
// document order, so it runs before any module (modules are deferred too) without blocking
// the parser.
const lib = globalThis.peerjs;
if (!lib) {
  throw new Error("peerjs is not loaded: include static/vendor/peerjs/peerjs.min.js first");
}
export const Peer = lib.Peer;
export const util = lib.util;
export default lib.Peer;
