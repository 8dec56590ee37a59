"""The signed envelope: canonical JSON, domain separation, strict parsing."""

from __future__ import annotations

import copy

import pytest

from peers.protocol.encoding import b64url_decode, b64url_encode, is_key_bound_id, peer_id_for_key
from peers.protocol.envelope import (
    DOMAIN_POST,
    DOMAIN_TICKET,
    canonical,
    check_envelope_size,
    sign,
    verify,
)
from peers.protocol.errors import BAD_ENVELOPE, ProtocolError
from tests.support.keys import seeded_key

KEY = seeded_key("envelope")


def test_signed_body_verifies_and_returns_key_and_body() -> None:
    env = sign(DOMAIN_POST, {"text": "hi", "n": 1}, KEY)
    verified = verify(env, DOMAIN_POST)
    assert verified.body == {"text": "hi", "n": 1}
    assert verified.public_key == KEY.public_key().public_bytes_raw()
    assert verified.peer_id == peer_id_for_key(verified.public_key)


def test_signature_for_one_domain_is_refused_for_another() -> None:
    env = sign(DOMAIN_POST, {"text": "hi"}, KEY)
    with pytest.raises(ProtocolError) as err:
        verify(env, DOMAIN_TICKET)
    assert err.value.code == "bad_signature"


def test_key_order_does_not_change_the_signature() -> None:
    a = sign(DOMAIN_POST, {"a": 1, "b": [1, 2]}, KEY)
    b = sign(DOMAIN_POST, {"b": [1, 2], "a": 1}, KEY)
    assert a["sig"] == b["sig"]


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda e: e.update(v=2), "bad_envelope"),
        (lambda e: e.update(v=True), "bad_envelope"),
        (lambda e: e.update(alg="ES256"), "bad_envelope"),
        (lambda e: e.update(pk=e["pk"][:-1]), "bad_envelope"),
        (lambda e: e.update(pk=e["pk"].replace(e["pk"][0], "=")), "bad_envelope"),
        (lambda e: e.update(sig=b64url_encode(bytes(63))), "bad_envelope"),
        (lambda e: e.update(sig=b64url_encode(bytes(64))), "bad_signature"),
        (lambda e: e.update(body=[1]), "bad_envelope"),
        (lambda e: e.update(extra=1), "bad_envelope"),
        (lambda e: e.pop("alg"), "bad_envelope"),
        (lambda e: e["body"].update(text="changed"), "bad_signature"),
        (lambda e: e["body"].update(f=1.5), "bad_envelope"),
        (lambda e: e["body"].update(n=2**53), "bad_envelope"),
    ],
)
def test_each_malformed_envelope_gets_its_stable_code(mutate: object, code: str) -> None:
    env = copy.deepcopy(sign(DOMAIN_POST, {"text": "hi"}, KEY))
    mutate(env)  # type: ignore[operator]
    with pytest.raises(ProtocolError) as err:
        verify(env, DOMAIN_POST)
    assert err.value.code == code


@pytest.mark.parametrize("value", [None, "", 3, [], "null"])
def test_non_object_envelope_is_bad_envelope(value: object) -> None:
    with pytest.raises(ProtocolError) as err:
        verify(value, DOMAIN_POST)
    assert err.value.code == "bad_envelope"


def test_deeply_nested_body_is_refused_not_recursed_forever() -> None:
    body: dict[str, object] = {}
    node = body
    for _ in range(40):
        child: dict[str, object] = {}
        node["x"] = child
        node = child
    with pytest.raises(ProtocolError) as err:
        canonical(body)
    assert err.value.code == "bad_envelope"


def test_base64url_is_strict() -> None:
    assert b64url_decode("AAE", field="x") == b"\x00\x01"
    for bad in ("AAE=", "AA+E", "A", "AAF"):  # padding, alphabet, length, stray low bits
        with pytest.raises(ProtocolError):
            b64url_decode(bad, field="x")


def test_peer_id_is_33_chars_and_key_bound() -> None:
    pid = peer_id_for_key(KEY.public_key().public_bytes_raw())
    assert len(pid) == 33
    assert pid.startswith("p")
    assert is_key_bound_id(pid)
    assert pid != peer_id_for_key(seeded_key("other").public_key().public_bytes_raw())


def test_integral_json_floats_parse_as_ints_like_in_a_browser() -> None:
    from peers.protocol.encoding import parse_json

    assert parse_json('{"a": 1.0, "b": 65536.0, "c": 1e3, "d": 1.5}') == {
        "a": 1,
        "b": 65536,
        "c": 1000,
        "d": 1.5,
    }
    assert type(parse_json("2.0")) is int


def test_peer_id_and_base64url_refuse_a_trailing_newline() -> None:
    pid = peer_id_for_key(KEY.public_key().public_bytes_raw())
    assert not is_key_bound_id(pid + "\n")
    with pytest.raises(ProtocolError):
        b64url_decode("AAE\n", field="x")


def test_envelope_size_check_passes_within_the_limit_and_names_the_size_beyond() -> None:
    envelope = {"body": {"text": "x" * 40}, "sig": "s"}
    size = len(b'{"body":{"text":"' + b"x" * 40 + b'"},"sig":"s"}')
    assert check_envelope_size(envelope, size, "thing_too_large", "a thing") is envelope
    with pytest.raises(ProtocolError) as info:
        check_envelope_size(envelope, size - 1, "thing_too_large", "a thing")
    assert info.value.code == "thing_too_large"
    assert str(info.value) == f"a thing is at most {size - 1} B, not {size}"


@pytest.mark.parametrize("value", [None, [], "text", 7, {"n": float("nan")}, {"b": b"x"}])
def test_envelope_size_check_refuses_what_is_no_canonical_json_object(value: object) -> None:
    with pytest.raises(ProtocolError) as info:
        check_envelope_size(value, 4096, "thing_too_large", "a thing")
    assert info.value.code == BAD_ENVELOPE
