"""The super-peer in the election of supernodes (peers/superpeer/supernodes.py), on a fake
clock: it publishes its advert as an eligible super-peer, keeps others' adverts through the
gossip check, refuses forged ones, and floods its live advert again for newcomers at most
every 5 s."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.errors import ProtocolError
from peers.protocol.supernode import TOPIC_SUPERNODE, LocalState, parse_advert
from peers.superpeer.supernodes import SuperPeerSupernodes
from shared import identity

T0 = 1_800_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def make(clock: Clock, published: list[tuple[str, object]]) -> SuperPeerSupernodes:
    key = Ed25519PrivateKey.generate()
    return SuperPeerSupernodes(
        identity.peer_id_of(key),
        key,
        "main",
        publish=lambda topic, data: published.append((topic, data)),
        local=lambda now: LocalState(uptime=10, up_kbps=0, conns=1, swarm=3, superpeer=True),
        clock=clock,
    )


def test_a_super_peer_advertises_itself_and_is_elected_by_those_who_hear_it() -> None:
    clock = Clock()
    sent: list[tuple[str, object]] = []
    sp = make(clock, sent)
    sp.tick()
    assert [topic for topic, _ in sent] == [TOPIC_SUPERNODE]
    advert = parse_advert(sent[0][1], now=clock.now, community="main")
    assert advert.superpeer
    assert advert.peer_id == sp.peer_id
    # Another super-peer hears it through its gossip check and elects both.
    other = make(clock, [])
    other.check(sent[0][1], clock.now)
    other.tick()
    assert set(other.elected()) == {sp.peer_id, other.peer_id}
    # Nothing new to say a second later: not sent again.
    clock.now += 1_000
    sp.tick()
    assert len(sent) == 1


def test_forged_or_replayed_adverts_are_refused_by_the_check() -> None:
    clock = Clock()
    sent: list[tuple[str, object]] = []
    sp = make(clock, sent)
    sp.tick()
    other = make(clock, [])
    envelope = sent[0][1]
    assert isinstance(envelope, dict)
    forged = {**envelope, "body": {**envelope["body"], "conns": 900}}
    with pytest.raises(ProtocolError) as bad:
        other.check(forged, clock.now)
    assert bad.value.code == "bad_signature"
    other.check(envelope, clock.now)
    with pytest.raises(ProtocolError) as again:
        other.check(envelope, clock.now)
    assert again.value.code == "replay"


def test_newcomers_get_the_live_advert_again_at_most_every_five_seconds() -> None:
    clock = Clock()
    sent: list[tuple[str, object]] = []
    sp = make(clock, sent)
    sp.peer_opened()
    assert sent == [], "nothing published yet: nothing to hand over"
    sp.tick()
    clock.now += 6_000
    sp.peer_opened()
    sp.peer_opened()
    assert len(sent) == 2
    assert sent[1][1] == sent[0][1], "the same signed advert"
    clock.now += 5_000
    sp.peer_opened()
    assert len(sent) == 3
    clock.now += 200_000  # expired: not handed over
    sp.peer_opened()
    assert len(sent) == 3
