// The browser modules' layers (docs/browser.md "Modules"): protocol/ is pure and imports only
// protocol/ and vendored packages; each protocol module mirrors the Python module of the same
// name in peers/protocol/ (the exceptions stand for Python packages: the platform's Ed25519 and
// SLIP-39, which Python has from shamir-mnemonic; and controls.js, the person's decisions); adapters/ and
// content/ never import the UI.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const SWARM = join(ROOT, "static/swarm");
// Ed25519: WebCrypto or @noble, Python has `cryptography`; SLIP-39: Python has `shamir-mnemonic`;
// controls.js: the pause and block list a person sets at the page (the super-peer has no one there).
const JS_ONLY = new Set(["ed25519.js", "slip39.js", "slip39_words.js", "controls.js"]);
const IMPORT_RE = /(?:^|[;}\s])(?:import|export)\s+(?:[\w*{}\s,$]*?\s*from\s*)?["']([^"'\n]+)["']/gm;

function imports(folder) {
  const out = [];
  for (const name of readdirSync(join(SWARM, folder))) {
    if (!name.endsWith(".js")) continue;
    const path = join(SWARM, folder, name);
    for (const [, spec] of readFileSync(path, "utf8").matchAll(IMPORT_RE)) {
      out.push({ module: `${folder}/${name}`, spec, target: spec.startsWith(".") ? relative(SWARM, resolve(dirname(path), spec)) : null });
    }
  }
  return out;
}

test("protocol modules import only protocol modules and vendored packages", () => {
  const found = imports("protocol");
  assert.ok(found.length > 40, "the imports were read");
  for (const { module, spec, target } of found) {
    if (target === null) assert.ok(["@msgpack/msgpack", "@noble/ed25519", "canonicalize"].includes(spec), `${module} imports ${spec}`);
    else assert.ok(target.startsWith("protocol/") && existsSync(join(SWARM, target)), `${module} imports ${spec}`);
  }
});

test("every protocol module carries the name of its Python mirror", () => {
  const names = readdirSync(join(SWARM, "protocol")).filter((n) => n.endsWith(".js"));
  assert.ok(names.length >= 20);
  for (const name of names) {
    if (JS_ONLY.has(name)) continue;
    const mirror = join(ROOT, "peers/protocol", name.replace(/\.js$/, ".py"));
    assert.ok(existsSync(mirror), `static/swarm/protocol/${name} has no peers/protocol/${name.replace(/\.js$/, ".py")}`);
  }
});

test("adapters and content modules do not import the UI", () => {
  for (const folder of ["adapters", "content"]) {
    for (const { module, spec, target } of imports(folder)) {
      if (target !== null) assert.ok(!target.startsWith("ui/") && existsSync(join(SWARM, target)), `${module} imports ${spec}`);
    }
  }
});
