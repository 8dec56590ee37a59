"""The DHT (docs/protocol.md "DHT"): ids, records and contacts against tests/vectors/dht.json
(which tests/js/dht.test.js checks for the browser), and fake-clock unit tests of the core
(peers/protocol/dht.py): bucket eviction, lookups, timeouts, bad answers, limits."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.dht import Dht, DhtDone, DhtDrop, DhtSend
from peers.protocol.dht_records import (
    DOMAIN_PROVIDE,
    DhtLimits,
    Record,
    bucket_index,
    distance,
    make_provider_record,
    node_id,
    provider_key,
    verify_contact,
    verify_record,
)
from peers.protocol.dht_table import RecordStore, RoutingTable
from peers.protocol.encoding import b64url_encode, peer_id_for_key
from peers.protocol.envelope import JsonObject
from peers.protocol.errors import ProtocolError
from peers.protocol.ticket import make_ticket
from peers.protocol.wire import (
    DhtFindNode,
    DhtFindValue,
    DhtNodes,
    DhtStore,
    DhtStored,
    DhtValue,
    decode_frame,
    encode_frame,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "dht.json").read_text())
NOW = VECTORS["now"]
KEYS = {
    label: Ed25519PrivateKey.from_private_bytes(bytes.fromhex(k["seed_hex"]))
    for label, k in VECTORS["keys"].items()
}


# --- vectors ---


def test_node_ids_distances_buckets_and_provider_keys() -> None:
    ids = VECTORS["ids"]
    for case in ids["node_ids"]:
        assert node_id(case["peer_id"]).hex() == case["node_id"]
    for case in ids["distances"]:
        a, b = bytes.fromhex(case["a"]), bytes.fromhex(case["b"])
        assert distance(a, b).to_bytes(32, "big").hex() == case["distance"]
        assert bucket_index(a, b) == case["bucket"]
        assert bucket_index(b, a) == case["bucket"]
    for case in ids["provider_keys"]:
        assert provider_key(case["manifest"]).hex() == case["key"]
    with pytest.raises(ProtocolError) as error:
        node_id("alice")
    assert error.value.code == "bad_body"


def test_closest_contacts_in_a_routing_table() -> None:
    case = VECTORS["ids"]["closest"]
    table = RoutingTable(node_id(case["own"]), k=20, spare=8)
    for peer_id in case["peers"]:
        table.heard(_contact(peer_id))
    got = [c.peer_id for c in table.closest(bytes.fromhex(case["target"]), 20)]
    assert got == case["closest_20"]


def _contact(peer_id: str) -> Any:
    from peers.protocol.dht_records import Contact

    return Contact(peer_id, node_id(peer_id), {}, NOW, NOW + 1)


def test_valid_records_verify_and_are_made_again_byte_for_byte() -> None:
    for case in VECTORS["records"]["valid"]:
        record = verify_record(case["kind"], case["envelope"], now=NOW, community="main")
        assert record.key.hex() == case["key"], case["name"]
        if case["kind"] == "provider":
            make = case["make"]
            again = make_provider_record(
                KEYS[make["signer"]],
                community="main",
                manifest=make["manifest"],
                chunks=make["chunks"],
                now=make["now"],
                ttl_ms=make["ttl_ms"],
            )
            assert again == case["envelope"], case["name"]


@pytest.mark.parametrize("case", VECTORS["records"]["invalid"], ids=lambda c: c["name"])
def test_invalid_records_are_refused_with_their_code(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as error:
        verify_record(case["kind"], case["envelope"], now=case["now"], community="main")
    assert error.value.code == case["error"]


@pytest.mark.parametrize("case", VECTORS["contacts"], ids=lambda c: c["name"])
def test_contacts(case: dict[str, Any]) -> None:
    if case["error"] is None:
        contact = verify_contact(case["envelope"], now=case["now"], community="main")
        assert contact.peer_id == case["envelope"]["body"]["peer_id"]
        assert contact.id == node_id(contact.peer_id)
    else:
        with pytest.raises(ProtocolError) as error:
            verify_contact(case["envelope"], now=case["now"], community="main")
        assert error.value.code == case["error"]


# --- the core on a fake clock ---


class Peer:
    def __init__(self, label: str, *, limits: DhtLimits | None = None, now: int = NOW) -> None:
        self.key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())
        self.peer_id = peer_id_for_key(self.key.public_key().public_bytes_raw())
        self.ticket = make_ticket(self.key, community="main", now=now, ttl_ms=600_000)
        self.dht = Dht(
            peer_id=self.peer_id,
            community="main",
            private_key=self.key,
            ticket=self.ticket,
            limits=limits,
            now=now,
        )


class Net:
    """Peers that deliver each other's frames at once (through the codec); ``down`` peers
    receive nothing."""

    def __init__(self, peers: list[Peer]) -> None:
        self.peers = {p.peer_id: p for p in peers}
        self.down: set[str] = set()
        self.done: list[DhtDone] = []
        self.drops: list[tuple[str, DhtDrop]] = []
        self.frames = 0

    def pump(self, now: int) -> None:
        moved = True
        while moved:
            moved = False
            for peer in list(self.peers.values()):
                for action in peer.dht.take_actions():
                    moved = True
                    if isinstance(action, DhtSend):
                        self.frames += 1
                        frame = decode_frame(encode_frame(action.frame))
                        if action.peer_id not in self.down:
                            target = self.peers[action.peer_id]
                            target.dht.receive(peer.peer_id, frame, now)  # type: ignore[arg-type]
                    elif isinstance(action, DhtDone):
                        self.done.append(action)
                    else:
                        self.drops.append((peer.peer_id, action))


def network(n: int, *, limits: DhtLimits | None = None) -> tuple[Net, list[Peer]]:
    peers = [Peer(f"net-{i}", limits=limits) for i in range(n)]
    net = Net(peers)
    for i, peer in enumerate(peers[1:], 1):
        peer.dht.seen(peers[i - 1].ticket, NOW)
        peer.dht.find_node(peer.dht.id, NOW)
        net.pump(NOW)
    return net, peers


def test_lookups_converge_on_a_small_swarm_and_find_peers_and_providers() -> None:
    net, peers = network(40)
    for peer in peers:
        peer.dht.set_ticket(peer.ticket, NOW + 10)
    net.pump(NOW + 10)
    net.done.clear()
    for i in range(0, 40, 3):
        peers[i].dht.find_peer(peers[(i * 7 + 5) % 40].peer_id, NOW + 20)
    net.pump(NOW + 20)
    assert net.done
    assert all(d.ok and d.kind == "peer" for d in net.done)
    for done, i in zip(net.done, range(0, 40, 3), strict=True):
        assert done.records[0].peer_id == peers[(i * 7 + 5) % 40].peer_id
        assert done.hops is not None
        assert done.hops <= 3
    manifest = b64url_encode(hashlib.sha256(b"file").digest())
    peers[3].dht.provide(manifest, 7, NOW + 30)
    net.pump(NOW + 30)
    net.done.clear()
    peers[30].dht.find_providers(manifest, NOW + 40)
    net.pump(NOW + 40)
    (done,) = net.done
    assert done.ok
    assert [(r.peer_id, r.chunks) for r in done.records] == [(peers[3].peer_id, 7)]
    # A find_node lookup converges on the k contacts closest to the target, nearest first.
    net.done.clear()
    target = hashlib.sha256(b"anywhere").digest()
    peers[0].dht.find_node(target, NOW + 50)
    net.pump(NOW + 50)
    (done,) = net.done
    everyone = sorted(peers[1:], key=lambda p: distance(p.dht.id, target))
    assert [t["body"]["peer_id"] for t in done.contacts] == [p.peer_id for p in everyone[:20]]
    assert not any(d.violation for _, d in net.drops)


def test_a_lookup_with_no_record_ends_not_found_and_one_with_dead_contacts_times_out() -> None:
    net, peers = network(10)
    net.done.clear()
    missing = b64url_encode(hashlib.sha256(b"nobody has it").digest())
    peers[0].dht.find_providers(missing, NOW + 1)
    net.pump(NOW + 1)
    assert [(d.ok, d.code) for d in net.done] == [(False, "not_found")]
    net.done.clear()
    net.down = {p.peer_id for p in peers[1:]}
    peers[0].dht.find_providers(missing, NOW + 2)
    net.pump(NOW + 2)
    assert net.done == []
    dht = peers[0].dht
    assert dht.next_deadline(NOW + 2) == NOW + 2 + 5_000
    before = len(dht.table)
    dht.tick(NOW + 2 + 5_000)
    net.pump(NOW + 2 + 5_000)
    # Each dead contact failed once: without spares they stay until a second failure.
    assert len(dht.table) == before
    for _ in range(20):
        if net.done:
            break
        at = dht.next_deadline(NOW)
        dht.tick(at)
        net.pump(at)
    assert [(d.ok, d.code) for d in net.done] == [(False, "not_found")]
    assert dht.stats.timeouts >= before
    dht.find_node(dht.id, NOW + 20_000)
    net.pump(NOW + 20_000)
    dht.tick(NOW + 25_000)
    net.pump(NOW + 25_000)
    assert len(dht.table) < before  # a second failure drops them


def test_a_lookup_stops_at_its_deadline() -> None:
    limits = DhtLimits(request_timeout_ms=60_000, lookup_timeout_ms=30_000)
    net, peers = network(5, limits=limits)
    net.down = {p.peer_id for p in peers[1:]}
    net.done.clear()
    peers[0].dht.find_peer(peers[3].peer_id, NOW)
    net.pump(NOW)
    peers[0].dht.tick(NOW + 29_999)
    net.pump(NOW + 29_999)
    assert net.done == []
    peers[0].dht.tick(NOW + 30_000)
    net.pump(NOW + 30_000)
    assert [(d.ok, d.code) for d in net.done] == [(False, "timeout")]


def test_unreachable_fails_requests_at_once() -> None:
    a, b = Peer("u-a"), Peer("u-b")
    a.dht.seen(b.ticket, NOW)
    a.dht.find_peer(b.peer_id, NOW)
    (send,) = a.dht.take_actions()
    assert isinstance(send, DhtSend)
    assert send.peer_id == b.peer_id
    assert send.ticket == b.ticket
    a.dht.unreachable(b.peer_id, NOW + 1)
    actions = a.dht.take_actions()
    assert [type(x) for x in actions] == [DhtDrop, DhtDone]
    assert actions[0].code == "unreachable"
    assert not actions[0].violation


def _bucket_mates(own: bytes, index: int, count: int) -> list[Peer]:
    """Peers whose ids fall in bucket ``index`` of ``own``."""
    out: list[Peer] = []
    i = 0
    while len(out) < count:
        peer = Peer(f"mate-{index}-{i}")
        i += 1
        if bucket_index(own, peer.dht.id) == index:
            out.append(peer)
    return out


def test_a_full_bucket_checks_its_least_recently_seen_contact_before_evicting_it() -> None:
    limits = DhtLimits(k=2, spare=1)
    me = Peer("eviction", limits=limits)
    first, second, third = _bucket_mates(me.dht.id, 255, 3)
    for peer in (first, second):
        assert me.dht.seen(peer.ticket, NOW)
    assert me.dht.take_actions() == []
    # The bucket is full: the newcomer waits as a spare, the oldest is asked if it is there.
    me.dht.seen(third.ticket, NOW + 1)
    (probe,) = me.dht.take_actions()
    assert isinstance(probe, DhtSend)
    assert isinstance(probe.frame, DhtFindNode)
    assert probe.peer_id == first.peer_id
    assert probe.frame.target == me.dht.id
    # It answers: it stays (now the most recently seen); the newcomer stays a spare.
    first.dht.receive(me.peer_id, probe.frame, NOW + 2)
    (answer,) = [a for a in first.dht.take_actions() if isinstance(a, DhtSend)]
    me.dht.receive(first.peer_id, answer.frame, NOW + 3)
    assert [c.peer_id for c in me.dht.table.buckets[255]] == [second.peer_id, first.peer_id]
    # Another newcomer: now the second is asked, and does not answer: evicted for the spare.
    me.dht.seen(third.ticket, NOW + 4)
    (probe,) = [a for a in me.dht.take_actions() if isinstance(a, DhtSend)]
    assert probe.peer_id == second.peer_id
    me.dht.tick(NOW + 4 + 5_000)
    assert [c.peer_id for c in me.dht.table.buckets[255]] == [first.peer_id, third.peer_id]
    assert len(me.dht.table) == 2


def _request(sender: Peer, frame_type: type, now: int = NOW, **fields: Any) -> Any:
    return frame_type(id=fields.pop("id", 1), ticket=fields.pop("ticket", sender.ticket), **fields)


def test_answers_carry_contacts_and_records_and_requests_put_the_sender_in_the_table() -> None:
    a, b, c = Peer("ans-a"), Peer("ans-b"), Peer("ans-c")
    a.dht.seen(c.ticket, NOW)
    a.dht.receive(b.peer_id, _request(b, DhtFindNode, target=c.dht.id), NOW)
    (send,) = a.dht.take_actions()
    assert isinstance(send.frame, DhtNodes)
    assert send.ticket is None
    assert send.frame.nodes == (c.ticket,)
    assert send.frame.ticket == a.ticket
    assert a.dht.table.get(b.peer_id) is not None
    # Asked for c's peer record: c's live ticket from the table, no contacts.
    a.dht.receive(b.peer_id, _request(b, DhtFindValue, id=2, kind="peer", key=c.dht.id), NOW)
    (send,) = a.dht.take_actions()
    assert isinstance(send.frame, DhtValue)
    assert (send.frame.records, send.frame.nodes) == ((c.ticket,), ())
    # Its own record: its ticket.
    a.dht.receive(b.peer_id, _request(b, DhtFindValue, id=3, kind="peer", key=a.dht.id), NOW)
    (send,) = a.dht.take_actions()
    assert send.frame.records == (a.ticket,)
    # Once c's ticket expired it is no peer record, but still a contact.
    later = NOW + 600_000
    a.dht.receive(b.peer_id, _request(b, DhtFindValue, id=4, kind="peer", key=c.dht.id), later)
    (send,) = [x for x in a.dht.take_actions() if isinstance(x, DhtSend)]
    assert send.frame.records == ()
    assert c.ticket in send.frame.nodes


def test_bad_answers_are_dropped_and_blamed() -> None:
    a, b, c = Peer("bad-a"), Peer("bad-b"), Peer("bad-c")
    a.dht.seen(b.ticket, NOW)
    a.dht.find_peer(c.peer_id, NOW)
    (send,) = a.dht.take_actions()
    forged = copy.deepcopy(c.ticket)
    forged["body"]["nonce"] = "forgedforged"
    other = make_ticket(c.key, community="other", now=NOW)
    wrong = make_ticket(b.key, community="main", now=NOW)  # a valid ticket, but not c's record
    provider = make_provider_record(
        c.key, community="main", manifest=b64url_encode(bytes(32)), chunks=1, now=NOW
    )
    answer = DhtValue(
        id=send.frame.id, ticket=b.ticket, records=(forged, wrong, provider), nodes=(forged, other)
    )
    a.dht.receive(b.peer_id, answer, NOW + 1)
    actions = a.dht.take_actions()
    drops = [(x.code, x.violation) for x in actions if isinstance(x, DhtDrop)]
    assert drops == [
        ("bad_signature", True),
        ("wrong_key", True),
        ("bad_signature", True),
        ("bad_signature", True),
        ("wrong_community", True),
    ]
    (done,) = [x for x in actions if isinstance(x, DhtDone)]
    assert (done.ok, done.code, done.messages) == (False, "not_found", 1)
    # A peer caught lying leaves the table.
    assert a.dht.table.get(b.peer_id) is None
    # An answer to nothing, an answer from another peer's ticket, a sender's bad ticket.
    a.dht.receive(b.peer_id, answer, NOW + 2)
    a.dht.receive(c.peer_id, DhtNodes(id=9, ticket=b.ticket, nodes=()), NOW + 2)
    a.dht.receive(b.peer_id, DhtNodes(id=9, ticket=forged, nodes=()), NOW + 2)
    a.dht.receive(b.peer_id, DhtNodes(id=9, ticket={"v": 1}, nodes=()), NOW + 2)
    codes = [(x.code, x.violation) for x in a.dht.take_actions() if isinstance(x, DhtDrop)]
    assert codes == [
        ("unexpected_frame", True),
        ("peer_mismatch", True),
        ("bad_signature", True),
        ("bad_envelope", True),
    ]
    # A wrong answer type for the lookup.
    a.dht.seen(b.ticket, NOW + 3)
    a.dht.find_node(c.dht.id, NOW + 3)
    (send,) = a.dht.take_actions()
    a.dht.receive(b.peer_id, DhtStored(id=send.frame.id, ticket=b.ticket, codes=()), NOW + 4)
    codes = [(x.code, x.violation) for x in a.dht.take_actions() if isinstance(x, DhtDrop)]
    assert codes == [("unexpected_frame", True)]
    assert a.dht.table.get(b.peer_id) is None


def test_a_value_lookup_asks_on_past_the_k_closest_while_they_have_no_record() -> None:
    limits = DhtLimits(k=2, value_window=3)
    a, target = Peer("window-a", limits=limits), Peer("window-target")
    t = int.from_bytes(target.dht.id, "big")
    x, y, z = sorted(
        (Peer(f"window-{i}") for i in range(3)), key=lambda p: int.from_bytes(p.dht.id, "big") ^ t
    )
    a.dht.seen(x.ticket, NOW)
    a.dht.seen(y.ticket, NOW)
    a.dht.find_peer(target.peer_id, NOW)
    asked = [s for s in a.dht.take_actions() if isinstance(s, DhtSend)]
    assert {s.peer_id for s in asked} == {x.peer_id, y.peer_id}
    # Both answer with no record and z, farther than both: past the k = 2 closest.
    later: list[DhtSend] = []
    for send in asked:
        o = x if send.peer_id == x.peer_id else y
        answer = DhtValue(id=send.frame.id, ticket=o.ticket, records=(), nodes=(z.ticket,))
        a.dht.receive(o.peer_id, answer, NOW + 1)
        later += [s for s in a.dht.take_actions() if isinstance(s, DhtSend)]
    assert [s.peer_id for s in later] == [z.peer_id]
    answer = DhtValue(id=later[0].frame.id, ticket=z.ticket, records=(), nodes=())
    a.dht.receive(z.peer_id, answer, NOW + 2)
    (done,) = [x for x in a.dht.take_actions() if isinstance(x, DhtDone)]
    assert (done.ok, done.code, done.messages) == (False, "not_found", 3)


def _eclipse(paths: int) -> DhtDone:
    """A scripted eclipse: ``a`` knows an honest contact and a colluder; colluders answer
    first, with the two colluders closest to the target (no record); the honest contact names
    the record's holder (farther than the colluders). The lookup's done action."""
    a = Peer(f"eclipse-a-{paths}", limits=DhtLimits(k=2, alpha=2, value_window=2, paths=paths))
    target = Peer("eclipse-target")
    t = int.from_bytes(target.dht.id, "big")
    others = sorted(
        (Peer(f"eclipse-{i}") for i in range(8)), key=lambda p: int.from_bytes(p.dht.id, "big") ^ t
    )
    c1, c2, holder, honest, colluder = others[:5]
    colluders = {c1.peer_id, c2.peer_id, colluder.peer_id}
    by_id = {p.peer_id: p for p in others}
    a.dht.seen(honest.ticket, NOW)
    a.dht.seen(colluder.ticket, NOW)
    a.dht.find_peer(target.peer_id, NOW)
    for round_ in range(1, 10):
        actions = a.dht.take_actions()
        done = [x for x in actions if isinstance(x, DhtDone)]
        if done:
            return done[0]
        sends = sorted(
            (x for x in actions if isinstance(x, DhtSend)),
            key=lambda x: x.peer_id not in colluders,  # the colluders answer first
        )
        for send in sends:
            o = by_id[send.peer_id]
            nodes: tuple[JsonObject, ...] = (c1.ticket, c2.ticket)
            records: tuple[JsonObject, ...] = ()
            if o is honest:
                nodes = (holder.ticket,)
            elif o is holder:
                nodes, records = (), (target.ticket,)
            else:
                assert o.peer_id in colluders
            answer = DhtValue(id=send.frame.id, ticket=o.ticket, records=records, nodes=nodes)
            a.dht.receive(o.peer_id, answer, NOW + round_)
    raise AssertionError("the lookup did not end")


def test_disjoint_paths_colluders_that_capture_one_path_do_not_steer_the_other() -> None:
    single = _eclipse(1)
    assert (single.ok, single.code) == (False, "not_found"), "one path: the holder crowded out"
    disjoint = _eclipse(2)
    assert disjoint.ok, "two paths: the honest one reaches the holder"
    assert len(disjoint.records) == 1


def test_requests_and_stores_are_rate_limited_per_peer() -> None:
    limits = DhtLimits(
        request_burst=3, request_interval_ms=100, store_burst=1, store_interval_ms=1000
    )
    a, b = Peer("rate-a", limits=limits), Peer("rate-b")
    for i in range(4):
        a.dht.receive(b.peer_id, _request(b, DhtFindNode, id=i, target=b.dht.id), NOW)
    drops = [x for x in a.dht.take_actions() if isinstance(x, DhtDrop)]
    assert [(d.code, d.violation) for d in drops] == [("rate_limited", True)]
    a.dht.receive(b.peer_id, _request(b, DhtFindNode, id=5, target=b.dht.id), NOW + 100)
    assert not [x for x in a.dht.take_actions() if isinstance(x, DhtDrop)]
    store = _request(b, DhtStore, id=6, kind="peer", records=(b.ticket,))
    a.dht.receive(b.peer_id, store, NOW + 1000)
    (send,) = a.dht.take_actions()
    assert send.frame.codes == ("stored",)
    a.dht.receive(b.peer_id, _request(b, DhtStore, id=7, kind="peer", records=()), NOW + 1100)
    assert [x.code for x in a.dht.take_actions()] == ["rate_limited"]


def test_stores_check_every_record_and_answer_a_code_for_each() -> None:
    a, b = Peer("store-a"), Peer("store-b")
    good = make_provider_record(
        b.key, community="main", manifest=b64url_encode(bytes(32)), chunks=1, now=NOW
    )
    expired = make_provider_record(
        b.key, community="main", manifest=b64url_encode(bytes(32)), chunks=1, now=NOW - 1_800_000
    )
    forged = copy.deepcopy(good)
    forged["body"]["chunks"] = 2
    frame = _request(b, DhtStore, kind="provider", records=(good, good, expired, forged, b.ticket))
    a.dht.receive(b.peer_id, frame, NOW)
    sends = [x for x in a.dht.take_actions() if isinstance(x, DhtSend)]
    assert sends[0].frame.codes == ("stored", "replay", "expired", "bad_signature", "bad_signature")
    assert len(a.dht.store) == 1


def test_a_node_refuses_records_it_is_not_close_to() -> None:
    limits = DhtLimits(k=2)
    a, b = Peer("close-a", limits=limits), Peer("close-b")
    key = a.dht.id
    far_key = bytes(x ^ 0xFF for x in key)
    # Two contacts closer to the far key than a is.
    near_far = [
        p
        for p in (Peer(f"close-{i}") for i in range(40))
        if distance(p.dht.id, far_key) < distance(key, far_key)
    ]
    for p in near_far[:2]:
        a.dht.seen(p.ticket, NOW)
    manifest = b64url_encode(far_key)
    record = make_provider_record(b.key, community="main", manifest=manifest, chunks=1, now=NOW)
    a.dht.receive(b.peer_id, _request(b, DhtStore, kind="provider", records=(record,)), NOW)
    (send,) = [x for x in a.dht.take_actions() if isinstance(x, DhtSend)]
    assert send.frame.codes == ("not_close",)


def _record(signer: Peer, manifest: bytes, now: int = NOW) -> Record:
    envelope = make_provider_record(
        signer.key, community="main", manifest=b64url_encode(manifest), chunks=1, now=now
    )
    return verify_record("provider", envelope, now=now, community="main")


def test_the_record_store_is_bounded_per_publisher_per_key_and_in_all() -> None:
    own = bytes(32)
    store = RecordStore(own, DhtLimits(max_records=4, max_per_publisher=2, max_per_key=2))
    p1, p2, p3 = Peer("st-1"), Peer("st-2"), Peer("st-3")
    k1, k2 = b"\x01" * 32, b"\x02" * 32
    assert store.put(_record(p1, k1)) == "stored"
    assert store.put(_record(p1, k2)) == "stored"
    assert store.put(_record(p1, b"\x03" * 32)) == "store_full"  # per publisher
    assert store.put(_record(p2, k1)) == "stored"
    assert store.put(_record(p3, k1)) == "store_full"  # per key, and not newer
    assert store.put(_record(p3, k1, NOW + 1)) == "stored"  # newer: the oldest of k1 goes
    assert sorted(r.peer_id for r in store.get("provider", k1, NOW + 1)) == sorted(
        [p2.peer_id, p3.peer_id]
    )
    assert store.put(_record(p2, k1, NOW + 2)) == "stored"  # a newer one of the same slot
    assert store.put(_record(p2, k1, NOW + 2)) == "replay"
    # Full in all (4): a record farther from this node than all held is refused, a closer one
    # replaces the farthest.
    assert store.put(_record(p3, b"\x00" * 31 + b"\x01")) == "stored"
    assert len(store) == 4
    assert store.put(_record(p2, b"\xff" * 32)) == "store_full"
    assert store.put(_record(p2, b"\x00" * 31 + b"\x02")) == "stored"
    assert len(store) == 4
    assert store.put(_record(p2, b"\x00" * 31 + b"\x03")) == "store_full"  # p2 holds 2
    store.prune(NOW + 1_800_000 + 10)
    assert len(store) == 0
    assert store.per_publisher == {}
    assert store.per_key == {}


def test_provider_records_are_republished_and_stored_at_the_closest() -> None:
    net, peers = network(12, limits=DhtLimits(replicas=8))  # fewer than the 12 peers
    manifest = b64url_encode(hashlib.sha256(b"republished").digest())
    peers[0].dht.provide(manifest, 2, NOW + 1)
    net.pump(NOW + 1)
    holders = [p for p in peers if p.dht.store.get("provider", provider_key(manifest), NOW + 1)]
    # The replicas = 8 closest that answered, and the publisher too when among the closest.
    assert len([p for p in holders if p is not peers[0]]) == 8
    ranked = sorted(peers, key=lambda p: distance(p.dht.id, provider_key(manifest)))
    assert {p.peer_id for p in holders} <= {p.peer_id for p in ranked[:9]}
    assert peers[0].dht.next_deadline(NOW + 1) <= NOW + 1 + 900_000
    peers[0].dht.tick(NOW + 1 + 900_000)
    net.pump(NOW + 1 + 900_000)
    later = [
        r.issued_at
        for p in holders
        for r in p.dht.store.get("provider", provider_key(manifest), NOW + 900_001)
    ]
    assert later
    assert all(at == NOW + 1 + 900_000 for at in later)
    peers[0].dht.unprovide(manifest)
    assert peers[0].dht.published == {}


def test_provide_domain_and_limits_are_the_spec() -> None:
    assert DOMAIN_PROVIDE == "swarm/provide/v1"
    lim = DhtLimits()
    assert (lim.k, lim.alpha, lim.replicas, lim.value_window, lim.paths) == (20, 3, 20, 40, 3)
    with pytest.raises(ProtocolError) as error:
        make_provider_record(KEYS["alice"], community="main", manifest="x", chunks=1, now=NOW)
    assert error.value.code == "bad_body"
