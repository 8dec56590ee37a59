"""Capsule format and verification (peers/protocol/capsule.py), with explicit `now` values,
plus the shared vectors in tests/vectors/capsules.json (node --test checks the browser side)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from peers.protocol.capsule import (
    CAPSULE_TTL_MS,
    EXCLUDED,
    MAX_PEERS,
    TrustedKey,
    capsule_tickets,
    kid_for,
    make_capsule,
    parse_trusted_keys,
    select_tickets,
    verify_capsule,
)
from peers.protocol.encoding import b64url_encode
from peers.protocol.errors import ProtocolError
from tests.support.keys import peer_id, seeded_key, ticket

VECTORS = json.loads((Path(__file__).parent / "vectors" / "capsules.json").read_text())
NOW = 1_900_000_000_000
SIGNER = seeded_key("capsule-unit")
PK = b64url_encode(SIGNER.public_key().public_bytes_raw())
TRUST = [TrustedKey(PK)]


def code_of(envelope: object, now: int = NOW, trusted: list[TrustedKey] = TRUST, **kw: Any) -> str:
    with pytest.raises(ProtocolError) as err:
        verify_capsule(envelope, trusted=trusted, now=now, **kw)
    return err.value.code


def tickets(n: int, now: int = NOW, community: str = "main") -> list[dict[str, Any]]:
    return [ticket(seeded_key(f"cap-peer-{i}"), community, now - i) for i in range(n)]


def test_capsule_round_trip_keeps_its_tickets_and_names_the_key() -> None:
    peers = tickets(3)
    env = make_capsule(SIGNER, community="main", now=NOW, peers=peers)
    capsule = verify_capsule(env, trusted=TRUST, now=NOW + 1, community="main")
    assert capsule.peers == tuple(peers)
    assert capsule.expires_at == NOW + CAPSULE_TTL_MS
    assert capsule.kid == kid_for(SIGNER.public_key().public_bytes_raw())
    assert set(env["body"]) == {"community", "issued_at", "expires_at", "peers"}


def test_capsule_is_valid_until_the_last_millisecond_then_expired() -> None:
    env = make_capsule(SIGNER, community="main", now=NOW, peers=[])
    verify_capsule(env, trusted=TRUST, now=NOW + CAPSULE_TTL_MS - 1)
    assert code_of(env, now=NOW + CAPSULE_TTL_MS) == "expired"


def test_unknown_key_is_untrusted_even_with_a_good_signature() -> None:
    env = make_capsule(seeded_key("stranger"), community="main", now=NOW, peers=[])
    assert code_of(env) == "untrusted_key"
    assert code_of(env, trusted=[]) == "untrusted_key"


def test_retired_key_is_trusted_for_capsules_it_signed_before_retirement_until_they_expire() -> (
    None
):
    retired_at = NOW
    old = TrustedKey(
        PK, created_at=NOW - 60_000, retired_at=retired_at, expires_at=retired_at + CAPSULE_TTL_MS
    )
    before = make_capsule(SIGNER, community="main", now=retired_at - 1000, peers=[])
    after = make_capsule(SIGNER, community="main", now=retired_at + 1, peers=[])
    verify_capsule(before, trusted=[old], now=retired_at + CAPSULE_TTL_MS - 1001)
    assert code_of(before, now=retired_at + CAPSULE_TTL_MS - 1000, trusted=[old]) == "expired"
    assert code_of(after, now=retired_at + 2, trusted=[old]) == "untrusted_key"
    assert code_of(before, now=retired_at + CAPSULE_TTL_MS, trusted=[old]) == "untrusted_key"


def test_capsule_issued_before_its_key_existed_is_untrusted() -> None:
    env = make_capsule(SIGNER, community="main", now=NOW - 1, peers=[])
    assert code_of(env, trusted=[TrustedKey(PK, created_at=NOW)]) == "untrusted_key"


def test_make_capsule_refuses_more_than_100_peers() -> None:
    with pytest.raises(ProtocolError) as err:
        make_capsule(SIGNER, community="main", now=NOW, peers=[{}] * (MAX_PEERS + 1))
    assert err.value.code == "bad_body"


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ([], "bad_body"),
        ({"keys": [{"pk": "!!"}]}, "bad_body"),
        ({"keys": [{"pk": b64url_encode(bytes(31))}]}, "bad_body"),
        ({"keys": [{"pk": PK, "created_at": 1.5}]}, "bad_body"),
        ({"keys": ["x"]}, "bad_body"),
    ],
)
def test_bad_keys_documents_are_refused(document: object, code: str) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_trusted_keys(document)
    assert err.value.code == code


def test_select_tickets_drops_forged_expired_and_excluded_and_counts_them() -> None:
    good = tickets(3)
    forged = copy.deepcopy(good[0])
    forged["body"]["nonce"] = "Zm9yZ2VkLTAwMQ"
    expired = ticket(seeded_key("cap-old"), "main", NOW - 200_000)
    blocked_key = seeded_key("cap-blocked")
    blocked = ticket(blocked_key, "main", NOW)
    selection = select_tickets(
        [*good, forged, expired, blocked, "junk"],
        community="main",
        now=NOW,
        exclude=lambda t: t.peer_id == peer_id(blocked_key),
    )
    assert [t.envelope for t in selection.tickets] == good
    assert selection.dropped == {"bad_envelope": 1, "bad_signature": 1, EXCLUDED: 1, "expired": 1}


def test_select_tickets_keeps_the_newest_ticket_per_peer_and_at_most_the_limit() -> None:
    key = seeded_key("cap-dup")
    old, new = ticket(key, "main", NOW - 5000), ticket(key, "main", NOW - 10)
    many = tickets(120, now=NOW - 100)
    selection = select_tickets([old, *many, new], community="main", now=NOW)
    assert len(selection.tickets) == MAX_PEERS
    assert selection.tickets[0].envelope == new
    assert selection.duplicates == 1
    assert selection.over_limit == 21
    issued = [t.issued_at for t in selection.tickets]
    assert issued == sorted(issued, reverse=True)


# --- shared vectors -------------------------------------------------------------------------

TRUSTED = parse_trusted_keys(VECTORS["keys"])


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_valid_capsule_vectors_verify_and_give_their_peers(case: dict[str, Any]) -> None:
    capsule = verify_capsule(
        case["capsule"], trusted=TRUSTED, now=VECTORS["now"], community=VECTORS["community"]
    )
    usable = capsule_tickets(capsule, now=VECTORS["now"])
    assert [t.peer_id for t in usable.tickets] == case["peer_ids"]
    assert dict(usable.dropped) == case["dropped"]


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["name"])
def test_invalid_capsule_vectors_fail_with_their_code(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as err:
        verify_capsule(
            case["capsule"],
            trusted=TRUSTED,
            now=case.get("now", VECTORS["now"]),
            community=VECTORS["community"],
        )
    assert err.value.code == case["error"]


@pytest.mark.parametrize("case", VECTORS["selection"], ids=lambda c: c["name"])
def test_selection_vectors(case: dict[str, Any]) -> None:
    selection = select_tickets(
        case["candidates"], community=case["community"], now=case["now"], limit=case["limit"]
    )
    assert [t.peer_id for t in selection.tickets] == case["peer_ids"]
    assert [t.nonce for t in selection.tickets] == case["nonces"]
    assert dict(selection.dropped) == case["dropped"]
    assert selection.duplicates == case["duplicates"]
    assert selection.over_limit == case["over_limit"]


def test_vector_keys_document_lists_kids_of_its_keys() -> None:
    for entry, key in zip(VECTORS["keys"]["keys"], TRUSTED, strict=True):
        assert entry["kid"] == key.kid
