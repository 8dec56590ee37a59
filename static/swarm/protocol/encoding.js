// Byte encodings of every signed object: strict base64url and key-bound peer ids.
import { BAD_ENVELOPE, ProtocolError } from "./errors.js";

const B64URL_RE = /^[A-Za-z0-9_-]*$/;
const B32_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567";
export const PEER_ID_RE = /^p[a-z2-7]{32}$/;
const PEER_ID_DIGEST_BYTES = 20;

export const utf8 = new TextEncoder();

export function b64urlEncode(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// Strict: url alphabet only, no padding, canonical trailing bits (one spelling per value).
export function b64urlDecode(text, field, code = BAD_ENVELOPE) {
  if (typeof text !== "string" || !B64URL_RE.test(text) || text.length % 4 === 1) {
    throw new ProtocolError(code, `${field} is not base64url`);
  }
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  if (b64urlEncode(bytes) !== text) {
    throw new ProtocolError(code, `${field} is not canonical base64url`);
  }
  return bytes;
}

export function base32Lower(bytes) {
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += B32_ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32_ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

// "p" + lowercase unpadded base32 of the first 20 bytes of SHA-256(raw public key).
export async function peerIdForKey(publicKey) {
  const digest = await sha256(publicKey);
  return `p${base32Lower(digest.subarray(0, PEER_ID_DIGEST_BYTES))}`;
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(text) {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}
