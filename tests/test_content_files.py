"""Encrypted chunks, manifests and wrapped keys: round trips, tampering, limits."""

from __future__ import annotations

import copy
import json
import random

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from peers.protocol.chunks import (
    CHUNK_SIZE,
    MAX_CHUNKS,
    EncryptedFile,
    decrypt_chunk,
    digest_id,
    encrypt_chunk,
    encrypt_file,
    new_file_id,
    new_file_key,
    parse_share_fragment,
    share_fragment,
)
from peers.protocol.encoding import b64url_decode, b64url_encode, peer_id_for_key
from peers.protocol.envelope import DOMAIN_MANIFEST, sign
from peers.protocol.errors import ProtocolError
from peers.protocol.keywrap import (
    make_key_announcement,
    unwrap_file_key,
    verify_key_announcement,
    wrap_file_key,
    x25519_public,
)
from peers.protocol.manifest import (
    DEFAULT_MIME,
    Manifest,
    decrypt_file,
    make_manifest,
    normalize_mime,
    open_chunk,
    verify_manifest,
)

NOW = 1_800_000_000_000
AUTHOR = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
FRAME_LIMIT = 256 * 1024


def data_of(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def share(data: bytes, name: str = "file.bin") -> tuple[Manifest, EncryptedFile]:
    sealed = encrypt_file(data)
    envelope = make_manifest(AUTHOR, sealed, name=name, mime=DEFAULT_MIME, created_at=NOW)
    return verify_manifest(envelope, now=NOW), sealed


SHARED = share(data_of(2 * CHUNK_SIZE + 5, seed=7))


def code_of(call: object) -> str:
    assert callable(call)
    with pytest.raises(ProtocolError) as err:
        call()
    return err.value.code


@pytest.mark.parametrize(
    ("size", "chunks"),
    [(0, 0), (1, 1), (CHUNK_SIZE - 1, 1), (CHUNK_SIZE, 1), (3 * CHUNK_SIZE + 17, 4)],
)
def test_files_of_every_shape_round_trip(size: int, chunks: int) -> None:
    data = data_of(size)
    manifest, sealed = share(data)
    assert len(manifest.chunks) == chunks
    if chunks:
        last = sealed.chunks[-1].ciphertext
        assert len(last) == size - (chunks - 1) * CHUNK_SIZE + 16
        assert len(last) == manifest.ciphertext_length(chunks - 1)
    assert decrypt_file(manifest, sealed.key, [c.ciphertext for c in sealed.chunks]) == data


@settings(max_examples=40, deadline=None)
@given(size=st.integers(0, 3 * CHUNK_SIZE), seed=st.integers(0, 2**32))
def test_any_file_round_trips(size: int, seed: int) -> None:
    data = data_of(size, seed)
    manifest, sealed = share(data)
    assert decrypt_file(manifest, sealed.key, [c.ciphertext for c in sealed.chunks]) == data


@settings(max_examples=60, deadline=None)
@given(position=st.integers(0, CHUNK_SIZE + 15), bit=st.integers(0, 7))
def test_any_altered_ciphertext_byte_is_refused(position: int, bit: int) -> None:
    manifest, sealed = SHARED
    chunk = bytearray(sealed.chunks[0].ciphertext)
    chunk[position] ^= 1 << bit
    # A receiver checks the id first: the holder sent wrong bytes.
    assert code_of(lambda: open_chunk(manifest, sealed.key, 0, bytes(chunk))) == "chunk_mismatch"
    # And the AEAD alone refuses it too.
    assert (
        code_of(lambda: decrypt_chunk(sealed.key, sealed.file_id, 0, bytes(chunk)))
        == "decrypt_failed"
    )


def test_a_chunk_at_another_index_does_not_open() -> None:
    manifest, sealed = SHARED
    first = sealed.chunks[0].ciphertext
    assert code_of(lambda: decrypt_chunk(sealed.key, sealed.file_id, 1, first)) == "decrypt_failed"
    # Served for the wrong position, it fails the id check before any decryption.
    assert code_of(lambda: open_chunk(manifest, sealed.key, 1, first)) == "chunk_mismatch"


def test_a_chunk_of_another_file_under_the_same_key_does_not_open() -> None:
    _, sealed = SHARED
    other = new_file_id()
    first = sealed.chunks[0].ciphertext
    assert code_of(lambda: decrypt_chunk(sealed.key, other, 0, first)) == "decrypt_failed"


@settings(max_examples=30, deadline=None)
@given(position=st.integers(0, 31), bit=st.integers(0, 7))
def test_any_altered_key_bit_fails_to_decrypt(position: int, bit: int) -> None:
    manifest, sealed = SHARED
    key = bytearray(sealed.key)
    key[position] ^= 1 << bit
    chunk = sealed.chunks[1].ciphertext
    assert code_of(lambda: open_chunk(manifest, bytes(key), 1, chunk)) == "decrypt_failed"


def test_malformed_keys_and_indexes_have_their_codes() -> None:
    manifest, sealed = SHARED
    chunk = sealed.chunks[0].ciphertext
    assert code_of(lambda: open_chunk(manifest, sealed.key[:31], 0, chunk)) == "bad_key"
    assert code_of(lambda: open_chunk(manifest, sealed.key, 3, chunk)) == "bad_chunk"
    assert code_of(lambda: open_chunk(manifest, sealed.key, -1, chunk)) == "bad_chunk"
    assert code_of(lambda: encrypt_chunk(sealed.key, sealed.file_id, 0, bytes(CHUNK_SIZE + 1))) == (
        "bad_chunk"
    )
    assert code_of(lambda: decrypt_file(manifest, sealed.key, [chunk])) == "bad_chunk"


def test_chunk_data_that_is_not_bytes_is_bad_chunk() -> None:
    manifest, sealed = SHARED
    not_bytes: object = sealed.chunks[0].ciphertext.hex()
    assert code_of(lambda: open_chunk(manifest, sealed.key, 0, not_bytes)) == "bad_chunk"
    assert code_of(lambda: decrypt_chunk(sealed.key, sealed.file_id, 0, not_bytes)) == "bad_chunk"


def test_a_manifest_whose_size_disagrees_with_its_last_chunk_is_caught_on_open() -> None:
    sealed = encrypt_file(data_of(CHUNK_SIZE + 100))
    lying = EncryptedFile(
        file_id=sealed.file_id, key=sealed.key, size=CHUNK_SIZE + 99, chunks=sealed.chunks
    )
    envelope = make_manifest(AUTHOR, lying, name="x", mime=DEFAULT_MIME, created_at=NOW)
    manifest = verify_manifest(envelope)
    last = sealed.chunks[1].ciphertext
    assert code_of(lambda: open_chunk(manifest, sealed.key, 1, last)) == "bad_chunk"


MANIFEST_CODES = {"bad_envelope", "bad_signature", "bad_manifest", "peer_mismatch"}


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_altered_manifest_byte_is_refused(data: st.DataObject) -> None:
    manifest, _ = SHARED
    text = bytearray(json.dumps(manifest.envelope, separators=(",", ":")).encode())
    position = data.draw(st.integers(0, len(text) - 1))
    replacement = data.draw(st.integers(0, 255).filter(lambda b: b != text[position]))
    text[position] = replacement
    try:
        altered = json.loads(text)
    except ValueError:
        return  # not JSON any more: refused by the frame parser
    if altered == manifest.envelope:
        return  # an equivalent spelling (e.g. an escape) of the same object
    with pytest.raises(ProtocolError) as err:
        verify_manifest(altered)
    assert err.value.code in MANIFEST_CODES


@settings(max_examples=64, deadline=None)
@given(position=st.integers(0, 63), bit=st.integers(0, 7))
def test_any_altered_signature_bit_is_bad_signature(position: int, bit: int) -> None:
    manifest, _ = SHARED
    envelope = copy.deepcopy(manifest.envelope)
    sig = bytearray(b64url_decode(envelope["sig"], field="sig"))
    sig[position] ^= 1 << bit
    envelope["sig"] = b64url_encode(bytes(sig))
    assert code_of(lambda: verify_manifest(envelope)) == "bad_signature"


def test_the_largest_manifest_fits_one_frame() -> None:
    chunk_ids = [digest_id(i.to_bytes(4, "big")) for i in range(MAX_CHUNKS)]
    body = {
        "file_id": new_file_id(),
        "name": "\U0001f600" * 63 + "abc",  # 255 UTF-8 bytes
        "mime": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "size": MAX_CHUNKS * CHUNK_SIZE,
        "chunk_size": CHUNK_SIZE,
        "chunks": chunk_ids,
        "created_at": NOW,
        "author": peer_id_for_key(AUTHOR.public_key().public_bytes_raw()),
    }
    envelope = sign(DOMAIN_MANIFEST, body, AUTHOR)
    manifest = verify_manifest(envelope)
    assert manifest.size == 256 * 1024 * 1024
    frame = msgpack.packb({"t": "manifest", "id": manifest.id, "manifest": envelope})
    assert len(frame) < FRAME_LIMIT - 8 * 1024
    assert len(json.dumps(envelope, ensure_ascii=False).encode()) < FRAME_LIMIT - 8 * 1024
    too_big = {**body, "size": body["size"] + 1, "chunks": [*chunk_ids, digest_id(b"x")]}
    assert code_of(lambda: verify_manifest(sign(DOMAIN_MANIFEST, too_big, AUTHOR))) == (
        "bad_manifest"
    )


def test_make_manifest_refuses_what_would_not_verify() -> None:
    sealed = encrypt_file(b"abc")
    for name, mime in [("", "text/plain"), ("a/b", "text/plain"), ("ok", "Text/Plain")]:
        with pytest.raises(ProtocolError) as err:
            make_manifest(AUTHOR, sealed, name=name, mime=mime, created_at=NOW)
        assert err.value.code == "bad_manifest"


def test_mime_from_a_browser_is_normalized() -> None:
    assert normalize_mime("") == DEFAULT_MIME
    assert normalize_mime(None) == DEFAULT_MIME
    assert normalize_mime("Text/HTML; charset=UTF-8") == "text/html"
    assert normalize_mime("image/svg+xml") == "image/svg+xml"
    assert normalize_mime("not a type") == DEFAULT_MIME


def test_the_share_fragment_carries_the_key() -> None:
    key = new_file_key()
    fragment = share_fragment(key)
    assert fragment.startswith("k=")
    assert len(fragment) == 45
    assert parse_share_fragment(fragment) == key
    assert parse_share_fragment("#" + fragment) == key
    assert code_of(lambda: parse_share_fragment("##" + fragment)) == "bad_key"
    assert code_of(lambda: parse_share_fragment(None)) == "bad_key"


# Wrapped keys ----------------------------------------------------------------------------

BOB = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
BOB_ID = peer_id_for_key(BOB.public_key().public_bytes_raw())
BOB_X = X25519PrivateKey.from_private_bytes(bytes(range(2, 34)))
CAROL_X = X25519PrivateKey.from_private_bytes(bytes(range(3, 35)))
CAROL_ID = peer_id_for_key(bytes(32))
WRAPPED = wrap_file_key(
    new_file_key(), file_id=new_file_id(), recipient=BOB_ID, recipient_key=x25519_public(BOB_X)
)


@settings(max_examples=25, deadline=None)
@given(key=st.binary(min_size=32, max_size=32))
def test_any_file_key_wraps_and_unwraps(key: bytes) -> None:
    file_id = new_file_id()
    announced = verify_key_announcement(make_key_announcement(BOB, BOB_X, created_at=NOW))
    wrapped = wrap_file_key(
        key, file_id=file_id, recipient=announced.peer_id, recipient_key=announced.x25519
    )
    assert unwrap_file_key(wrapped, private_key=BOB_X, peer_id=BOB_ID, file_id=file_id) == key
    # A fresh ephemeral key each time: two wraps of one key differ.
    again = wrap_file_key(
        key, file_id=file_id, recipient=BOB_ID, recipient_key=x25519_public(BOB_X)
    )
    assert again["epk"] != wrapped["epk"]
    assert again["ct"] != wrapped["ct"]


def test_a_wrapped_key_does_not_open_for_another_recipient() -> None:
    file_key, file_id = new_file_key(), new_file_id()
    wrapped = wrap_file_key(
        file_key, file_id=file_id, recipient=BOB_ID, recipient_key=x25519_public(BOB_X)
    )
    unwrap = unwrap_file_key
    assert code_of(lambda: unwrap(wrapped, private_key=CAROL_X, peer_id=CAROL_ID)) == (
        "wrong_recipient"
    )
    # Carol claiming to be the recipient still cannot open it.
    assert code_of(lambda: unwrap(wrapped, private_key=CAROL_X, peer_id=BOB_ID)) == (
        "decrypt_failed"
    )
    # Nor can Bob's key open a copy relabelled for Carol.
    relabelled = {**wrapped, "to": CAROL_ID}
    assert code_of(lambda: unwrap(relabelled, private_key=BOB_X, peer_id=CAROL_ID)) == (
        "decrypt_failed"
    )


@settings(max_examples=48, deadline=None)
@given(position=st.integers(0, 47), bit=st.integers(0, 7))
def test_any_altered_wrapped_key_bit_fails(position: int, bit: int) -> None:
    wrapped = WRAPPED
    ct = bytearray(b64url_decode(wrapped["ct"], field="ct"))
    ct[position] ^= 1 << bit
    altered = {**wrapped, "ct": b64url_encode(bytes(ct))}
    code = code_of(lambda: unwrap_file_key(altered, private_key=BOB_X, peer_id=BOB_ID))
    assert code == "decrypt_failed"
