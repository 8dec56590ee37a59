"""The super-peer's DHT adapter (peers/superpeer/dht.py) on a fake clock and a fake network:
requests for peers it is not connected to wait while it dials them, go out once the
connection opens, and fail at once when the dial fails; what is held is provided; bad records
and tickets are refused with their code and blamed on the sender."""

from __future__ import annotations

import copy
import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.dht_records import DhtLimits, make_provider_record
from peers.protocol.encoding import b64url_encode, peer_id_for_key
from peers.protocol.mesh import PEER_UNAVAILABLE
from peers.protocol.ticket import make_ticket
from peers.protocol.wire import (
    DhtFindNode,
    DhtFrame,
    DhtNodes,
    DhtStore,
    decode_frame,
    encode_frame,
)
from peers.superpeer.dht import MAX_PROVIDED, PROVIDE_GAP_MS, Courier, SuperPeerDht

NOW = 1_800_000_000_000
COMMUNITY = "main"
MANIFEST = b64url_encode(hashlib.sha256(b"a file").digest())


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


class World:
    """Super-peer DHTs joined by connections that must be dialed; frames go through the
    codec and are delivered when the world is pumped."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.nodes: dict[str, SuperPeerDht] = {}
        self.tickets: dict[str, dict[str, object]] = {}
        self.links: set[frozenset[str]] = set()
        self.unreachable: set[str] = set()  # dials to these fail
        self.absent: set[str] = set()  # dials to these fail with peer_unavailable
        self.queue: list[tuple[str, str, bytes]] = []
        self.dials: list[tuple[str, str]] = []
        self.violations: list[tuple[str, str, str]] = []
        self.held: dict[str, dict[str, int]] = {}

    def add(self, label: str) -> str:
        key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())
        peer_id = peer_id_for_key(key.public_key().public_bytes_raw())
        ticket = make_ticket(key, community=COMMUNITY, now=self.clock(), ttl_ms=600_000)
        self.tickets[peer_id] = ticket
        self.held[peer_id] = {}
        self.nodes[peer_id] = SuperPeerDht(
            peer_id,
            key,
            COMMUNITY,
            ticket,
            send_to=lambda to, frame, me=peer_id: self._send(me, to, frame),
            connected=lambda other, me=peer_id: frozenset((me, other)) in self.links,
            dial=lambda other, me=peer_id: self.dials.append((me, other)),
            violation=lambda other, code, message, me=peer_id: self.violations.append(
                (me, other, code)
            ),
            held=lambda me=peer_id: self.held[me],
            clock=self.clock,
            limits=DhtLimits(),
        )
        return peer_id

    def connect(self, a: str, b: str) -> None:
        self.links.add(frozenset((a, b)))
        self.nodes[a].opened(b, ("dht",), self.tickets[b])
        self.nodes[b].opened(a, ("dht",), self.tickets[a])

    def _send(self, frm: str, to: str, frame: DhtFrame) -> bool:
        if frozenset((frm, to)) not in self.links:
            return False
        self.queue.append((frm, to, encode_frame(frame)))
        return True

    def pump(self) -> None:
        for _ in range(1000):
            if self.dials:
                frm, to = self.dials.pop(0)
                if to in self.unreachable:
                    self.nodes[frm].dial_failed(to)
                elif to in self.absent:
                    self.nodes[frm].dial_failed(to, PEER_UNAVAILABLE)
                else:
                    self.connect(frm, to)
            elif self.queue:
                frm, to, data = self.queue.pop(0)
                self.nodes[to].received(frm, decode_frame(data))  # type: ignore[arg-type]
            else:
                return
        raise AssertionError("the world did not settle")


def a_line(label: str) -> tuple[World, str, str, str]:
    """A - B - C connected in a line, B having looked itself up (it knows C)."""
    w = World()
    a, b, c = w.add(f"{label}-a"), w.add(f"{label}-b"), w.add(f"{label}-c")
    w.connect(a, b)
    w.connect(b, c)
    w.nodes[b].core.find_node(w.nodes[b].core.id, w.clock())
    w.nodes[b].flush()
    w.pump()
    return w, a, b, c


def test_the_courier_waits_for_a_dial_and_bounds_dials_and_time() -> None:
    c = Courier(max_dials=1, wait_ms=5_000)
    f1 = DhtFindNode(id=1, ticket={}, target=bytes(32))
    f2 = DhtFindNode(id=2, ticket={}, target=bytes(32))
    assert c.route("pA", f1, connected=True, answer=False, now=0) == "send"
    assert c.route("pA", f1, connected=False, answer=True, now=0) == "drop"
    assert c.route("pA", f1, connected=False, answer=False, now=0) == "dial"
    assert c.route("pA", f2, connected=False, answer=False, now=0) == "queued"
    assert c.route("pB", f1, connected=False, answer=False, now=1_000) == "queued"
    assert c.opened("pA") == [f1, f2]
    assert c.sweep(2_000) == ([], ["pB"])
    assert c.sweep(6_000) == (["pB"], [])
    assert not c.failed("pB")


def test_a_lookup_dials_a_provider_it_is_not_connected_to_and_finds_its_record() -> None:
    w = World()
    a, b, c = w.add("sp-a"), w.add("sp-b"), w.add("sp-c")
    w.connect(a, b)
    w.connect(b, c)
    w.held[c] = {MANIFEST: 3}
    # C joins (a lookup of its own id), then provides what it holds.
    w.nodes[c].core.find_node(w.nodes[c].core.id, w.clock())
    w.nodes[c].flush()
    w.pump()
    w.nodes[c].provide_held(w.clock())
    w.pump()
    assert w.nodes[c].provided == {MANIFEST: 3}
    w.dials.clear()
    # A knows only B; B knows C: A reaches C by dialing it.
    w.links.discard(frozenset((a, c)))
    lookup = w.nodes[a].find_providers(MANIFEST)
    done = []
    original = w.nodes[a]._done
    w.nodes[a]._done = lambda action: (done.append(action), original(action))  # type: ignore[method-assign]
    w.pump()
    assert [d.lookup for d in done] == [lookup]
    assert done[0].ok
    assert [(r.peer_id, r.chunks) for r in done[0].records] == [(c, 3)]
    assert w.nodes[a].stats.lookups == {"provider ok": 1}
    assert not w.violations


def test_a_peer_that_cannot_be_dialed_fails_its_requests_at_once() -> None:
    w, a, _b, c = a_line("u")
    w.links.discard(frozenset((a, c)))
    w.unreachable.add(c)
    # A node lookup for C's id: B names C, A dials C, the dial fails.
    w.nodes[a].core.find_node(w.nodes[c].core.id, w.clock())
    w.nodes[a].flush()
    w.pump()
    core = w.nodes[a].core
    assert (a, c) not in w.dials
    assert w.nodes[a].stats.dials == 1
    assert w.nodes[a].stats.unreachable == 1
    assert core.stats.dropped.get("unreachable") == 1
    assert w.nodes[a].stats.lookups == {"node ok": 1}, "B answered: the lookup ends at once"
    assert not core.requests, "nothing waits for the unreachable peer"
    # A peer lookup is answered from B's table (C's live ticket) without reaching C.
    w.nodes[a].find_peer(c)
    w.pump()
    assert w.nodes[a].stats.lookups == {"node ok": 1, "peer ok": 1}


def test_a_peer_signaling_calls_absent_is_not_dialed_again_until_a_newer_ticket() -> None:
    """The super-peer dialed pages that had left again and again (their tickets still in other
    nodes' tables, so every lookup named them): a ``peer_unavailable`` dial takes the contact
    out of the table and keeps that ticket from being dialed again."""
    w, a, b, c = a_line("g")
    w.links.discard(frozenset((a, c)))
    w.links.discard(frozenset((b, c)))
    w.absent.add(c)  # C's page closed; B still names it
    dht = w.nodes[a]
    dht.core.find_node(w.nodes[c].core.id, w.clock())
    dht.flush()
    w.pump()
    assert dht.stats.dials == 1
    assert dht.core.table.get(c) is None, "out of the table at once"
    assert dht.gone == {c: w.tickets[c]["body"]["issued_at"]}  # type: ignore[index]
    # Every later lookup hears C's same ticket from B: its request fails at once, undialed.
    for _ in range(3):
        w.clock.now += 60_000
        lookup = dht.core.find_node(w.nodes[c].core.id, w.clock())
        dht.flush()
        w.pump()
        assert lookup not in dht.core.lookups, "the lookup ended without waiting for C"
    assert dht.stats.dials == 1
    assert dht.stats.gone_skipped == 3
    assert dht.stats.lookups == {"node ok": 4}
    assert not dht.core.requests
    # C comes back: a newer ticket (its page reopened) is dialed again.
    key_c = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"g-c").digest())
    w.tickets[c] = make_ticket(key_c, community=COMMUNITY, now=w.clock(), ttl_ms=600_000)
    w.nodes[c].set_ticket(w.tickets[c])
    w.absent.discard(c)
    w.nodes[b].core.seen(w.tickets[c], w.clock())  # B hears C's new ticket
    dht.core.find_node(w.nodes[c].core.id, w.clock())
    dht.flush()
    w.pump()
    assert dht.stats.dials == 2
    assert c not in dht.gone, "connected again"


def test_a_peer_that_says_it_is_leaving_leaves_the_table_and_no_answer_names_it() -> None:
    """Its contact would otherwise go on in find_node answers, and every node that hears it
    (each new page joining) would dial a closed page once."""
    w, a, b, c = a_line("l")
    assert w.nodes[b].core.table.get(c) is not None
    w.links.discard(frozenset((b, c)))
    w.nodes[b].peer_left(c)  # C's bye leaving reached B
    assert w.nodes[b].core.table.get(c) is None
    # A looks up C's id through B: B no longer names C, so A dials nobody.
    w.links.discard(frozenset((a, c)))
    w.nodes[a].core.table.remove(c)
    w.nodes[a].core.find_node(w.nodes[c].core.id, w.clock())
    w.nodes[a].flush()
    w.pump()
    assert (a, c) not in w.dials
    assert w.nodes[a].stats.dials == 0
    assert w.nodes[b].is_gone(c, w.tickets[c])


def test_a_ticket_the_peer_book_knows_stale_is_not_dialed() -> None:
    """A peer the mesh learned was gone (a dial of its own, or its bye on leaving) is not
    dialed by the DHT either, for that ticket (``known_gone``: the book's ``stale_since``)."""
    w, a, _b, c = a_line("k")
    w.links.discard(frozenset((a, c)))
    stale = {c: w.tickets[c]["body"]["issued_at"]}  # type: ignore[index]
    dht = w.nodes[a]
    dht.known_gone = lambda peer_id, issued: issued <= stale.get(peer_id, -1)
    dht.core.find_node(w.nodes[c].core.id, w.clock())
    dht.flush()
    w.pump()
    assert dht.stats.dials == 0
    assert dht.stats.gone_skipped == 1
    assert dht.stats.lookups == {"node ok": 1}


def test_forged_records_are_refused_with_their_code_and_blamed() -> None:
    w = World()
    a, b = w.add("f-a"), w.add("f-b")
    w.connect(a, b)
    key_b = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"f-b").digest())
    record = make_provider_record(
        key_b, community=COMMUNITY, manifest=MANIFEST, chunks=1, now=w.clock()
    )
    forged = copy.deepcopy(record)
    forged["body"]["chunks"] = 2  # the signature no longer covers it
    w.nodes[b].core.ticket = w.tickets[b]
    frame = DhtStore(id=7, ticket=w.tickets[b], kind="provider", records=(forged, record))
    w.nodes[a].received(b, frame)
    answers = [decode_frame(data) for frm, to, data in w.queue if frm == a and to == b]
    assert [f.codes for f in answers] == [("bad_signature", "stored")]  # type: ignore[union-attr]
    assert (a, b, "bad_signature") in w.violations
    assert len(w.nodes[a].core.store) == 1


def test_what_is_held_is_provided_paced_at_most_max_provided_and_withdrawn_when_gone() -> None:
    w = World()
    a, b = w.add("p-a"), w.add("p-b")
    w.connect(a, b)
    many = {b64url_encode(hashlib.sha256(str(i).encode()).digest()): 1 + i for i in range(70)}
    w.held[a] = many
    w.nodes[a].provide_held(w.clock())
    w.nodes[a].provide_held(w.clock())
    assert len(w.nodes[a]._providing) == 1, "one store every PROVIDE_GAP_MS"
    rounds = 0
    while len(w.nodes[a].provided) < MAX_PROVIDED:
        w.pump()
        w.clock.now += PROVIDE_GAP_MS
        w.nodes[a].provide_next(w.clock())
        rounds += 1
    assert rounds == MAX_PROVIDED
    assert not w.violations, "paced stores stay within the receivers' rate"
    provided = w.nodes[a].provided
    assert len(provided) == MAX_PROVIDED == 64
    assert min(provided.values()) == 7, "the most complete are provided"
    gone = max(provided, key=lambda m: provided[m])
    del w.held[a][gone]
    w.nodes[a].provide_held(w.clock())
    assert gone not in w.nodes[a].provided
    assert gone not in w.nodes[a].core.published


def test_an_answer_to_no_request_is_counted_not_blamed() -> None:
    """Under load an answer may come after its request timed out: counted (late_answers),
    not held against the connection, which a violation would close after a few."""
    w = World()
    a, b = w.add("late-a"), w.add("late-b")
    w.connect(a, b)
    w.nodes[a].received(b, DhtNodes(id=12345, ticket=w.tickets[b], nodes=()))
    assert w.violations == []
    assert w.nodes[a].stats.late_answers == 1
    assert w.nodes[a].stats.as_json(w.nodes[a].core)["late_answers"] == 1
