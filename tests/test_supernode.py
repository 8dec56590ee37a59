"""Supernodes (docs/protocol.md "Supernodes"): swarm/supernode/v1 adverts, the election and
SupernodeView against tests/vectors/supernode.json (which tests/js/supernode.test.js checks
for the browser), and fake-clock unit tests of what the vectors do not cover."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.errors import ProtocolError
from peers.protocol.supernode import (
    ADVERT_TTL_MS,
    DOMAIN_SUPERNODE,
    MAX_ADVERT_BYTES,
    REPUBLISH_MS,
    TOPIC_SUPERNODE,
    Advert,
    LocalState,
    SupernodeView,
    check_body,
    elect,
    parse_advert,
    seats,
    sign_advert,
    stagger,
    tiebreak,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "supernode.json").read_text())
NOW: int = VECTORS["now"]
COMMUNITY: str = VECTORS["community"]
KEYS: dict[str, Any] = VECTORS["keys"]


def ed(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(KEYS[label]["seed_hex"]))


def pid(label: str) -> str:
    peer_id: str = KEYS[label]["peer_id"]
    return peer_id


def code_of(call: Any) -> str:
    with pytest.raises(ProtocolError) as caught:
        call()
    return caught.value.code


def test_constants_are_the_specs() -> None:
    assert (DOMAIN_SUPERNODE, TOPIC_SUPERNODE) == ("swarm/supernode/v1", "supernode")
    assert (MAX_ADVERT_BYTES, ADVERT_TTL_MS, REPUBLISH_MS) == (1024, 150_000, 60_000)


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_valid_adverts_parse_and_are_signed_again(case: dict[str, Any]) -> None:
    envelope = case["envelope"]
    body = envelope["body"]
    advert = parse_advert(envelope, now=NOW, community=body["community"])
    assert advert.body() == body
    assert advert.envelope == envelope
    assert sign_advert(ed(case["signer"]), body) == envelope


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["name"])
def test_invalid_adverts_fail_with_their_code(case: dict[str, Any]) -> None:
    assert (
        code_of(lambda: parse_advert(case["envelope"], now=NOW, community=COMMUNITY))
        == (case["error"])
    )


@pytest.mark.parametrize("case", VECTORS["sign_invalid"], ids=lambda c: c["name"])
def test_signing_what_receivers_refuse_fails_with_the_same_code(case: dict[str, Any]) -> None:
    assert code_of(lambda: sign_advert(ed(case["signer"]), case["body"])) == case["error"]


def test_stagger_lets_the_best_speak_first() -> None:
    assert [stagger(p) for p in (0, 180, 880, 1000, 2000)] == [20_000, 16_400, 2400, 0, 0]


def test_seats_and_tiebreak_are_the_vectors() -> None:
    for n, k in VECTORS["seats"]:
        assert seats(n) == k, n
    for case in VECTORS["tiebreak"]:
        assert tiebreak(case["peer_id"], case["epoch"]) == case["value"]


def adverts_of(bodies: list[dict[str, Any]]) -> list[Advert]:
    return [check_body(b) for b in bodies]


@pytest.mark.parametrize("case", VECTORS["elections"], ids=lambda c: c["name"])
def test_elections_are_the_vectors_in_any_order(case: dict[str, Any]) -> None:
    adverts = adverts_of(case["adverts"])
    assert list(elect(adverts, case["now"])) == case["expect"]
    shuffler = random.Random(case["name"])
    for _ in range(5):
        shuffler.shuffle(adverts)
        assert list(elect(adverts, case["now"])) == case["expect"]


def run_step(view: SupernodeView, step: dict[str, Any]) -> None:
    op = step["op"]
    if op == "receive":
        advert = check_body(step["advert"])
        got = code_of(lambda: view.receive(advert, step["at"])) if step["expect"] != "ok" else "ok"
        if step["expect"] == "ok":
            view.receive(advert, step["at"])
        assert got == step["expect"]
    elif op == "elected":
        assert list(view.elected(step["at"])) == step["expect"]
    elif op == "due":
        body = view.advert_due(step["at"])
        assert body == step["expect"]
        if body is not None:
            view.receive(check_body(body), step["at"])
    elif op == "local":
        view.set_local(LocalState(**step["state"]))
    elif op == "deadline":
        assert view.next_deadline(step["at"]) == step["expect"]
    else:
        raise AssertionError(op)


@pytest.mark.parametrize("case", VECTORS["scenarios"], ids=lambda c: c["name"])
def test_view_scenarios(case: dict[str, Any]) -> None:
    config = case["view"]
    extra = {"max_adverts": config["max_adverts"]} if "max_adverts" in config else {}
    view = SupernodeView(community=COMMUNITY, now=config["now"], self_id=config["self"], **extra)
    for index, step in enumerate(case["steps"]):
        try:
            run_step(view, step)
        except AssertionError as exc:
            raise AssertionError(f"step {index}: {step['op']} at {step.get('at')}") from exc


# --- fake-clock unit tests ---

LABELS = [label for label in KEYS if label.startswith("n")]


def browser(label: str, at: int, **kw: Any) -> Advert:
    fields: dict[str, Any] = {
        "peer_id": pid(label),
        "community": COMMUNITY,
        "issued_at": at,
        "expires_at": at + ADVERT_TTL_MS,
        "uptime": 3600,
        "up_kbps": 2000,
        "conns": 8,
        "swarm": 10,
        "opt_in": True,
        "superpeer": False,
        "elected": False,
    }
    fields.update(kw)
    return Advert(**fields)


def test_accept_parses_then_takes_and_refuses_the_same_advert_twice() -> None:
    view = SupernodeView(community=COMMUNITY, now=NOW)
    envelope = VECTORS["valid"][0]["envelope"]
    advert = view.accept(envelope, NOW)
    assert advert.peer_id == pid("bob")
    assert view.adverts(NOW) == [envelope]
    assert code_of(lambda: view.accept(envelope, NOW)) == "replay"
    assert code_of(lambda: view.accept(VECTORS["invalid"][2]["envelope"], NOW)) == "bad_signature"
    assert view.adverts(NOW + ADVERT_TTL_MS) == []


def test_seat_holders_stay_while_challengers_come_and_go_no_flap() -> None:
    # Two seat holders at 180 (counting 225) and a stream of challengers between 180 and 224:
    # the set never changes; one at 230 takes the weaker seat.
    view = SupernodeView(community=COMMUNITY, now=NOW)
    view.receive(browser("n00", NOW, elected=True), NOW)
    view.receive(browser("n01", NOW, elected=True, uptime=3660), NOW)
    before = view.elected(NOW)
    for i, conns in enumerate(range(8, 15)):
        at = NOW + 5000 * (i + 1)
        view.receive(browser("n02", at, conns=conns), at)  # 180 .. 240
        if conns * 10 + 100 <= 225:
            assert view.elected(at) == before, conns
    assert view.elected(NOW + 35_000) == (pid("n02"), pid("n01"))


def test_rank_and_set_do_not_depend_on_arrival_order() -> None:
    rng = random.Random(7)
    adverts = [
        browser(label, NOW - rng.randrange(100_000), conns=rng.randrange(0, 40), swarm=1000)
        for label in LABELS
    ]
    expected = None
    for _ in range(10):
        rng.shuffle(adverts)
        view = SupernodeView(community=COMMUNITY, now=NOW)
        for advert in adverts:
            view.receive(advert, NOW)
        got = view.elected(NOW)
        expected = expected or got
        assert got == expected
    assert expected is not None
    assert len(expected) == 8  # 20 adverts, estimate 1000: 8 seats


def test_outranked_peers_stay_quiet_and_speak_when_seats_empty() -> None:
    view = SupernodeView(community=COMMUNITY, now=NOW - 100_000, self_id=pid("n19"))
    for label in LABELS[:4]:
        view.receive(browser(label, NOW, conns=20), NOW)
    view.set_local(LocalState(uptime=3600, up_kbps=2000, conns=8, swarm=10))
    for t in range(NOW, NOW + ADVERT_TTL_MS, 5000):
        assert view.advert_due(t) is None
    assert view.advert_due(NOW + ADVERT_TTL_MS) is None  # the four expired: it waits its turn
    at = NOW + ADVERT_TTL_MS + stagger(180)
    assert view.next_deadline(NOW + ADVERT_TTL_MS) == at
    body = view.advert_due(at)
    assert body is not None
    assert body["elected"] is False
    view.receive(check_body(body), at)
    claim = view.advert_due(at + 5000)
    assert claim is not None
    assert claim["elected"] is True


def test_a_table_of_throwaway_keys_stays_bounded() -> None:
    view = SupernodeView(community=COMMUNITY, now=NOW, max_adverts=10)
    for index, label in enumerate(LABELS):  # each better than all before: always taken
        view.receive(browser(label, NOW, conns=3 + index), NOW)
    worse = browser("alice", NOW, conns=3)
    assert code_of(lambda: view.receive(worse, NOW)) == "table_full"
    assert len(view.held) == 10
    assert set(view.held) == {pid(label) for label in LABELS[10:]}  # the ten best kept


def test_local_numbers_out_of_range_are_clamped_into_a_valid_advert() -> None:
    view = SupernodeView(community=COMMUNITY, now=NOW - 100_000, self_id=pid("alice"))
    view.set_local(LocalState(uptime=2**40, up_kbps=2**40, conns=5000, swarm=0))
    assert view.advert_due(NOW) is None
    body = view.advert_due(NOW + stagger(880))
    assert body is not None
    advert = parse_advert(sign_advert(ed("alice"), body), now=NOW + 2400, community=COMMUNITY)
    assert (advert.conns, advert.swarm, advert.up_kbps) == (1024, 1, 10_000_000)


@pytest.mark.parametrize(
    "junk",
    [None, 1, "x", [], {}, {"v": 1}, {"v": 1, "alg": "ed25519", "pk": 1, "sig": 2, "body": {}}],
)
def test_junk_is_refused_with_a_code_never_a_crash(junk: object) -> None:
    view = SupernodeView(community=COMMUNITY, now=NOW)
    assert code_of(lambda: view.accept(junk, NOW)) in {"bad_envelope", "bad_advert"}
