// Signal tokens (docs/protocol.md "Signal tokens"), mirror of peers/protocol/signal_token.py.
// A key-bound id ("p" + 32 base32 chars) may only hold a signaling connection with a token
// proving its key: "s1.<issued_at>.<pk>.<sig>", the signature over
// "swarm/signal-token/v1\n" + JCS({issued_at, peer_id}). Pass it as PeerJS's `token` option,
// and refresh `peer.options.token` before `peer.reconnect()` (tokens live 10 minutes).
import * as ed25519 from "./ed25519.js";
import { b64urlDecode, b64urlEncode, peerIdForKey } from "./encoding.js";
import { DOMAIN_SIGNAL_TOKEN, signingInput } from "./envelope.js";
import { BAD_SIGNATURE, EXPIRED, NOT_YET_VALID, PEER_MISMATCH, ProtocolError } from "./errors.js";

export const PREFIX = "s1";
export const BAD_TOKEN = "bad_token";
export const DEFAULT_MAX_AGE_MS = 600_000;
export const CLOCK_SKEW_MS = 15_000;
const MAX_TOKEN_LENGTH = 160;
const ISSUED_AT_RE = /^(0|[1-9][0-9]{0,15})$/;
const PUBLIC_KEY_BYTES = 32;
const SIGNATURE_BYTES = 64;

function tokenBody(peerId, issuedAt) {
  return { issued_at: issuedAt, peer_id: peerId };
}

/**
 * Sign a token for the signer's key-bound id (`peerId` defaults to it).
 * @param {{ publicKey: Uint8Array }} signer
 * @param {{ now?: number, peerId?: string }} [opts]
 */
export async function makeSignalToken(signer, { now = Date.now(), peerId } = {}) {
  const id = peerId ?? (await peerIdForKey(signer.publicKey));
  const signature = await ed25519.sign(signer, signingInput(DOMAIN_SIGNAL_TOKEN, tokenBody(id, now)));
  return `${PREFIX}.${now}.${b64urlEncode(signer.publicKey)}.${b64urlEncode(signature)}`;
}

// Split a token into { issuedAt, publicKey, signature }; throws ProtocolError("bad_token").
export function parseSignalToken(token) {
  if (typeof token !== "string" || token.length > MAX_TOKEN_LENGTH) {
    throw new ProtocolError(BAD_TOKEN, "token is not a signal token");
  }
  const parts = token.split(".");
  if (parts.length !== 4 || parts[0] !== PREFIX) {
    throw new ProtocolError(BAD_TOKEN, `token must be ${PREFIX}.<issued_at>.<pk>.<sig>`);
  }
  if (!ISSUED_AT_RE.test(parts[1]) || !Number.isSafeInteger(Number(parts[1]))) {
    throw new ProtocolError(BAD_TOKEN, "issued_at must be a decimal integer (ms)");
  }
  const publicKey = b64urlDecode(parts[2], "pk", BAD_TOKEN);
  if (publicKey.length !== PUBLIC_KEY_BYTES) throw new ProtocolError(BAD_TOKEN, "pk must be a 32-byte Ed25519 key");
  const signature = b64urlDecode(parts[3], "sig", BAD_TOKEN);
  if (signature.length !== SIGNATURE_BYTES) {
    throw new ProtocolError(BAD_TOKEN, "sig must be a 64-byte Ed25519 signature");
  }
  return { issuedAt: Number(parts[1]), publicKey, signature };
}

// Check that `token` proves ownership of `peerId` at `now`; resolves { peerId, publicKey, issuedAt }.
// Same order of checks as the server: shape, key-to-id binding, time window, signature.
export async function verifySignalToken(token, { peerId, now = Date.now(), maxAgeMs = DEFAULT_MAX_AGE_MS, skewMs = CLOCK_SKEW_MS }) {
  const { issuedAt, publicKey, signature } = parseSignalToken(token);
  if ((await peerIdForKey(publicKey)) !== peerId) {
    throw new ProtocolError(PEER_MISMATCH, "the token's key is not bound to this id");
  }
  if (issuedAt > now + skewMs) throw new ProtocolError(NOT_YET_VALID, "token is issued in the future");
  if (now >= issuedAt + maxAgeMs) throw new ProtocolError(EXPIRED, "token has expired");
  const message = signingInput(DOMAIN_SIGNAL_TOKEN, tokenBody(peerId, issuedAt));
  if (!(await ed25519.verify(publicKey, signature, message))) {
    throw new ProtocolError(BAD_SIGNATURE, "token signature does not verify");
  }
  return { peerId, publicKey, issuedAt };
}
