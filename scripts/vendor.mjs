// Copy the browser's npm packages into static/vendor/ (served by Django, mapped by the page's
// import map in templates/swarm/_vendor.html). No bundler: each entry is copied as it is.
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
  ["canonicalize/lib/canonicalize.js", "canonicalize/canonicalize.js"],
  // peerjs ships its browser build as a classic script that sets window.peerjs;
  // static/swarm/vendor/peerjs.js re-exports it as an ES module.
  ["peerjs/dist/peerjs.min.js", "peerjs/peerjs.min.js"],
  ["peerjs/dist/peerjs.min.js.map", "peerjs/peerjs.min.js.map"],
];
// Whole directories (ES module trees with relative imports).
const DIRS = [["@msgpack/msgpack/dist.esm", "msgpack"]];

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
