"""BinaryPack and PeerJS chunking match the npm packages byte for byte.

The vectors are written by scripts/binarypack_vectors.mjs from peerjs-js-binarypack 2.1.0 and
peerjs 1.5.5; each case is checked both ways: Python's pack gives JavaScript's bytes, and
Python's unpack of JavaScript's bytes gives the value.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from peers.peerjs import binarypack
from peers.peerjs.errors import BinaryPackError, PeerJSError
from peers.peerjs.serialization import (
    CHUNKED_MTU,
    BinaryCodec,
    CloseRequested,
    Data,
    JsonCodec,
    RawCodec,
    codec_for,
)

ROOT = Path(__file__).resolve().parent.parent
VECTORS = json.loads((ROOT / "tests" / "vectors" / "binarypack.json").read_text())


def pattern(length: int) -> bytes:
    """The generator's deterministic bytes: byte i = (i * 7 + (i >> 8) + 3) & 0xff."""
    return bytes((i * 7 + (i >> 8) + 3) & 0xFF for i in range(length))


def untag(value: Any) -> Any:
    if isinstance(value, list):
        return [untag(v) for v in value]
    if isinstance(value, dict):
        if "$bytes" in value:
            return bytes.fromhex(value["$bytes"])
        if "$pattern" in value:
            return pattern(value["$pattern"])
        if "$repeat" in value:
            char, count = value["$repeat"]
            return char * count
        if "$undefined" in value:
            return None
        return {k: untag(v) for k, v in value.items()}
    return value


def test_vectors_come_from_the_pinned_packages() -> None:
    assert VECTORS["packages"] == {"peerjs-js-binarypack": "2.1.0", "peerjs": "1.5.5"}
    assert VECTORS["chunked_mtu"] == CHUNKED_MTU == 16300


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_vectors_are_what_the_npm_packages_produce() -> None:
    result = subprocess.run(
        ["node", "scripts/binarypack_vectors.mjs", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", VECTORS["values"], ids=lambda c: c["name"])
def test_python_pack_gives_the_javascript_bytes(case: dict[str, Any]) -> None:
    packed = binarypack.pack(untag(case["value"]))
    if "packed" in case:
        assert packed.hex() == case["packed"]
    else:
        assert len(packed) == case["packed_length"]
        assert hashlib.sha256(packed).hexdigest() == case["packed_sha256"]


@pytest.mark.parametrize("case", VECTORS["values"], ids=lambda c: c["name"])
def test_python_unpack_of_javascript_bytes_gives_the_value(case: dict[str, Any]) -> None:
    value = untag(case["value"])
    # Big cases carry a hash of JavaScript's bytes: Python's own bytes were proven equal above.
    data = bytes.fromhex(case["packed"]) if "packed" in case else binarypack.pack(value)
    assert binarypack.unpack(data) == value


def test_javascript_reads_some_int64_wrongly_and_python_exactly() -> None:
    # The JavaScript unpacker goes through a uint64 double: negative int64 lose precision.
    lossy = {
        c["name"]: c
        for c in VECTORS["values"]
        if "unpacked" in c and c["name"] != "undefined packs as nil"
    }
    assert set(lossy) == {"int64 negative", "int64 min safe"}
    for case in lossy.values():
        assert binarypack.unpack(bytes.fromhex(case["packed"])) == case["value"]
        assert case["unpacked"] != case["value"]


@pytest.mark.parametrize("case", VECTORS["unpack_only"], ids=lambda c: c["name"])
def test_python_unpacks_forms_javascript_never_packs(case: dict[str, Any]) -> None:
    value = binarypack.unpack(bytes.fromhex(case["packed"]))
    assert value == untag(case["value"])


def test_float32_unpacks_to_a_float() -> None:
    assert binarypack.unpack(bytes.fromhex("ca3fc00000")) == 1.5
    assert isinstance(binarypack.unpack(bytes.fromhex("ca3fc00000")), float)


@pytest.mark.parametrize("case", VECTORS["js_float_deviations"], ids=lambda c: str(c["value"]))
def test_doubles_javascript_misencodes_are_packed_exactly(case: dict[str, Any]) -> None:
    packed = binarypack.pack(case["value"])
    assert packed != bytes.fromhex(case["packed"])
    assert binarypack.unpack(packed) == case["value"]
    # Reading JavaScript's wrong bytes gives what JavaScript itself reads from them.
    assert math.isclose(binarypack.unpack(bytes.fromhex(case["packed"])), case["unpacked"])


def test_integral_floats_pack_as_integers_like_javascript_numbers() -> None:
    assert binarypack.pack(3.0) == binarypack.pack(3) == b"\x03"
    assert binarypack.pack(-0.0) == b"\x00"
    assert binarypack.pack(70000.0) == binarypack.pack(70000)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (math.inf, "out_of_range"),
        (math.nan, "out_of_range"),
        (2**64, "out_of_range"),
        (-(2**63) - 1, "out_of_range"),
        ({1: "x"}, "bad_map_key"),
        (object(), "unsupported_type"),
        ({1, 2}, "unsupported_type"),
        ("\ud800", "bad_utf8"),
    ],
)
def test_values_without_a_binarypack_form_are_refused(value: Any, code: str) -> None:
    with pytest.raises(BinaryPackError) as info:
        binarypack.pack(value)
    assert info.value.code == code


def test_uint64_range_uses_cf() -> None:
    assert binarypack.pack(2**63).hex() == "cf8000000000000000"
    assert binarypack.unpack(binarypack.pack(2**64 - 1)) == 2**64 - 1


def test_tuples_and_bytearrays_pack_as_arrays_and_raw() -> None:
    assert binarypack.pack((1, 2)) == binarypack.pack([1, 2])
    assert binarypack.pack(bytearray(b"ab")) == binarypack.pack(b"ab") == b"\xa2ab"


@pytest.mark.parametrize(
    ("hexdata", "code"),
    [
        ("", "truncated"),
        ("cd01", "truncated"),
        ("b5616263", "truncated"),
        ("da0010", "truncated"),
        ("93 01 02".replace(" ", ""), "truncated"),
        ("dd ffffffff 01".replace(" ", ""), "truncated"),
        ("c1", "unknown_type_byte"),
        ("c4", "unknown_type_byte"),
        ("d4", "unknown_type_byte"),
        ("0101", "trailing_bytes"),
        ("b2c328", "bad_utf8"),
        ("81 91 01 02".replace(" ", ""), "bad_map_key"),
        ("91" * 70 + "c0", "too_deep"),
    ],
)
def test_malformed_bytes_get_a_stable_code(hexdata: str, code: str) -> None:
    with pytest.raises(BinaryPackError) as info:
        binarypack.unpack(bytes.fromhex(hexdata))
    assert info.value.code == code


@pytest.mark.parametrize("case", VECTORS["chunked"], ids=lambda c: c["name"])
def test_binary_codec_chunks_like_peerjs(case: dict[str, Any]) -> None:
    value = untag(case["value"])
    message_id = case["message_id"] or 1
    frames = BinaryCodec(first_message_id=message_id).encode(value)
    assert len(frames) == case["frame_count"]
    if "frames" in case:
        assert [bytes(f).hex() for f in frames] == case["frames"]  # type: ignore[arg-type]
    else:
        assert [hashlib.sha256(f).hexdigest() for f in frames] == case["frame_sha256"]  # type: ignore[arg-type]


@pytest.mark.parametrize("case", VECTORS["chunked"], ids=lambda c: c["name"])
def test_binary_codec_reassembles_peerjs_chunks_in_any_order(case: dict[str, Any]) -> None:
    value = untag(case["value"])
    if "frames" in case:
        frames: list[bytes] = [bytes.fromhex(f) for f in case["frames"]]
    else:  # proven equal to JavaScript's frames by the test above
        frames = BinaryCodec(first_message_id=case["message_id"]).encode(value)  # type: ignore[assignment]
    receiver = BinaryCodec()
    got: list[Any] = []
    # Unordered channels (PeerJS's default reliable=false) may deliver chunks out of order.
    for frame in [*frames[1::2], *frames[0::2]]:
        got.extend(receiver.decode(frame))
    assert got == [Data(value)]


def test_chunks_of_two_messages_may_interleave() -> None:
    sender, receiver = BinaryCodec(), BinaryCodec()
    a, b = sender.encode(pattern(40000)), sender.encode(pattern(20000)[::-1])
    got: list[Any] = []
    for pair in zip(a, b + [b""] * (len(a) - len(b)), strict=True):
        for frame in pair:
            if frame:
                got.extend(receiver.decode(frame))
    assert got == [Data(pattern(20000)[::-1]), Data(pattern(40000))]


def _chunk(message_id: Any, n: Any, total: Any, data: Any) -> bytes:
    return binarypack.pack({"__peerData": message_id, "n": n, "data": data, "total": total})


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([_chunk(1, 5, 2, b"x")], "bad_frame"),
        ([_chunk(1, 0, 0, b"x")], "bad_frame"),
        ([_chunk(1, 0, 2, "text")], "bad_frame"),
        ([_chunk(1.5, 0, 2, b"x")], "bad_frame"),
        ([_chunk(1, 0, 2, b"x"), _chunk(1, 0, 2, b"x")], "bad_frame"),
        ([_chunk(1, 0, 2, b"x"), _chunk(1, 1, 3, b"x")], "bad_frame"),
        ([_chunk(1, 0, 3, b"x" * 600), _chunk(1, 1, 3, b"x" * 600)], "message_too_big"),
        ([_chunk(i, 0, 2, b"x") for i in range(1, 5)], "message_too_big"),
        (["text frame"], "bad_frame"),
        ([b"\xc1"], "unknown_type_byte"),
    ],
)
def test_bad_chunks_are_refused_with_a_code(frames: list[Any], code: str) -> None:
    receiver = BinaryCodec(max_message_size=1000, max_partial_messages=3)
    for frame in frames[:-1]:
        receiver.decode(frame)
    with pytest.raises(PeerJSError) as info:
        receiver.decode(frames[-1])
    assert info.value.code == code


def test_close_request_is_recognised_on_binary_and_json() -> None:
    for codec in (BinaryCodec(), JsonCodec()):
        (frame,) = codec.encode_close()
        assert codec.decode(frame) == [CloseRequested()]
    assert binarypack.unpack(BinaryCodec().encode_close()[0]) == {"__peerData": {"type": "close"}}


@pytest.mark.parametrize("case", VECTORS["json"], ids=lambda c: c["text"][:20])
def test_json_codec_writes_what_json_stringify_writes(case: dict[str, Any]) -> None:
    (frame,) = JsonCodec().encode(case["value"])
    assert frame == case["text"].encode("utf-8")
    assert JsonCodec().decode(frame) == [Data(case["value"])]


def test_json_codec_refuses_messages_peerjs_would_refuse() -> None:
    assert len(JsonCodec().encode("x" * (CHUNKED_MTU - 3))[0]) == CHUNKED_MTU - 1
    with pytest.raises(PeerJSError) as info:
        JsonCodec().encode("x" * (CHUNKED_MTU - 2))
    assert info.value.code == "message_too_big"
    with pytest.raises(PeerJSError) as info:
        JsonCodec().decode(b"{not json")
    assert info.value.code == "bad_frame"


def test_raw_codec_passes_frames_through() -> None:
    assert RawCodec().encode(b"\x00\x01") == [b"\x00\x01"]
    assert RawCodec().encode("text") == ["text"]
    assert RawCodec().decode("text") == [Data("text")]
    with pytest.raises(PeerJSError):
        RawCodec().encode({"a": 1})


def test_unknown_serialization_is_refused() -> None:
    assert codec_for("binary-utf8").serialization == "binary"
    with pytest.raises(PeerJSError) as info:
        codec_for("MsgPack")
    assert info.value.code == "unknown_serialization"
