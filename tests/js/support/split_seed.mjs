// Split a seed with the browser module, for tests/test_shares.py (JS-made shares combined by Python).
// Usage: node tests/js/support/split_seed.mjs SEED_HEX THRESHOLD COUNT -> JSON list of mnemonics.
import { fromHex } from "../../../static/swarm/protocol/encoding.js";
import { splitSeed } from "../../../static/swarm/protocol/shares.js";

const [seedHex, threshold, count] = process.argv.slice(2);
const mnemonics = await splitSeed(fromHex(seedHex), { threshold: Number(threshold), count: Number(count) });
process.stdout.write(`${JSON.stringify(mnemonics)}\n`);
