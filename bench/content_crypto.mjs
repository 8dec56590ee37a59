// Content crypto throughput of the browser modules with WebCrypto in Node: the ceiling of the
// browser transfer pipeline (bench/content_crypto_browser.py runs the same in Chromium).
//
//   node bench/content_crypto.mjs [--mib 64] [--repeat 3]
import { cpus, hostname, totalmem } from "node:os";

import { run } from "./content_crypto_core.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};

const cpu = cpus()[0]?.model ?? "unknown cpu";
console.log(
  `content crypto, WebCrypto in Node ${process.version} (${hostname()}: ${cpus().length} cpus (${cpu}), ` + `${Math.round(totalmem() / 2 ** 30)} GiB)`,
);
await run({ mib: arg("mib", 64), repeat: arg("repeat", 3) });
