"""Shared vectors for files: chunks, manifests, wrapped keys (written by make_vectors.py).

Plaintexts come from :func:`pattern` so that large files need no bytes in the JSON: a file's
chunk ids are SHA-256 of the full ciphertexts, so matching ids proves matching bytes.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from peers.protocol.chunks import (
    CHUNK_SIZE,
    MAX_FILE_SIZE,
    TAG_BYTES,
    chunk_aad,
    chunk_nonce,
    digest_id,
    encrypt_chunk,
    encrypt_file,
    share_fragment,
)
from peers.protocol.encoding import b64url_decode, b64url_encode, peer_id_for_key
from peers.protocol.envelope import DOMAIN_MANIFEST, DOMAIN_POST, sign
from peers.protocol.keywrap import (
    DOMAIN_XKEY,
    make_key_announcement,
    wrap_file_key,
    x25519_public,
)
from peers.protocol.manifest import make_manifest, object_id

NOW = 1_800_000_000_000
CREATED_AT = NOW - 60_000
PATTERN = "plaintext byte i is i % 251"
FILE_KEY = hashlib.sha256(b"vector file key").digest()
FILE_ID = b64url_encode(hashlib.sha256(b"vector file id").digest()[:16])
OTHER_FILE_ID = b64url_encode(hashlib.sha256(b"vector other file id").digest()[:16])
# (name, size): empty, one byte, exactly one chunk, two full chunks and a partial one.
FILES = [("empty", 0), ("one_byte", 1), ("one_chunk", CHUNK_SIZE), ("multi", 2 * CHUNK_SIZE + 1000)]
# X25519 keys whose shared secret with anything is all zeros (small order), and a
# non-canonical encoding of 0 (p itself): every one must be refused.
SMALL_ORDER_KEYS = [
    "00" * 32,
    "01" + "00" * 31,
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ec" + "ff" * 30 + "7f",
]


def pattern(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


def seeded_key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def x25519_seed(label: str) -> bytes:
    return hashlib.sha256(f"{label}/x25519".encode()).digest()


def peer_of(key: Ed25519PrivateKey) -> str:
    return peer_id_for_key(key.public_key().public_bytes_raw())


def chunk_vectors() -> dict[str, Any]:
    cases = []
    for name, index, plain in [
        ("hello_index_0", 0, b"hello"),
        ("pattern_index_7", 7, pattern(100)),
        ("one_byte_index_1", 1, b"\x00"),
        ("empty_plaintext_index_4095", 4095, b""),
    ]:
        sealed = encrypt_chunk(FILE_KEY, FILE_ID, index, plain)
        cases.append(
            {
                "name": name,
                "index": index,
                "plaintext_hex": plain.hex(),
                "nonce_hex": chunk_nonce(index).hex(),
                "aad_hex": chunk_aad(FILE_ID, index).hex(),
                "ciphertext_hex": sealed.hex(),
                "id": digest_id(sealed),
            }
        )
    files = []
    for name, size in FILES:
        sealed_file = encrypt_file(pattern(size), key=FILE_KEY, file_id=FILE_ID)
        files.append({"name": name, "size": size, "chunk_ids": sealed_file.chunk_ids})
    base = bytes.fromhex(cases[0]["ciphertext_hex"])
    flipped = bytearray(base)
    flipped[-1] ^= 1
    wrong_key = bytearray(FILE_KEY)
    wrong_key[0] ^= 1
    bad = [
        {
            "name": "wrong_index",
            "index": 1,
            "ciphertext_hex": base.hex(),
            "error": "decrypt_failed",
        },
        {
            "name": "wrong_file",
            "index": 0,
            "file_id": OTHER_FILE_ID,
            "ciphertext_hex": base.hex(),
            "error": "decrypt_failed",
        },
        {
            "name": "flipped_tag_bit",
            "index": 0,
            "ciphertext_hex": bytes(flipped).hex(),
            "error": "decrypt_failed",
        },
        {
            "name": "wrong_key",
            "index": 0,
            "key_hex": bytes(wrong_key).hex(),
            "ciphertext_hex": base.hex(),
            "error": "decrypt_failed",
        },
        {
            "name": "shorter_than_tag",
            "index": 0,
            "ciphertext_hex": base[:15].hex(),
            "error": "bad_chunk",
        },
        {
            "name": "index_past_max",
            "index": 4096,
            "ciphertext_hex": base.hex(),
            "error": "bad_chunk",
        },
        {
            "name": "short_key",
            "index": 0,
            "key_hex": FILE_KEY[:16].hex(),
            "ciphertext_hex": base.hex(),
            "error": "bad_key",
        },
    ]
    return {
        "description": "AES-256-GCM chunks: nonce = 4 zero bytes || uint64_be(index); "
        "aad = 'swarm/chunk/v1' || 0x00 || file_id (16 bytes) || uint64_be(index); "
        "id = b64url(SHA-256(ciphertext)). `files` hold only chunk ids of pattern plaintexts; "
        "`bad` cases use key_hex/file_id when given, else the top-level ones.",
        "chunk_size": CHUNK_SIZE,
        "tag_bytes": TAG_BYTES,
        "max_file_size": MAX_FILE_SIZE,
        "pattern": PATTERN,
        "key_hex": FILE_KEY.hex(),
        "file_id": FILE_ID,
        "cases": cases,
        "files": files,
        "bad": bad,
        "share": {"key_hex": FILE_KEY.hex(), "fragment": share_fragment(FILE_KEY)},
        "share_hints": share_hint_cases(),
        "bad_fragments": [
            {"fragment": "k=" + b64url_encode(FILE_KEY[:31]), "error": "bad_key"},
            {"fragment": "key=" + b64url_encode(FILE_KEY), "error": "bad_key"},
            {"fragment": "k=" + b64url_encode(FILE_KEY) + "=", "error": "bad_key"},
            {"fragment": "k=" + b64url_encode(FILE_KEY)[:-1] + "B", "error": "bad_key"},
        ],
    }


def share_hint_cases() -> list[dict[str, Any]]:
    """Share fragments with holder hints (``&h=``): what the key and the hints parse to."""
    ids = [peer_id_for_key(bytes([i]) * 32) for i in range(6)]
    key = "k=" + b64url_encode(FILE_KEY)
    return [
        {"name": "two hints", "fragment": share_fragment(FILE_KEY, ids[:2]), "hints": ids[:2]},
        {
            "name": "made with duplicates and more than four",
            "fragment": share_fragment(FILE_KEY, [ids[0], ids[0], *ids[1:6]]),
            "hints": ids[:4],
        },
        {"name": "no hints", "fragment": key, "hints": []},
        {
            "name": "bad ids are skipped",
            "fragment": f"{key}&h={ids[0]},P{ids[1][1:]},x,,{ids[2]}",
            "hints": [ids[0], ids[2]],
        },
        {
            "name": "unknown parameters are ignored",
            "fragment": f"{key}&z=1&h={ids[3]}&h={ids[4]},{ids[3]}",
            "hints": [ids[3], ids[4]],
        },
    ]


def resign(envelope: dict[str, Any], key: Ed25519PrivateKey, **changes: Any) -> dict[str, Any]:
    """A changed body, signed again so the only fault left is the one under test."""
    body = copy.deepcopy(envelope["body"])
    for field, value in changes.items():
        if value is _DROP:
            del body[field]
        else:
            body[field] = value
    return sign(DOMAIN_MANIFEST, body, key)


_DROP = object()


def manifest_vectors() -> dict[str, Any]:
    alice, bob = seeded_key("alice"), seeded_key("bob")
    valid = []
    for (name, size), mime, file_name in zip(
        FILES,
        ["text/plain", "application/octet-stream", "image/png", "application/pdf"],
        ["empty.txt", "b", "picture.png", "Été \U0001f600 report (final).pdf"],
        strict=True,
    ):
        sealed = encrypt_file(pattern(size), key=FILE_KEY, file_id=FILE_ID)
        envelope = make_manifest(alice, sealed, name=file_name, mime=mime, created_at=CREATED_AT)
        valid.append(
            {
                "name": name,
                "manifest": envelope,
                "id": object_id(DOMAIN_MANIFEST, envelope["body"]),
            }
        )
    base = valid[3]["manifest"]
    chunks = base["body"]["chunks"]
    invalid: list[dict[str, Any]] = []

    def bad(name: str, envelope: Any, error: str, **extra: Any) -> None:
        invalid.append({"name": name, "manifest": envelope, "error": error, **extra})

    tampered = copy.deepcopy(base)
    tampered["body"]["size"] -= 1
    bad("body_changed_after_signing", tampered, "bad_signature")
    bad("signed_as_post", sign(DOMAIN_POST, base["body"], alice), "bad_signature")
    bad("signed_by_other_key", sign(DOMAIN_MANIFEST, base["body"], bob), "peer_mismatch")
    bad("unknown_field", resign(base, alice, replicas=3), "bad_manifest")
    bad("missing_chunks", resign(base, alice, chunks=_DROP), "bad_manifest")
    bad("file_id_too_short", resign(base, alice, file_id=FILE_ID[:-2]), "bad_manifest")
    bad("file_id_not_canonical", resign(base, alice, file_id=FILE_ID[:-1] + "B"), "bad_manifest")
    bad("empty_name", resign(base, alice, name=""), "bad_manifest")
    bad("name_dot_dot", resign(base, alice, name=".."), "bad_manifest")
    bad("name_with_slash", resign(base, alice, name="a/b.txt"), "bad_manifest")
    bad("name_with_backslash", resign(base, alice, name="a\\b.txt"), "bad_manifest")
    bad("name_with_newline", resign(base, alice, name="a\nb.txt"), "bad_manifest")
    bad("name_with_bidi_override", resign(base, alice, name="cod\u202etxt.exe"), "bad_manifest")
    bad("name_256_bytes", resign(base, alice, name="é" * 128), "bad_manifest")
    bad("mime_uppercase", resign(base, alice, mime="Text/Plain"), "bad_manifest")
    bad(
        "mime_with_parameter", resign(base, alice, mime="text/plain; charset=utf-8"), "bad_manifest"
    )
    bad("mime_no_subtype", resign(base, alice, mime="text"), "bad_manifest")
    bad("size_string", resign(base, alice, size=str(base["body"]["size"])), "bad_manifest")
    bad("size_negative", resign(base, alice, size=-1), "bad_manifest")
    bad("size_over_max", resign(base, alice, size=MAX_FILE_SIZE + 1), "bad_manifest")
    bad("size_one_chunk_short", resign(base, alice, size=2 * CHUNK_SIZE), "bad_manifest")
    bad("chunk_size_other", resign(base, alice, chunk_size=32768), "bad_manifest")
    bad(
        "chunk_count_too_many",
        resign(base, alice, chunks=[*chunks, digest_id(b"extra")]),
        "bad_manifest",
    )
    bad(
        "chunk_id_repeated",
        resign(base, alice, chunks=[chunks[0], chunks[0], chunks[2]]),
        "bad_manifest",
    )
    bad("chunk_id_hex", resign(base, alice, chunks=[*chunks[:2], "ab" * 32]), "bad_manifest")
    bad("created_at_bool", resign(base, alice, created_at=True), "bad_manifest")
    bad("author_not_peer_id", resign(base, alice, author="alice"), "bad_manifest")
    bad("author_other_peer", resign(base, alice, author=peer_of(bob)), "peer_mismatch")
    bad("created_in_future", resign(base, alice, created_at=NOW + 15_001), "not_yet_valid")
    bad("not_the_asked_id", base, "manifest_mismatch", expected_id=valid[2]["id"])
    envelope_extra = copy.deepcopy(base)
    envelope_extra["key"] = b64url_encode(FILE_KEY)
    bad("file_key_beside_envelope", envelope_extra, "bad_envelope")
    return {
        "description": "Manifests (domain swarm/manifest/v1); "
        "id = b64url(SHA-256('swarm/manifest/v1' + '\\n' + JCS(body))). "
        "Valid ones verify at `now` and have `id`; each file decrypts "
        "with chunks.json key_hex. Invalid ones fail with `error` (verified at `now`, with "
        "`expected_id` when given).",
        "now": NOW,
        "valid": valid,
        "invalid": invalid,
    }


def keywrap_vectors() -> dict[str, Any]:
    alice, bob = seeded_key("alice"), seeded_key("bob")
    recipient = X25519PrivateKey.from_private_bytes(x25519_seed("bob"))
    ephemeral_seed = hashlib.sha256(b"vector ephemeral").digest()
    ephemeral = X25519PrivateKey.from_private_bytes(ephemeral_seed)
    bob_id = peer_of(bob)
    wrapped = wrap_file_key(
        FILE_KEY,
        file_id=FILE_ID,
        recipient=bob_id,
        recipient_key=x25519_public(recipient),
        ephemeral=ephemeral,
    )

    def changed(**changes: Any) -> dict[str, Any]:
        out = copy.deepcopy(wrapped)
        out.update(changes)
        return out

    ct = bytearray(b64url_decode(wrapped["ct"], field="ct"))
    ct[0] ^= 1
    extra = changed()
    extra["sig"] = "x"
    missing = changed()
    del missing["epk"]
    invalid = [
        {
            "name": "for_another_peer",
            "wrapped": wrapped,
            "peer_id": peer_of(alice),
            "error": "wrong_recipient",
        },
        {
            "name": "to_rewritten",
            "wrapped": changed(to=peer_of(alice)),
            "peer_id": peer_of(alice),
            "error": "decrypt_failed",
        },
        {
            "name": "file_id_rewritten",
            "wrapped": changed(file_id=OTHER_FILE_ID),
            "error": "decrypt_failed",
        },
        {
            "name": "pinned_other_file",
            "wrapped": wrapped,
            "file_id": OTHER_FILE_ID,
            "error": "wrong_file",
        },
        {
            "name": "ct_flipped_bit",
            "wrapped": changed(ct=b64url_encode(bytes(ct))),
            "error": "decrypt_failed",
        },
        {
            "name": "epk_replaced",
            "wrapped": changed(epk=b64url_encode(x25519_public(recipient))),
            "error": "decrypt_failed",
        },
        {
            "name": "epk_small_order",
            "wrapped": changed(epk=b64url_encode(bytes(32))),
            "error": "bad_wrapped_key",
        },
        {
            "name": "epk_short",
            "wrapped": changed(epk=wrapped["epk"][:-2]),
            "error": "bad_wrapped_key",
        },
        {"name": "ct_short", "wrapped": changed(ct=wrapped["ct"][:-4]), "error": "bad_wrapped_key"},
        {"name": "unknown_version", "wrapped": changed(v=2), "error": "bad_wrapped_key"},
        {"name": "unknown_alg", "wrapped": changed(alg="rsa-oaep"), "error": "bad_wrapped_key"},
        {"name": "unknown_field", "wrapped": extra, "error": "bad_wrapped_key"},
        {"name": "missing_epk", "wrapped": missing, "error": "bad_wrapped_key"},
        {"name": "not_an_object", "wrapped": [wrapped], "error": "bad_wrapped_key"},
    ]
    announcement = make_key_announcement(bob, recipient, created_at=CREATED_AT)

    def ann(**changes: Any) -> dict[str, Any]:
        body = {**announcement["body"], **changes}
        return sign(DOMAIN_XKEY, body, bob)

    bad_announcements = [
        {
            "name": "signed_by_other_key",
            "announcement": sign(DOMAIN_XKEY, announcement["body"], alice),
            "error": "peer_mismatch",
        },
        {
            "name": "signed_as_post",
            "announcement": sign(DOMAIN_POST, announcement["body"], bob),
            "error": "bad_signature",
        },
        {
            "name": "small_order_key",
            "announcement": ann(x25519=b64url_encode(bytes(32))),
            "error": "bad_key",
        },
        {
            "name": "key_31_bytes",
            "announcement": ann(x25519=b64url_encode(b"\x09" * 31)),
            "error": "bad_key",
        },
        {"name": "unknown_field", "announcement": ann(expires_at=NOW), "error": "bad_body"},
        {
            "name": "created_in_future",
            "announcement": ann(created_at=NOW + 15_001),
            "error": "not_yet_valid",
        },
    ]
    return {
        "description": "File keys wrapped per recipient: okm = HKDF-SHA256(X25519(eph, rcpt), "
        "salt = epk || rcpt_pk, info = 'swarm/keywrap/v1', 44 bytes); AES-256-GCM with key "
        "okm[:32], nonce okm[32:], aad = 'swarm/keywrap/v1\\n' + file_id + '\\n' + to. "
        "X25519 keys are announced signed by the identity (domain swarm/xkey/v1). Unwrap each "
        "invalid case as `peer_id` (default recipient.peer_id), pinning `file_id` when given.",
        "now": NOW,
        "file_key_hex": FILE_KEY.hex(),
        "file_id": FILE_ID,
        "recipient": {
            "label": "bob",
            "peer_id": bob_id,
            "x25519_seed_hex": x25519_seed("bob").hex(),
            "x25519": b64url_encode(x25519_public(recipient)),
        },
        "ephemeral_seed_hex": ephemeral_seed.hex(),
        "wrapped": wrapped,
        "invalid": invalid,
        "announcement": announcement,
        "bad_announcements": bad_announcements,
        "small_order_keys_hex": SMALL_ORDER_KEYS,
    }
