// Ed25519 through WebCrypto where the platform has it, @noble/ed25519 where it does not.
// The probe runs once; both paths take and give raw 32-byte keys and 64-byte signatures.
import * as noble from "@noble/ed25519";

let probe = null;

async function probeWebCrypto() {
  try {
    const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    const data = new Uint8Array([1]);
    const sig = await crypto.subtle.sign({ name: "Ed25519" }, pair.privateKey, data);
    return await crypto.subtle.verify({ name: "Ed25519" }, pair.publicKey, sig, data);
  } catch {
    return false;
  }
}

export function hasWebCryptoEd25519() {
  probe ??= probeWebCrypto();
  return probe;
}

export async function verify(publicKey, signature, message) {
  if (await hasWebCryptoEd25519()) {
    try {
      const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
      return await crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
    } catch {
      return false; // a key WebCrypto refuses (e.g. small order) never verifies
    }
  }
  try {
    return await noble.verifyAsync(signature, message, publicKey);
  } catch {
    return false;
  }
}

// A signer holds either a WebCrypto CryptoKey (non-extractable) or a raw 32-byte seed.
export async function sign(signer, message) {
  if (signer.privateKey instanceof CryptoKey) {
    return new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, signer.privateKey, message));
  }
  return await noble.signAsync(message, signer.seed);
}

export async function signerFromSeed(seed) {
  return { seed, publicKey: await noble.getPublicKeyAsync(seed) };
}

export async function generateSigner({ extractable = false } = {}) {
  if (await hasWebCryptoEd25519()) {
    const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, extractable, ["sign", "verify"]);
    const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    return { privateKey: pair.privateKey, publicKey };
  }
  const seed = noble.utils.randomSecretKey();
  return signerFromSeed(seed);
}
