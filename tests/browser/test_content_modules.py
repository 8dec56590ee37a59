"""The content modules work in real Chromium: WebCrypto AES-GCM, X25519, HKDF and Ed25519
there give the same bytes as Python (shared vectors), and a file round trips from a File."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import new_context
from tests.support.live import Server

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

VECTORS = Path(__file__).parent.parent / "vectors"


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


SCRIPT = """async ({ chunks, manifests, keywrap, posts, keys }) => {
  const c = await import("/static/swarm/protocol/chunks.js");
  const m = await import("/static/swarm/protocol/manifest.js");
  const kw = await import("/static/swarm/protocol/keywrap.js");
  const pl = await import("/static/swarm/protocol/postlog.js");
  const ed = await import("/static/swarm/protocol/ed25519.js");
  const { fromHex, hex } = await import("/static/swarm/protocol/encoding.js");
  const out = {};
  const key = fromHex(chunks.key_hex);
  out.ciphertexts = [];
  for (const v of chunks.cases) {
    const plain = fromHex(v.plaintext_hex);
    const sealedChunk = await c.encryptChunk(key, chunks.file_id, v.index, plain);
    out.ciphertexts.push(hex(sealedChunk));
  }
  const multi = manifests.valid.find((v) => v.name === "multi");
  const manifest = await m.verifyManifest(multi.manifest, {
    now: manifests.now, expectedId: multi.id,
  });
  out.manifestId = manifest.id;
  const alice = await ed.signerFromSeed(fromHex(keys.find((k) => k.label === "alice").seed_hex));
  const pattern = new Uint8Array(manifest.size).map((_, i) => i % 251);
  const file = new File([pattern], "x.bin");
  const sealed = await c.encryptFile(file, { key, fileId: manifest.fileId });
  const remade = await m.makeManifest(alice, sealed, {
    name: manifest.name, mime: manifest.mime, createdAt: manifest.createdAt,
  });
  out.manifestSame = JSON.stringify(remade) === JSON.stringify(multi.manifest);
  const plain = await m.decryptFile(manifest, key, sealed.chunks.map((x) => x.ciphertext));
  out.plainSame = plain.every((b, i) => b === pattern[i]) && plain.length === pattern.length;

  const recipient = await kw.keyAgreementPairFromSeed(fromHex(keywrap.recipient.x25519_seed_hex));
  const wrapped = await kw.wrapFileKey(fromHex(keywrap.file_key_hex), {
    fileId: keywrap.file_id,
    recipient: keywrap.recipient.peer_id,
    recipientKey: recipient.publicKey,
    ephemeral: await kw.keyAgreementPairFromSeed(fromHex(keywrap.ephemeral_seed_hex)),
  });
  out.wrapped = wrapped;
  out.unwrapped = hex(await kw.unwrapFileKey(keywrap.wrapped, {
    keyPair: recipient, peerId: keywrap.recipient.peer_id, fileId: keywrap.file_id,
  }));
  out.smallOrder = [];
  for (const raw of keywrap.small_order_keys_hex) {
    try { await kw.checkX25519Public(fromHex(raw)); out.smallOrder.push("accepted"); }
    catch (e) { out.smallOrder.push(e.code); }
  }
  // A fresh, non-extractable key pair, as a real page makes one.
  const mine = await kw.generateKeyAgreementPair();
  out.privateExtractable = mine.privateKey.extractable;
  const fresh = await kw.wrapFileKey(key, {
    fileId: manifest.fileId, recipient: keywrap.recipient.peer_id, recipientKey: mine.publicKey,
  });
  const me = keywrap.recipient.peer_id;
  const opened = await kw.unwrapFileKey(fresh, { keyPair: mine, peerId: me });
  out.freshRoundTrip = hex(opened);

  out.logs = [];
  for (const v of posts.logs) {
    try {
      const log = await pl.verifyLog(v.entries, { now: posts.now });
      out.logs.push(log.head ? "ok" : "empty");
    } catch (e) {
      out.logs.push(e.code);
    }
  }
  return out;
}"""


def test_content_modules_match_python_in_chromium(beacon_server: Server, browser: Browser) -> None:
    chunks, manifests = load("chunks.json"), load("manifests.json")
    keywrap, posts = load("keywrap.json"), load("posts.json")
    context = new_context(browser, beacon_server.url)
    page = context.new_page()
    page.goto(beacon_server.url + "/")
    out = page.evaluate(
        SCRIPT,
        {
            "chunks": chunks,
            "manifests": manifests,
            "keywrap": keywrap,
            "posts": posts,
            "keys": load("keys.json")["keys"],
        },
    )
    context.close()
    assert out["ciphertexts"] == [c["ciphertext_hex"] for c in chunks["cases"]]
    assert out["manifestId"] == next(v["id"] for v in manifests["valid"] if v["name"] == "multi")
    assert out["manifestSame"] is True
    assert out["plainSame"] is True
    assert out["wrapped"] == keywrap["wrapped"]
    assert out["unwrapped"] == keywrap["file_key_hex"]
    assert out["smallOrder"] == ["bad_key"] * len(keywrap["small_order_keys_hex"])
    assert out["privateExtractable"] is False
    assert out["freshRoundTrip"] == chunks["key_hex"]
    assert out["logs"] == [log["error"] or "ok" for log in posts["logs"]]
