"""Signal tokens: the shared vectors and the rules of peers/protocol/signal_token.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from peers.protocol.encoding import b64url_encode
from peers.protocol.envelope import DOMAIN_SIGNAL_TOKEN, signing_input
from peers.protocol.errors import ProtocolError
from peers.protocol.signal_token import (
    MAX_TOKEN_LENGTH,
    make_signal_token,
    parse_signal_token,
    verify_signal_token,
)
from tests.support.keys import peer_id, seeded_key

VECTORS = json.loads((Path(__file__).parent / "vectors" / "signal_tokens.json").read_text())
NOW = VECTORS["now"]


def _verify(case: dict[str, Any]) -> Any:
    return verify_signal_token(
        case["token"],
        peer_id=case["peer_id"],
        now=NOW,
        max_age_ms=VECTORS["max_age_ms"],
        skew_ms=VECTORS["skew_ms"],
    )


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_valid_vectors_verify(case: dict[str, Any]) -> None:
    proof = _verify(case)
    assert proof.peer_id == case["peer_id"]
    assert proof.issued_at == case["issued_at"]


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["name"])
def test_invalid_vectors_fail_with_their_code(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as err:
        _verify(case)
    assert err.value.code == case["error"]


def test_signing_input_is_the_envelope_rule_for_the_token_domain() -> None:
    alice = VECTORS["valid"][0]
    body = {"peer_id": alice["peer_id"], "issued_at": alice["issued_at"]}
    assert signing_input(DOMAIN_SIGNAL_TOKEN, body).hex() == VECTORS["signing_input_hex"]


def test_made_token_round_trips_and_fits_a_url_query() -> None:
    key = seeded_key("token-round-trip")
    token = make_signal_token(key, now=NOW)
    assert len(token) <= MAX_TOKEN_LENGTH
    # Only URL-unreserved characters: PeerJS puts the token into the URL unescaped.
    assert all(c.isalnum() or c in "-_." for c in token)
    issued_at, public_key, _ = parse_signal_token(token)
    assert issued_at == NOW
    assert b64url_encode(public_key) == b64url_encode(key.public_key().public_bytes_raw())
    assert verify_signal_token(token, peer_id=peer_id(key), now=NOW).peer_id == peer_id(key)


def test_max_age_and_skew_are_parameters() -> None:
    key = seeded_key("token-window")
    token = make_signal_token(key, now=NOW)
    verify_signal_token(token, peer_id=peer_id(key), now=NOW + 999, max_age_ms=1000)
    with pytest.raises(ProtocolError) as err:
        verify_signal_token(token, peer_id=peer_id(key), now=NOW + 1000, max_age_ms=1000)
    assert err.value.code == "expired"
    with pytest.raises(ProtocolError) as err:
        verify_signal_token(token, peer_id=peer_id(key), now=NOW - 2, skew_ms=1)
    assert err.value.code == "not_yet_valid"


def test_token_of_one_id_is_refused_for_another() -> None:
    alice, bob = seeded_key("token-alice"), seeded_key("token-bob")
    with pytest.raises(ProtocolError) as err:
        verify_signal_token(make_signal_token(alice, now=NOW), peer_id=peer_id(bob), now=NOW)
    assert err.value.code == "peer_mismatch"
