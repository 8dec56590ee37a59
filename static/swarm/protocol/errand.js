// What a dial is for (docs/protocol.md "Errands"), carried in the DataConnection's PeerJS
// metadata: `{errand: "content", manifest}` (to download that manifest from the peer dialed) or
// `{errand: "dht"}` (to ask it DHT requests). A node at its maximum still takes such a
// connection (mesh.js, within its spare) when it holds the manifest or runs a DHT.
// Mirror of peers/protocol/errand.py; shared vectors in tests/vectors/errand.json.
import { DIGEST_ID_RE } from "./wire.js";

export const ERRAND_CONTENT = "content";
export const ERRAND_DHT = "dht";

/** @typedef {{ errand: string, manifest?: string }} Errand */

/**
 * The errand a DataConnection's metadata names; anything else (malformed included) is null:
 * an ordinary dial. The result is also the metadata to send.
 * @param {unknown} metadata
 * @returns {Errand | null}
 */
export function errandOf(metadata) {
  if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) return null;
  const m = /** @type {Record<string, unknown>} */ (metadata);
  const keys = Object.keys(m).length;
  if (m.errand === ERRAND_DHT && keys === 1) return { errand: ERRAND_DHT };
  if (m.errand === ERRAND_CONTENT && keys === 2 && typeof m.manifest === "string" && DIGEST_ID_RE.test(m.manifest)) {
    return { errand: ERRAND_CONTENT, manifest: m.manifest };
  }
  return null;
}
