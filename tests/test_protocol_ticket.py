"""Ticket verification rules, each at an explicit (fake) clock."""

from __future__ import annotations

import pytest

from peers.protocol.errors import ProtocolError
from peers.protocol.ticket import make_ticket, verify_ticket
from tests.support.keys import peer_id, seeded_key

NOW = 1_700_000_000_000
ALICE = seeded_key("alice")
BOB = seeded_key("bob")


def code_of(envelope: object, now: int = NOW, community: str | None = "main") -> str:
    with pytest.raises(ProtocolError) as err:
        verify_ticket(envelope, now=now, community=community)
    return err.value.code


def test_fresh_ticket_verifies_with_its_fields() -> None:
    env = make_ticket(ALICE, community="main", now=NOW, signal=["wss://s.example/"], caps=["relay"])
    ticket = verify_ticket(env, now=NOW, community="main")
    assert ticket.peer_id == peer_id(ALICE)
    assert ticket.expires_at - ticket.issued_at == 180_000
    assert ticket.signal == ("wss://s.example/",)
    assert ticket.caps == ("relay",)
    assert ticket.envelope is env


def test_ticket_is_valid_until_the_millisecond_before_expiry() -> None:
    env = make_ticket(ALICE, community="main", now=NOW, ttl_ms=1000)
    verify_ticket(env, now=NOW + 999, community="main")
    assert code_of(env, now=NOW + 1000) == "expired"


def test_clock_skew_allows_15_seconds_ahead_and_no_more() -> None:
    ahead = make_ticket(ALICE, community="main", now=NOW + 15_000)
    verify_ticket(ahead, now=NOW, community="main")
    too_far = make_ticket(ALICE, community="main", now=NOW + 15_001)
    assert code_of(too_far) == "not_yet_valid"


def test_lifetime_over_600_seconds_is_refused() -> None:
    verify_ticket(make_ticket(ALICE, community="main", now=NOW, ttl_ms=600_000), now=NOW)
    assert code_of(make_ticket(ALICE, community="main", now=NOW, ttl_ms=600_001)) == "ttl_too_long"


def test_far_future_expiry_is_refused() -> None:
    env = make_ticket(ALICE, community="main", now=NOW, ttl_ms=10**12)
    assert code_of(env) == "ttl_too_long"


def test_peer_id_of_another_key_is_peer_mismatch() -> None:
    env = make_ticket(BOB, community="main", now=NOW, peer_id=peer_id(ALICE))
    assert code_of(env) == "peer_mismatch"


def test_ticket_for_another_community_is_wrong_community() -> None:
    env = make_ticket(ALICE, community="other", now=NOW)
    assert code_of(env) == "wrong_community"
    verify_ticket(env, now=NOW, community=None)  # no pin: any community


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"nonce": "short"}, "bad_body"),
        ({"nonce": "has space in it"}, "bad_body"),
        ({"community": "Upper"}, "bad_body"),
        ({"community": "-dash-first"}, "bad_body"),
        ({"community": "x" * 64}, "bad_body"),
        ({"signal": ["javascript:alert(1)"]}, "bad_body"),
        ({"signal": ["wss://a/"] * 5}, "bad_body"),
        ({"caps": ["UPPER"]}, "bad_body"),
        ({"ttl_ms": 0}, "bad_body"),
        ({"ttl_ms": -5}, "bad_body"),
    ],
)
def test_bad_body_fields_are_refused(kw: dict[str, object], code: str) -> None:
    env = make_ticket(ALICE, now=NOW, **{"community": "main", **kw})  # type: ignore[arg-type]
    assert code_of(env, community=None) == code


@pytest.mark.parametrize(
    "kw", [{"nonce": "abcdefgh\n"}, {"community": "main\n"}, {"caps": ["relay\n"]}]
)
def test_a_trailing_newline_is_not_accepted_where_the_browser_refuses_it(
    kw: dict[str, object],
) -> None:
    env = make_ticket(ALICE, now=NOW, **{"community": "main", **kw})  # type: ignore[arg-type]
    assert code_of(env, community=None) == "bad_body"
