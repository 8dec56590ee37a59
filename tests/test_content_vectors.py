"""The content vectors (chunks, manifests, wrapped keys, posts) hold for the Python side.

content_js.json was made by the browser modules in Node: Python verifies it and remakes
every object byte for byte from the same inputs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from peers.protocol.chunks import (
    CHUNK_SIZE,
    chunk_aad,
    chunk_nonce,
    decrypt_chunk,
    digest_id,
    encrypt_chunk,
    encrypt_file,
    parse_share_fragment,
    parse_share_hints,
    share_fragment,
)
from peers.protocol.encoding import peer_id_for_key
from peers.protocol.envelope import DOMAIN_MANIFEST
from peers.protocol.errors import ProtocolError
from peers.protocol.keywrap import (
    check_x25519_public,
    make_key_announcement,
    unwrap_file_key,
    verify_key_announcement,
    wrap_file_key,
    x25519_public,
)
from peers.protocol.manifest import decrypt_file, make_manifest, object_id, verify_manifest
from peers.protocol.postlog import (
    AuthorLog,
    ForkError,
    Head,
    next_post,
    parse_summary,
    reconcile,
    verify_log,
)
from peers.protocol.posts import verify_post

ROOT = Path(__file__).parent.parent
VECTORS = ROOT / "tests" / "vectors"


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


def pattern(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


def seeded(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


CHUNKS = load("chunks.json")
MANIFESTS = load("manifests.json")
KEYWRAP = load("keywrap.json")
POSTS = load("posts.json")
JS = load("content_js.json")
KEY = bytes.fromhex(CHUNKS["key_hex"])


# Chunks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CHUNKS["cases"], ids=lambda c: c["name"])
def test_chunk_vectors_encrypt_and_decrypt(case: dict[str, Any]) -> None:
    plain = bytes.fromhex(case["plaintext_hex"])
    index = case["index"]
    assert chunk_nonce(index).hex() == case["nonce_hex"]
    assert chunk_aad(CHUNKS["file_id"], index).hex() == case["aad_hex"]
    sealed = encrypt_chunk(KEY, CHUNKS["file_id"], index, plain)
    assert sealed.hex() == case["ciphertext_hex"]
    assert digest_id(sealed) == case["id"]
    assert decrypt_chunk(KEY, CHUNKS["file_id"], index, sealed) == plain


@pytest.mark.parametrize("case", CHUNKS["files"], ids=lambda c: c["name"])
def test_file_vectors_have_the_same_chunk_ids(case: dict[str, Any]) -> None:
    sealed = encrypt_file(pattern(case["size"]), key=KEY, file_id=CHUNKS["file_id"])
    assert sealed.chunk_ids == case["chunk_ids"]
    assert all(len(c.ciphertext) <= CHUNK_SIZE + 16 for c in sealed.chunks)


@pytest.mark.parametrize("case", CHUNKS["bad"], ids=lambda c: c["name"])
def test_bad_chunk_vectors_fail_with_their_code(case: dict[str, Any]) -> None:
    key = bytes.fromhex(case.get("key_hex", CHUNKS["key_hex"]))
    file_id = case.get("file_id", CHUNKS["file_id"])
    with pytest.raises(ProtocolError) as err:
        decrypt_chunk(key, file_id, case["index"], bytes.fromhex(case["ciphertext_hex"]))
    assert err.value.code == case["error"]


def test_share_fragment_vectors() -> None:
    assert share_fragment(KEY) == CHUNKS["share"]["fragment"]
    assert parse_share_fragment("#" + CHUNKS["share"]["fragment"]) == KEY
    for case in CHUNKS["bad_fragments"]:
        with pytest.raises(ProtocolError) as err:
            parse_share_fragment(case["fragment"])
        assert err.value.code == case["error"], case


@pytest.mark.parametrize("case", CHUNKS["share_hints"], ids=lambda c: c["name"])
def test_share_hints_vectors_parse_to_their_peer_ids_and_keep_the_key(case: dict[str, Any]) -> None:
    assert parse_share_hints("#" + case["fragment"]) == tuple(case["hints"])
    assert parse_share_fragment(case["fragment"]) == KEY


# Manifests -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", MANIFESTS["valid"], ids=lambda c: c["name"])
def test_valid_manifest_vectors_verify_and_decrypt(case: dict[str, Any]) -> None:
    manifest = verify_manifest(case["manifest"], now=MANIFESTS["now"], expected_id=case["id"])
    assert manifest.id == case["id"]
    sealed = encrypt_file(pattern(manifest.size), key=KEY, file_id=manifest.file_id)
    assert list(manifest.chunks) == sealed.chunk_ids
    plain = decrypt_file(manifest, KEY, [c.ciphertext for c in sealed.chunks])
    assert plain == pattern(manifest.size)


@pytest.mark.parametrize("case", MANIFESTS["invalid"], ids=lambda c: c["name"])
def test_invalid_manifest_vectors_fail_with_their_code(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as err:
        verify_manifest(case["manifest"], now=MANIFESTS["now"], expected_id=case.get("expected_id"))
    assert err.value.code == case["error"]


# Wrapped keys ----------------------------------------------------------------------------

RECIPIENT = X25519PrivateKey.from_private_bytes(
    bytes.fromhex(KEYWRAP["recipient"]["x25519_seed_hex"])
)


def test_wrapped_key_vector_is_remade_and_unwraps() -> None:
    ephemeral = X25519PrivateKey.from_private_bytes(bytes.fromhex(KEYWRAP["ephemeral_seed_hex"]))
    remade = wrap_file_key(
        bytes.fromhex(KEYWRAP["file_key_hex"]),
        file_id=KEYWRAP["file_id"],
        recipient=KEYWRAP["recipient"]["peer_id"],
        recipient_key=x25519_public(RECIPIENT),
        ephemeral=ephemeral,
    )
    assert remade == KEYWRAP["wrapped"]
    key = unwrap_file_key(
        KEYWRAP["wrapped"],
        private_key=RECIPIENT,
        peer_id=KEYWRAP["recipient"]["peer_id"],
        file_id=KEYWRAP["file_id"],
    )
    assert key.hex() == KEYWRAP["file_key_hex"]


@pytest.mark.parametrize("case", KEYWRAP["invalid"], ids=lambda c: c["name"])
def test_invalid_wrapped_key_vectors_fail_with_their_code(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as err:
        unwrap_file_key(
            case["wrapped"],
            private_key=RECIPIENT,
            peer_id=case.get("peer_id", KEYWRAP["recipient"]["peer_id"]),
            file_id=case.get("file_id"),
        )
    assert err.value.code == case["error"]


def test_key_announcement_vectors() -> None:
    announced = verify_key_announcement(KEYWRAP["announcement"], now=KEYWRAP["now"])
    assert announced.peer_id == KEYWRAP["recipient"]["peer_id"]
    assert announced.x25519 == x25519_public(RECIPIENT)
    remade = make_key_announcement(
        seeded("bob"), RECIPIENT, created_at=KEYWRAP["announcement"]["body"]["created_at"]
    )
    assert remade == KEYWRAP["announcement"]
    for case in KEYWRAP["bad_announcements"]:
        with pytest.raises(ProtocolError) as err:
            verify_key_announcement(case["announcement"], now=KEYWRAP["now"])
        assert err.value.code == case["error"], case["name"]


@pytest.mark.parametrize("raw_hex", KEYWRAP["small_order_keys_hex"])
def test_small_order_x25519_keys_are_refused(raw_hex: str) -> None:
    with pytest.raises(ProtocolError) as err:
        check_x25519_public(bytes.fromhex(raw_hex))
    assert err.value.code == "bad_key"


# Posts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", POSTS["invalid"], ids=lambda c: c["name"])
def test_invalid_post_vectors_fail_with_their_code(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as err:
        verify_post(case["entry"], now=POSTS["now"])
    assert err.value.code == case["error"]


@pytest.mark.parametrize("case", POSTS["valid_single"], ids=lambda c: c["name"])
def test_valid_single_post_vectors_verify(case: dict[str, Any]) -> None:
    assert verify_post(case["entry"], now=POSTS["now"]).hash == case["hash"]


@pytest.mark.parametrize("case", POSTS["logs"], ids=lambda c: c["name"])
def test_log_vectors(case: dict[str, Any]) -> None:
    if case["error"] is None:
        log = verify_log(case["entries"], now=POSTS["now"])
        assert log.head is not None
        if "head" in case:
            assert log.head == Head(**case["head"])
            shown = [
                {
                    "id": v.id,
                    "seq": v.seq,
                    "created_at": v.created_at,
                    "edited_at": v.edited_at,
                    "text": v.text,
                    "attachments": list(v.attachments),
                    "name": v.name,
                }
                for v in log.posts()
            ]
            assert shown == case["posts"]
        return
    with pytest.raises(ProtocolError) as err:
        verify_log(case["entries"], now=POSTS["now"])
    assert err.value.code == case["error"]
    if "fork" in case:
        assert isinstance(err.value, ForkError)
        assert err.value.fork.seq == case["fork"]["seq"]
        assert list(err.value.fork.hashes) == case["fork"]["hashes"]
        assert len(err.value.fork.evidence) == 2


def _logs() -> dict[str, AuthorLog]:
    by_name = {c["name"]: c for c in POSTS["logs"]}
    return {
        POSTS["authors"]["alice"]: verify_log(by_name["alice_full"]["entries"]),
        POSTS["authors"]["bob"]: verify_log(by_name["bob_full"]["entries"]),
    }


@pytest.mark.parametrize("case", POSTS["reconcile"], ids=lambda c: c["name"])
def test_reconcile_vectors(case: dict[str, Any]) -> None:
    result = reconcile(_logs(), parse_summary(case["theirs"]), limit=case["limit"])
    assert [verify_post(e).hash for e in result.send] == case["send"]
    forks = [{"author": f.author, "seq": f.seq, "hashes": list(f.hashes)} for f in result.forks]
    assert forks == case["forks"]
    assert result.want == case["want"]
    assert result.complete == case["complete"]


@pytest.mark.parametrize("case", POSTS["bad_summaries"], ids=lambda c: c["name"])
def test_bad_summary_vectors_are_refused(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_summary(case["summary"])
    assert err.value.code == "bad_sync"


# Made in JavaScript ----------------------------------------------------------------------


def test_js_vectors_are_what_the_node_script_writes() -> None:
    node = shutil.which("node")
    assert node, "node is required for the shared vectors"
    result = subprocess.run(
        [node, "scripts/content_vectors.mjs", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_js_manifest_verifies_and_python_remakes_it_byte_for_byte() -> None:
    info = JS["file"]
    key = bytes.fromhex(info["key_hex"])
    manifest = verify_manifest(JS["manifest"], now=JS["now"], expected_id=JS["manifest_id"])
    sealed = encrypt_file(pattern(info["size"]), key=key, file_id=info["file_id"])
    assert sealed.chunk_ids == info["chunk_ids"] == list(manifest.chunks)
    remade = make_manifest(
        seeded("bob"), sealed, name=info["name"], mime=info["mime"], created_at=info["created_at"]
    )
    assert remade == JS["manifest"]
    assert object_id(DOMAIN_MANIFEST, remade["body"]) == JS["manifest_id"]
    plain = decrypt_file(manifest, key, [c.ciphertext for c in sealed.chunks])
    assert plain == pattern(info["size"])


def test_js_wrapped_key_unwraps_in_python_and_is_remade() -> None:
    wrapped = JS["wrapped"]
    recipient = X25519PrivateKey.from_private_bytes(
        bytes.fromhex(wrapped["recipient_x25519_seed_hex"])
    )
    peer_id = peer_id_for_key(seeded("alice").public_key().public_bytes_raw())
    assert wrapped["object"]["to"] == peer_id
    key = unwrap_file_key(
        wrapped["object"], private_key=recipient, peer_id=peer_id, file_id=JS["file"]["file_id"]
    )
    assert key.hex() == JS["file"]["key_hex"]
    remade = wrap_file_key(
        key,
        file_id=JS["file"]["file_id"],
        recipient=peer_id,
        recipient_key=x25519_public(recipient),
        ephemeral=X25519PrivateKey.from_private_bytes(bytes.fromhex(wrapped["ephemeral_seed_hex"])),
    )
    assert remade == wrapped["object"]


def test_js_key_announcement_verifies_and_is_remade() -> None:
    announced = verify_key_announcement(JS["announcement"], now=JS["now"])
    bob_x = X25519PrivateKey.from_private_bytes(hashlib.sha256(b"bob/x25519").digest())
    assert announced.x25519 == x25519_public(bob_x)
    remade = make_key_announcement(seeded("bob"), bob_x, created_at=announced.created_at)
    assert remade == JS["announcement"]


def test_js_post_log_verifies_and_python_remakes_it() -> None:
    data = JS["log"]
    log = verify_log(data["entries"], now=JS["now"])
    assert [e.hash for e in log.entries] == data["hashes"]
    views = [
        {"id": v.id, "text": v.text, "edited_at": v.edited_at, "attachments": list(v.attachments)}
        for v in log.posts()
    ]
    assert views == data["posts"]
    assert JS["manifest_id"] in log.entries[1].attachments
    result = reconcile({log.author: log}, {log.author: Head(0, data["hashes"][0])})
    assert [e["body"]["seq"] for e in result.send] == data["reconcile_from_seq_0"]
    # Python's next_post gives the same entries for the same inputs (including the clamp of
    # created_at when the clock went back).
    bob = seeded("bob")
    mine = AuthorLog(log.author)
    for entry in data["entries"]:
        body = entry["body"]
        now = body["created_at"] if body["kind"] != "edit" else body["created_at"] - 99
        remade = next_post(
            mine,
            bob,
            now=now,
            kind=body["kind"],
            text=body["text"],
            target=body["target"],
            attachments=body["attachments"],
            name=body["name"],
        )
        assert remade == entry
        mine.append(verify_post(remade))
