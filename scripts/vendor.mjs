// Copy the browser's npm packages into static/vendor/ (served by Django, mapped by the page's import map).
// No bundler: each entry is an ES module file (or a stylesheet) copied as it is.
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "static", "vendor");

// [package-relative source, vendor-relative destination]
const FILES = [
  ["idb/build/index.js", "idb/index.js"],
  ["@noble/ed25519/index.js", "noble-ed25519/index.js"],
  ["uplot/dist/uPlot.esm.js", "uplot/uPlot.esm.js"],
  ["uplot/dist/uPlot.min.css", "uplot/uPlot.min.css"],
  ["peerjs/dist/bundler.mjs", "peerjs/bundler.mjs"],
  ["peerjs-js-binarypack/dist/binarypack.mjs", "peerjs-js-binarypack/binarypack.mjs"],
  ["sdp/sdp.js", "sdp/sdp.js"],
  ["canonicalize/lib/canonicalize.js", "canonicalize/canonicalize.js"],
];
// Whole directories (ES module trees with relative imports).
const DIRS = [
  ["@msgpack/msgpack/dist.esm", "msgpack"],
  ["webrtc-adapter/src/js", "webrtc-adapter"],
];

rmSync(out, { recursive: true, force: true });
for (const [src, dest] of FILES) {
  const target = join(out, dest);
  mkdirSync(dirname(target), { recursive: true });
  cpSync(join(root, "node_modules", src), target);
}
for (const [src, dest] of DIRS) {
  cpSync(join(root, "node_modules", src), join(out, dest), { recursive: true });
}
console.log(`vendored ${FILES.length} files and ${DIRS.length} directories into static/vendor/`);
