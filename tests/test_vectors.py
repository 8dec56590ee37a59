"""The shared vectors in tests/vectors/ hold for the Python side (node --test checks JS)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.encoding import b64url_encode, peer_id_for_key
from peers.protocol.envelope import signing_input
from peers.protocol.errors import ProtocolError
from peers.protocol.keywrap import x25519_from_identity_seed, x25519_public
from peers.protocol.ticket import verify_ticket, verify_withdrawal

VECTORS = Path(__file__).parent / "vectors"
ROOT = Path(__file__).parent.parent


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


def test_vectors_are_what_the_generator_writes() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/make_vectors.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", load("keys.json")["keys"], ids=lambda c: c["label"])
def test_key_vectors(case: dict[str, str]) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(case["seed_hex"]))
    pk = key.public_key().public_bytes_raw()
    assert b64url_encode(pk) == case["pk"]
    assert peer_id_for_key(pk) == case["peer_id"]
    xkey = x25519_from_identity_seed(bytes.fromhex(case["seed_hex"]))
    assert b64url_encode(x25519_public(xkey)) == case["x25519"]


def test_identity_x25519_needs_a_32_byte_seed() -> None:
    with pytest.raises(ProtocolError) as info:
        x25519_from_identity_seed(bytes(31))
    assert info.value.code == "bad_key"


@pytest.mark.parametrize("case", load("canonical.json")["cases"])
def test_canonical_vectors(case: dict[str, Any]) -> None:
    assert signing_input(case["domain"], case["body"]).hex() == case["signing_input_hex"]


TICKETS = load("tickets.json")


@pytest.mark.parametrize("case", TICKETS["valid"], ids=lambda c: c["name"])
def test_valid_ticket_vectors_verify(case: dict[str, Any]) -> None:
    verify_ticket(case["ticket"], now=TICKETS["now"], community=TICKETS["community"])


@pytest.mark.parametrize("case", TICKETS["invalid"], ids=lambda c: c["name"])
def test_invalid_ticket_vectors_fail_with_their_code(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as err:
        verify_ticket(case["ticket"], now=TICKETS["now"], community=TICKETS["community"])
    assert err.value.code == case["error"]


@pytest.mark.parametrize("case", TICKETS["withdrawals"]["valid"], ids=lambda c: c["name"])
def test_valid_withdrawal_vectors_verify(case: dict[str, Any]) -> None:
    w = verify_withdrawal(case["withdrawal"], community=TICKETS["community"])
    assert (w.peer_id, w.nonce) == (case["withdrawal"]["body"]["peer_id"], "bm9uY2UtMDAx")


@pytest.mark.parametrize("case", TICKETS["withdrawals"]["invalid"], ids=lambda c: c["name"])
def test_invalid_withdrawal_vectors_fail_with_their_code(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as err:
        verify_withdrawal(case["withdrawal"], community=TICKETS["community"])
    assert err.value.code == case["error"]
