// Small byte strings sealed to one peer's X25519 key (docs/protocol.md "Sealed values"),
// mirror of peers/protocol/seal.py. The key wrapping's construction with its own labels, so
// nothing sealed here opens as a wrapped file key or the other way round: HKDF-SHA256 info
// "swarm/seal/v1", aad "swarm/seal/v1\n" + recipient + "\n" + context; sealed = epk || ct.
import { PEER_ID_RE, utf8 } from "./encoding.js";
import { BAD_SEALED, DECRYPT_FAILED, ProtocolError } from "./errors.js";
import { checkX25519Public, deriveAead, deriveShared, generateKeyAgreementPair } from "./keywrap.js";

export const SEAL_INFO = "swarm/seal/v1";
export const MAX_SEALED_DATA = 1024;
const X25519_BYTES = 32;
const TAG_BYTES = 16;
export const SEAL_OVERHEAD = X25519_BYTES + TAG_BYTES;
export const MAX_SEALED_BYTES = MAX_SEALED_DATA + SEAL_OVERHEAD;
const MAX_CONTEXT_BYTES = 256;

function aad(recipient, context) {
  if (typeof recipient !== "string" || !PEER_ID_RE.test(recipient)) {
    throw new ProtocolError(BAD_SEALED, "recipient is not a key-bound peer id");
  }
  if (typeof context !== "string" || !context.isWellFormed()) throw new ProtocolError(BAD_SEALED, "context is not valid Unicode");
  const encoded = utf8.encode(context);
  if (encoded.length > MAX_CONTEXT_BYTES) throw new ProtocolError(BAD_SEALED, `context is over ${MAX_CONTEXT_BYTES} bytes`);
  return utf8.encode(`${SEAL_INFO}\n${recipient}\n${context}`);
}

/**
 * Seal 1..1024 bytes for peer `recipient` whose X25519 public key is `recipientKey` (raw).
 * `ephemeral` ({privateKey, publicKey}) is for test vectors only: reusing it reuses the nonce.
 */
export async function seal(data, { recipient, recipientKey, context, ephemeral = null }) {
  if (!(data instanceof Uint8Array) || data.length < 1 || data.length > MAX_SEALED_DATA) {
    throw new ProtocolError(BAD_SEALED, `a sealed value holds 1 to ${MAX_SEALED_DATA} bytes`);
  }
  const additionalData = aad(recipient, context);
  await checkX25519Public(recipientKey);
  const eph = ephemeral ?? (await generateKeyAgreementPair());
  const shared = await deriveShared(eph.privateKey, recipientKey, BAD_SEALED);
  const { key, nonce } = await deriveAead(shared, eph.publicKey, recipientKey, SEAL_INFO);
  const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData }, key, /** @type {BufferSource} */ (data)));
  const out = new Uint8Array(X25519_BYTES + ct.length);
  out.set(eph.publicKey);
  out.set(ct, X25519_BYTES);
  return out;
}

/** The data sealed for `recipient` (this peer, keyPair = {privateKey, publicKey}) and `context`. */
export async function openSealed(sealed, { keyPair, recipient, context }) {
  if (!(sealed instanceof Uint8Array) || sealed.length <= SEAL_OVERHEAD || sealed.length > MAX_SEALED_BYTES) {
    throw new ProtocolError(BAD_SEALED, `a sealed value is ${SEAL_OVERHEAD + 1} to ${MAX_SEALED_BYTES} bytes`);
  }
  const additionalData = aad(recipient, context);
  const epk = sealed.slice(0, X25519_BYTES);
  const shared = await deriveShared(keyPair.privateKey, epk, BAD_SEALED);
  const { key, nonce } = await deriveAead(shared, epk, keyPair.publicKey, SEAL_INFO);
  try {
    return new Uint8Array(
      await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce, additionalData }, key, /** @type {BufferSource} */ (sealed.subarray(X25519_BYTES))),
    );
  } catch {
    throw new ProtocolError(DECRYPT_FAILED, "the sealed value does not open here");
  }
}
