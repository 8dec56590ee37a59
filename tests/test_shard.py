"""Guardians and recovery: sealed values, swarm/shard/v1 messages, the guardian, owner and
recovery cores (peers/protocol/seal.py, shard.py, guardian.py, backup.py, recovery.py).

The shared vectors (tests/vectors/shard.json) hold Python and the browser
(tests/js/shard.test.js) to the same bytes, codes and scenario outcomes; the tests after them
are flows people repeat (re-splits, guardians offline, floods of requests) with a fake clock.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from peers.protocol.backup import GuardianKey, OwnerGuardians
from peers.protocol.encoding import b64url_decode, peer_id_for_key
from peers.protocol.errors import ProtocolError
from peers.protocol.guardian import GuardianLimits, GuardianStore
from peers.protocol.keywrap import unwrap_file_key, x25519_public
from peers.protocol.node_actions import ContentReceived
from peers.protocol.recovery import RecoveryCollector
from peers.protocol.seal import open_sealed, seal
from peers.protocol.shard import (
    RecoverRequest,
    Release,
    Share,
    kind_of,
    make_receipt,
    make_recover_request,
    make_refuse,
    make_release,
    make_revoke,
    make_share,
    open_release,
    open_share,
    parse_kind,
    parse_message,
    verification_code,
)
from peers.protocol.wire import ShardMsg, decode_frame, encode_frame
from tests.support.swarm_network import pair

VECTORS = json.loads((Path(__file__).parent / "vectors" / "shard.json").read_text())
NOW: int = VECTORS["now"]
DAY = 86_400_000
KEYS = VECTORS["keys"]


def ed(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(KEYS[label]["seed_hex"]))


def xk(label: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(bytes.fromhex(KEYS[label]["x25519_seed_hex"]))


def pid(label: str) -> str:
    return str(KEYS[label]["peer_id"])


def codes_of(error: pytest.ExceptionInfo[ProtocolError]) -> str:
    return error.value.code


# --- the stand-in share format of the vectors (never the SLIP-39 module) ---


def stand_in(k: int, index: int, seed: bytes) -> str:
    text = f"swarm test share {k} {index} {seed.hex()}"
    return f"{text} {hashlib.sha256(text.encode()).hexdigest()[:8]}"


def check_share(text: str) -> None:
    head, _, check = text.rpartition(" ")
    if hashlib.sha256(head.encode()).hexdigest()[:8] != check:
        raise ProtocolError("bad_checksum", "the share's check digits do not match")


def combine(texts: Sequence[str]) -> bytes:
    words = [t.split(" ") for t in texts]
    ks = {int(w[3]) for w in words}
    indices = {w[4] for w in words}
    seeds = {w[5] for w in words}
    if len(ks) != 1 or len(texts) != ks.pop() or len(indices) != len(texts) or len(seeds) != 1:
        raise ProtocolError("bad_digest", "these shares do not combine")
    return bytes.fromhex(seeds.pop())


# --- vectors: sealed values ---


@pytest.mark.parametrize("case", VECTORS["seal"]["valid"], ids=lambda c: c["name"])
def test_seal_vector_makes_the_same_bytes_and_opens(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["data_hex"])
    ephemeral = X25519PrivateKey.from_private_bytes(bytes.fromhex(case["ephemeral_seed_hex"]))
    rcpt = case["recipient"]
    sealed = seal(
        data,
        recipient=pid(rcpt),
        recipient_key=x25519_public(xk(rcpt)),
        context=case["context"],
        ephemeral=ephemeral,
    )
    assert sealed.hex() == case["sealed_hex"]
    opened = open_sealed(sealed, private_key=xk(rcpt), recipient=pid(rcpt), context=case["context"])
    assert opened == data


@pytest.mark.parametrize("case", VECTORS["seal"]["open_invalid"], ids=lambda c: c["name"])
def test_sealed_value_that_does_not_open_fails_with_its_code(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as error:
        open_sealed(
            bytes.fromhex(case["sealed_hex"]),
            private_key=xk(case["recipient"]),
            recipient=case.get("recipient_id", pid(case["recipient"])),
            context=case["context"],
        )
    assert codes_of(error) == case["error"]


@pytest.mark.parametrize("case", VECTORS["seal"]["seal_invalid"], ids=lambda c: c["name"])
def test_value_that_cannot_be_sealed_fails_with_its_code(case: dict[str, Any]) -> None:
    key = case.get("recipient_key_hex")
    with pytest.raises(ProtocolError) as error:
        seal(
            bytes.fromhex(case["data_hex"]),
            recipient=case.get("recipient_id", pid(case["recipient"])),
            recipient_key=bytes.fromhex(key) if key else x25519_public(xk(case["recipient"])),
            context="c",
        )
    assert codes_of(error) == case["error"]


def test_a_sealed_value_does_not_open_as_a_wrapped_file_key() -> None:
    case = VECTORS["seal"]["as_wrapped_key"]
    with pytest.raises(ProtocolError) as error:
        unwrap_file_key(case["wrapped"], private_key=xk("bob"), peer_id=pid("bob"))
    assert codes_of(error) == case["error"] == "decrypt_failed"


@pytest.mark.parametrize("case", VECTORS["codes"], ids=lambda c: c["code"])
def test_verification_code_vector(case: dict[str, Any]) -> None:
    assert verification_code(case["request"]) == case["code"]


# --- vectors: messages ---


@pytest.mark.parametrize("case", VECTORS["messages"]["valid"], ids=lambda c: c["name"])
def test_valid_message_parses_and_opens(case: dict[str, Any]) -> None:
    envelope = case["envelope"]
    message = parse_message(envelope, now=NOW)
    assert message.kind == envelope["body"]["kind"] == kind_of(envelope)
    assert message.envelope is envelope
    if "id" in case:
        assert isinstance(message, RecoverRequest)
        assert message.id == case["id"]
    if "open_as" in case:
        label = case["open_as"]
        if isinstance(message, Share):
            text = open_share(message, private_key=xk(label), peer_id=pid(label))
        else:
            assert isinstance(message, Release)
            text = open_release(message, private_key=xk(label))
        assert text == case["text"]


@pytest.mark.parametrize("case", VECTORS["messages"]["valid"], ids=lambda c: c["name"])
def test_valid_message_is_made_again_byte_for_byte(case: dict[str, Any]) -> None:
    body = case["envelope"]["body"]
    signer = ed(case["signer"])
    seed = case.get("ephemeral_seed_hex")
    ephemeral = None if seed is None else X25519PrivateKey.from_private_bytes(bytes.fromhex(seed))
    request = case.get("request")
    kind = body["kind"]
    if kind == "share":
        made = make_share(
            signer,
            guardian=body["guardian"],
            guardian_key=x25519_public(xk(label_of(body["guardian"]))),
            set_id=body["set"],
            index=body["index"],
            k=body["k"],
            n=body["n"],
            share=case["text"],
            issued_at=body["issued_at"],
            expires_at=body["expires_at"],
            ephemeral=ephemeral,
        )
    elif kind == "receipt":
        share = parse_kind(VECTORS["messages"]["valid"][0]["envelope"], Share, now=NOW)
        made = make_receipt(signer, share, held_at=body["held_at"])
    elif kind == "revoke":
        made = make_revoke(signer, set_id=body["set"], issued_at=body["issued_at"])
    elif kind == "recover_req":
        made = make_recover_request(
            signer,
            x25519_public(xk(case["signer"])),
            for_peer=body["for"],
            issued_at=body["issued_at"],
            expires_at=body["expires_at"],
        )
    elif kind == "release":
        parsed = parse_kind(request, RecoverRequest, now=NOW)
        made = make_release(
            signer,
            parsed,
            set_id=body["set"],
            index=body["index"],
            k=body["k"],
            n=body["n"],
            share=case["text"],
            ephemeral=ephemeral,
        )
    else:
        made = make_refuse(signer, parse_kind(request, RecoverRequest, now=NOW))
    assert made == case["envelope"]


def label_of(peer_id: str) -> str:
    return next(label for label in KEYS if pid(label) == peer_id)


@pytest.mark.parametrize("case", VECTORS["messages"]["invalid"], ids=lambda c: c["name"])
def test_invalid_message_fails_with_its_code(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as error:
        parse_message(case["envelope"], now=case.get("now", NOW), kind=case.get("kind"))
    assert codes_of(error) == case["error"]


@pytest.mark.parametrize("case", VECTORS["messages"]["open_invalid"], ids=lambda c: c["name"])
def test_message_that_does_not_open_fails_with_its_code(case: dict[str, Any]) -> None:
    message = parse_message(case["envelope"], now=NOW)
    label = case["open_as"]
    if isinstance(message, Share):
        with pytest.raises(ProtocolError) as error:
            open_share(message, private_key=xk(label), peer_id=pid(label))
    else:
        assert isinstance(message, Release)
        with pytest.raises(ProtocolError) as error:
            open_release(message, private_key=xk(label))
    assert codes_of(error) == case["error"]


# --- vectors: scenarios ---


def test_guardian_scenario_vector() -> None:
    scenario = VECTORS["guardian"]
    me = scenario["guardian"]
    store = GuardianStore(ed(me), xk(me), limits=GuardianLimits(**scenario["limits"]))
    for number, step in enumerate(scenario["steps"]):
        where = f"step {number} ({step['op']})"
        if "error" in step:
            with pytest.raises(ProtocolError) as error:
                _guardian_step(store, step)
            assert codes_of(error) == step["error"], where
            continue
        result = _guardian_step(store, step)
        if step["op"] == "accept":
            assert result[1] == step["receipt"], where
        elif step["op"] == "revoke":
            assert result == step["deleted"], where
        elif step["op"] == "request" and step.get("ignored"):
            assert result is None, where
        elif step["op"] == "request":
            assert (result.code, result.state) == (step["code"], step["state"]), where
        elif step["op"] == "refuse":
            assert result == step["refuse"], where
        elif step["op"] == "approve":
            assert [_opened_release(env) for env in result] == step["releases"], where
        elif step["op"] == "receipts_for":
            assert result == step["receipts"], where
        if "held" in step:
            held = [[h.owner, h.share.set, h.share.index] for h in store.held()]
            assert held == step["held"], where


def _guardian_step(store: GuardianStore, step: dict[str, Any]) -> Any:
    op = step["op"]
    if op == "accept":
        return store.accept_share(step["envelope"], now=step["now"])
    if op == "revoke":
        return store.revoke(step["envelope"], now=step["now"])
    if op == "request":
        return store.request(step["envelope"], now=step["now"])
    if op == "approve":
        return store.approve(step["request"], now=step["now"])
    if op == "refuse":
        return store.refuse(step["request"], now=step["now"])
    if op == "receipts_for":
        return store.receipts_for(step["owner"], now=step["now"])
    if op == "prune":
        return store.prune(step["now"])
    return None  # "held": only the check after the step


def _opened_release(envelope: dict[str, Any]) -> dict[str, Any]:
    release = parse_kind(envelope, Release, now=NOW)
    label = label_of(release.temp)
    text = open_release(release, private_key=xk(label))
    fields = {"to": label, "set": release.set, "index": release.index, "k": release.k}
    return {**fields, "n": release.n, "text": text}


def test_owner_scenario_vector() -> None:
    scenario = VECTORS["owner"]
    owner = OwnerGuardians(ed(scenario["owner"]), lifetime_ms=scenario["lifetime_ms"])
    for number, step in enumerate(scenario["steps"]):
        where = f"step {number} ({step['op']})"
        op = step["op"]
        if op == "split":
            guardians = [
                None if g is None else GuardianKey(pid(g), x25519_public(xk(g)))
                for g in step["guardians"]
            ]
            out = owner.split(
                guardians, step["shares"], step["k"], now=step["now"], set_id=step["set"]
            )
            label = {pid(lb): lb for lb in KEYS}
            assert [[label[o.to], *_summary(o.envelope)] for o in out] == step["out"], where
            for o in out:  # each share opens for its guardian only
                message = parse_message(o.envelope, now=step["now"])
                if isinstance(message, Share):
                    text = open_share(message, private_key=xk(label[o.to]), peer_id=o.to)
                    assert text == step["shares"][message.index - 1], where
        elif op == "receive" and "error" in step:
            with pytest.raises(ProtocolError) as error:
                owner.receive(step["envelope"], now=step["now"])
            assert codes_of(error) == step["error"], where
        elif op == "receive":
            assert owner.receive(step["envelope"], now=step["now"]).state == step["state"], where
        elif op == "seen":
            owner.seen(pid(step["peer"]), step["now"])
        elif op == "guardians":
            rows = [
                {
                    "peer_id": e.peer_id,
                    "set": e.set,
                    "index": e.index,
                    "state": e.state,
                    "held_at": e.held_at,
                    "last_seen": e.last_seen,
                }
                for e in owner.guardians()
            ]
            assert rows == step["rows"], where
        elif op == "outgoing_for":
            sent = [_summary(env) for env in owner.outgoing_for(pid(step["peer"]))]
            assert sent == step["out"], where
        elif op == "prune":
            owner.prune(step["now"])
            assert [e.peer_id for e in owner.guardians()] == [pid(g) for g in step["guardians"]]


def _summary(envelope: dict[str, Any]) -> list[Any]:
    body = envelope["body"]
    return [body["kind"], body["set"], body.get("index")]


@pytest.mark.parametrize("scenario", VECTORS["recovery"], ids=lambda s: s["name"])
def test_recovery_scenario_vector(scenario: dict[str, Any]) -> None:
    collector = RecoveryCollector(
        scenario["request"],
        xk(scenario["temp"]),
        now=NOW,
        combine=combine,
        check_share=check_share,
    )
    assert collector.request.id == scenario["request_id"]
    for number, step in enumerate(scenario["steps"]):
        outcome = collector.receive(step["envelope"], now=NOW)
        assert [outcome.kind, outcome.guardian, outcome.code] == _outcome(step), number
        progress = collector.progress()
        got = {
            "state": progress.state,
            "have": progress.have,
            "need": progress.need,
            "set": progress.set,
            "bad": progress.bad,
            "refused": list(progress.refused),
            "reason": progress.reason,
        }
        assert got == step["progress"], number
    seed = scenario["seed_hex"]
    assert collector.seed == (None if seed is None else bytes.fromhex(seed))


def _outcome(step: dict[str, Any]) -> list[Any]:
    kind, guardian, code = step["outcome"]
    return [kind, None if guardian is None else pid(guardian), code]


# --- flows, with a fake clock ---


class Peer:
    def __init__(self, label: str) -> None:
        self.identity = Ed25519PrivateKey.from_private_bytes(
            hashlib.sha256(f"flow/{label}".encode()).digest()
        )
        self.x25519 = X25519PrivateKey.from_private_bytes(
            hashlib.sha256(f"flow/{label}/x".encode()).digest()
        )
        self.peer_id = peer_id_for_key(self.identity.public_key().public_bytes_raw())
        self.key = GuardianKey(self.peer_id, x25519_public(self.x25519))
        self.seed = self.identity.private_bytes_raw()

    def store(self, **limits: int) -> GuardianStore:
        return GuardianStore(self.identity, self.x25519, limits=GuardianLimits(**limits))


def split_to(
    owner: Peer, guardians: list[Peer], k: int, now: int
) -> tuple[OwnerGuardians, dict[str, dict[str, Any]]]:
    backup = OwnerGuardians(owner.identity)
    shares = [stand_in(k, i, owner.seed) for i in range(1, len(guardians) + 1)]
    out = backup.split([g.key for g in guardians], shares, k, now=now)
    return backup, {o.to: o.envelope for o in out}


def test_recovery_with_two_of_three_guardians_while_one_stays_offline() -> None:
    alice, bob, carol, dave = Peer("alice"), Peer("bob"), Peer("carol"), Peer("dave")
    backup, sent = split_to(alice, [bob, carol, dave], 2, NOW)
    stores = {p.peer_id: p.store() for p in (bob, dave)}  # carol is offline throughout
    for peer_id, store in stores.items():
        _held, receipt = store.accept_share(sent[peer_id], now=NOW + 10)
        assert backup.receive(receipt, now=NOW + 20).state == "held"
    states = {e.peer_id: e.state for e in backup.guardians()}
    assert states == {bob.peer_id: "held", carol.peer_id: "sent", dave.peer_id: "held"}
    assert backup.outgoing_for(carol.peer_id) == [sent[carol.peer_id]]

    temp = Peer("new device")
    collector = RecoveryCollector.start(
        temp.identity, alice.peer_id, now=NOW + DAY, combine=combine, check_share=check_share
    )
    assert collector.progress().need is None
    for store in stores.values():
        incoming = store.request(collector.request.envelope, now=NOW + DAY + 10)
        assert incoming is not None
        assert incoming.code == collector.code  # the digits both people compare
        for release in store.approve(incoming.id, now=NOW + DAY + 20):
            assert collector.receive(release, now=NOW + DAY + 30).kind == "share"
    progress = collector.progress()
    assert (progress.state, progress.have, progress.need) == ("recovered", 2, 2)
    assert collector.seed == alice.seed


def test_a_guardian_sending_a_corrupted_share_is_named_and_skipped() -> None:
    alice, bob, carol, dave = Peer("alice"), Peer("bob"), Peer("carol"), Peer("dave")
    _backup, sent = split_to(alice, [bob, carol, dave], 2, NOW)
    temp = Peer("temp")
    collector = RecoveryCollector.start(
        temp.identity, alice.peer_id, now=NOW, combine=combine, check_share=check_share
    )
    request = collector.request
    # Carol tampers with one word of her share before sealing it to the new device.
    carol_text = open_share(
        parse_kind(sent[carol.peer_id], Share, now=NOW),
        private_key=carol.x25519,
        peer_id=carol.peer_id,
    )
    tampered = carol_text.replace(alice.seed.hex()[:6], "ffffff", 1)
    bad = make_release(
        carol.identity, request, set_id=_set(sent), index=2, k=2, n=3, share=tampered
    )
    outcome = collector.receive(bad, now=NOW + 1)
    assert (outcome.kind, outcome.guardian, outcome.code) == ("bad", carol.peer_id, "bad_checksum")
    assert collector.progress().bad == {carol.peer_id: "bad_checksum"}
    for guardian in (bob, dave):
        store = guardian.store()
        store.accept_share(sent[guardian.peer_id], now=NOW)
        incoming = store.request(request.envelope, now=NOW + 2)
        assert incoming is not None
        [release] = store.approve(incoming.id, now=NOW + 3)
        collector.receive(release, now=NOW + 4)
    assert collector.progress().state == "recovered"
    assert collector.seed == alice.seed


def _set(sent: dict[str, dict[str, Any]]) -> str:
    return str(next(iter(sent.values()))["body"]["set"])


def test_a_re_split_revokes_the_old_set_and_a_late_old_share_is_refused() -> None:
    alice, bob, carol, dave, erin = (Peer(n) for n in ("alice", "bob", "carol", "dave", "erin"))
    backup, first = split_to(alice, [bob, carol, dave], 2, NOW)
    bob_store, carol_store = bob.store(), carol.store()
    bob_store.accept_share(first[bob.peer_id], now=NOW + 1)
    # Carol was offline: her share of the first set is still in the owner's outbox.
    second_shares = [stand_in(2, i, alice.seed) for i in (1, 2)]
    out = backup.split([bob.key, erin.key], second_shares, 2, now=NOW + 1000)
    revokes = [o for o in out if o.envelope["body"]["kind"] == "revoke"]
    assert sorted(o.to for o in revokes) == sorted([bob.peer_id, carol.peer_id, dave.peer_id])
    states = {e.peer_id: e.state for e in backup.guardians()}
    assert states == {
        bob.peer_id: "sent",
        erin.peer_id: "sent",
        carol.peer_id: "revoked",
        dave.peer_id: "revoked",
    }
    [to_carol] = backup.outgoing_for(carol.peer_id)
    assert to_carol["body"]["kind"] == "revoke"
    # Store and forward delivers the revocation before the old share: the share is refused.
    assert carol_store.revoke(to_carol, now=NOW + 2000) == 0
    with pytest.raises(ProtocolError) as error:
        carol_store.accept_share(first[carol.peer_id], now=NOW + 2001)
    assert codes_of(error) == "revoked_set"
    # Bob takes the new set; the old one's revocation then deletes nothing of it.
    new_bob = next(
        o.envelope for o in out if o.to == bob.peer_id and o.envelope["body"]["kind"] == "share"
    )
    bob_store.accept_share(new_bob, now=NOW + 2002)
    assert (
        bob_store.revoke(next(o.envelope for o in revokes if o.to == bob.peer_id), now=NOW + 2003)
        == 0
    )
    assert [h.share.set for h in bob_store.held()] == [new_bob["body"]["set"]]
    with pytest.raises(ProtocolError) as error:
        bob_store.accept_share(first[bob.peer_id], now=NOW + 2004)
    assert codes_of(error) == "revoked_set"


def test_a_request_from_another_device_cannot_take_a_release_meant_for_this_one() -> None:
    alice, bob = Peer("alice"), Peer("bob")
    _backup, sent = split_to(alice, [bob, Peer("carol")], 2, NOW)
    store = bob.store()
    store.accept_share(sent[bob.peer_id], now=NOW)
    mine = RecoveryCollector.start(Peer("mine").identity, alice.peer_id, now=NOW, combine=combine)
    theirs = RecoveryCollector.start(
        Peer("theirs").identity, alice.peer_id, now=NOW, combine=combine
    )
    incoming = store.request(theirs.request.envelope, now=NOW + 1)
    assert incoming is not None
    [release] = store.approve(incoming.id, now=NOW + 2)
    outcome = mine.receive(release, now=NOW + 3)
    assert (outcome.kind, outcome.code) == ("dropped", "wrong_recipient")
    replayed = copy.deepcopy(release)
    replayed["body"]["temp"] = mine.request.temp
    outcome = mine.receive(replayed, now=NOW + 4)
    assert (outcome.kind, outcome.code) == ("dropped", "bad_signature")
    assert mine.progress().have == 0


def test_two_requests_showing_the_same_code_are_flagged_and_cannot_be_approved() -> None:
    alice, bob = Peer("alice"), Peer("bob")
    _backup, sent = split_to(alice, [bob, Peer("carol")], 2, NOW)
    store = bob.store()
    store.accept_share(sent[bob.peer_id], now=NOW)
    real = RecoveryCollector.start(Peer("real").identity, alice.peer_id, now=NOW, combine=combine)
    ground = RecoveryCollector.start(
        Peer("ground").identity, alice.peer_id, now=NOW, combine=combine
    )
    # Grinding a request to show another's code is what this guards against; a stored
    # request carrying the real one's code stands in for the ground one.
    snapshot = store.snapshot()
    snapshot["requests"] = [
        {
            "envelope": ground.request.envelope,
            "code": real.code,
            "received_at": NOW,
            "state": "pending",
            "conflict": False,
            "answer": [],
        }
    ]
    store = GuardianStore.restore(bob.identity, bob.x25519, snapshot, now=NOW)
    incoming = store.request(real.request.envelope, now=NOW + 1)
    assert incoming is not None
    assert incoming.conflict
    assert all(r.conflict for r in store.requests())
    for request in store.requests():
        with pytest.raises(ProtocolError) as error:
            store.approve(request.id, now=NOW + 2)
        assert codes_of(error) == "code_conflict"
    assert store.refuse(ground.request.id, now=NOW + 3)["body"]["kind"] == "refuse"


def test_a_flood_of_requests_does_not_lock_out_the_newest() -> None:
    alice, bob = Peer("alice"), Peer("bob")
    _backup, sent = split_to(alice, [bob, Peer("carol")], 2, NOW)
    store = bob.store(max_requests_per_owner=2)
    store.accept_share(sent[bob.peer_id], now=NOW)
    envelopes = [
        make_recover_request(
            Peer(f"flood {i}").identity,
            x25519_public(X25519PrivateKey.generate()),
            for_peer=alice.peer_id,
            issued_at=NOW,
            expires_at=NOW + DAY,
        )
        for i in range(3)
    ]
    for i, envelope in enumerate(envelopes):
        store.request(envelope, now=NOW + i)
    kept = [r.request.envelope for r in store.requests()]
    assert kept == envelopes[1:]


def test_quota_limits_shares_per_owner_and_in_total() -> None:
    owners = [Peer(f"owner {i}") for i in range(3)]
    bob = Peer("bob")
    store = bob.store(max_shares=2, max_per_owner=1)
    for owner in owners[:2]:
        _b, sent = split_to(owner, [bob, Peer("carol")], 2, NOW)
        store.accept_share(sent[bob.peer_id], now=NOW)
    _b, sent = split_to(owners[2], [bob, Peer("carol")], 2, NOW)
    with pytest.raises(ProtocolError) as error:
        store.accept_share(sent[bob.peer_id], now=NOW)
    assert codes_of(error) == "over_quota"
    assert len(store.held()) == 2


def test_guardian_snapshot_keeps_shares_requests_and_revoked_sets() -> None:
    alice, bob = Peer("alice"), Peer("bob")
    backup, first = split_to(alice, [bob, Peer("carol")], 2, NOW)
    store = bob.store()
    store.accept_share(first[bob.peer_id], now=NOW)
    out = backup.split(
        [bob.key, Peer("dave").key], [stand_in(2, i, alice.seed) for i in (1, 2)], 2, now=NOW + 5
    )
    second = next(
        o.envelope for o in out if o.to == bob.peer_id and o.envelope["body"]["kind"] == "share"
    )
    store.accept_share(second, now=NOW + 6)
    collector = RecoveryCollector.start(Peer("t").identity, alice.peer_id, now=NOW, combine=combine)
    store.request(collector.request.envelope, now=NOW + 7)
    restored = GuardianStore.restore(
        bob.identity, bob.x25519, json.loads(json.dumps(store.snapshot())), now=NOW + 8
    )
    assert [h.share.envelope for h in restored.held()] == [second]
    assert [(r.id, r.code, r.state) for r in restored.requests()] == [
        (collector.request.id, collector.code, "pending")
    ]
    with pytest.raises(ProtocolError) as error:
        restored.accept_share(first[bob.peer_id], now=NOW + 9)
    assert codes_of(error) == "revoked_set"
    later = GuardianStore.restore(bob.identity, bob.x25519, store.snapshot(), now=NOW + 800 * DAY)
    assert later.held() == []
    assert later.requests() == []


def test_owner_snapshot_round_trips_through_json() -> None:
    alice, bob = Peer("alice"), Peer("bob")
    backup, sent = split_to(alice, [bob, Peer("carol")], 2, NOW)
    _held, receipt = bob.store().accept_share(sent[bob.peer_id], now=NOW + 1)
    backup.receive(receipt, now=NOW + 2)
    restored = OwnerGuardians.restore(alice.identity, json.loads(json.dumps(backup.snapshot())))
    assert restored.current == backup.current
    assert restored.guardians() == backup.guardians()
    assert restored.next_deadline() == NOW + 730 * DAY


def test_collector_refuses_a_key_that_is_not_the_requests_and_expires() -> None:
    alice = Peer("alice")
    collector = RecoveryCollector.start(Peer("t").identity, alice.peer_id, now=NOW, combine=combine)
    with pytest.raises(ProtocolError) as error:
        RecoveryCollector(
            collector.request.envelope, X25519PrivateKey.generate(), now=NOW, combine=combine
        )
    assert codes_of(error) == "bad_key"
    collector.tick(NOW + DAY - 1)
    assert collector.progress().state == "collecting"
    collector.tick(NOW + DAY)
    assert (collector.progress().state, collector.progress().reason) == ("failed", "expired")


def test_a_share_library_that_raises_its_own_errors_never_crashes_the_collector() -> None:
    alice, bob, carol = Peer("alice"), Peer("bob"), Peer("carol")
    _backup, sent = split_to(alice, [bob, carol], 2, NOW)

    def broken(texts: Sequence[str]) -> bytes:
        raise ValueError("library trouble")

    collector = RecoveryCollector.start(Peer("t").identity, alice.peer_id, now=NOW, combine=broken)
    for guardian in (bob, carol):
        store = guardian.store()
        store.accept_share(sent[guardian.peer_id], now=NOW)
        incoming = store.request(collector.request.envelope, now=NOW)
        assert incoming is not None
        for release in store.approve(incoming.id, now=NOW):
            collector.receive(release, now=NOW)
    progress = collector.progress()
    assert (progress.state, progress.have, progress.reason) == ("collecting", 2, "combine_failed")


def test_a_collector_is_restored_by_feeding_it_what_it_received() -> None:
    alice, bob, carol = Peer("alice"), Peer("bob"), Peer("carol")
    _backup, sent = split_to(alice, [bob, carol], 2, NOW)
    temp_x = X25519PrivateKey.generate()
    request = make_recover_request(
        Peer("t").identity,
        x25519_public(temp_x),
        for_peer=alice.peer_id,
        issued_at=NOW,
        expires_at=NOW + DAY,
    )
    first = RecoveryCollector(request, temp_x, now=NOW, combine=combine)
    store = bob.store()
    store.accept_share(sent[bob.peer_id], now=NOW)
    incoming = store.request(request, now=NOW)
    assert incoming is not None
    for release in store.approve(incoming.id, now=NOW):
        first.receive(release, now=NOW)
    again = RecoveryCollector(request, temp_x, now=NOW + 10, combine=combine)
    for envelope in first.received():
        again.receive(envelope, now=NOW + 10)
    assert again.progress() == first.progress()


def test_make_share_refuses_what_a_guardian_would_refuse() -> None:
    alice, bob = Peer("alice"), Peer("bob")
    backup = OwnerGuardians(alice.identity)
    for guardians, shares, k, code in [
        ([bob.key], ["a b"], 2, "bad_shard"),  # n = 1
        ([bob.key, alice.key], ["a", "b"], 2, "bad_shard"),  # the owner as guardian
        ([bob.key, bob.key], ["a", "b"], 2, "bad_shard"),  # one guardian twice
        ([bob.key, None], ["a", "two  spaces"], 2, "bad_share"),
        ([bob.key, None], ["a", "caf\u00e9"], 2, "bad_share"),
        ([bob.key, None], ["a", " ".join(["w"] * 34)], 2, "bad_share"),
    ]:
        with pytest.raises(ProtocolError) as error:
            backup.split(guardians, shares, k, now=NOW)
        assert codes_of(error) == code
    assert backup.current is None
    assert backup.guardians() == []


def test_sealed_share_bytes_are_not_the_plain_share() -> None:
    alice, bob = Peer("alice"), Peer("bob")
    _backup, sent = split_to(alice, [bob, Peer("carol")], 2, NOW)
    sealed = b64url_decode(sent[bob.peer_id]["body"]["sealed"], field="sealed")
    assert alice.seed.hex().encode() not in sealed
    assert alice.seed.hex() not in json.dumps(sent[bob.peer_id])


def test_a_shard_msg_frame_reaches_the_content_layer_of_the_node() -> None:
    net, a, b = pair()
    net.start()
    assert net.run_until(lambda: len(b.node.mesh.open()) == 1, 10)
    [conn] = b.node.mesh.open()
    msg = VECTORS["messages"]["valid"][0]["envelope"]
    frame = ShardMsg(to=b.peer_id, msg=msg)
    assert a.node.send_content(next(iter(a.node.mesh.conns)), frame)
    b.node.receive(conn.id, encode_frame(frame), net.now)
    received = [x for x in b.node.take_actions() if isinstance(x, ContentReceived)]
    assert received == [ContentReceived(conn.id, a.peer_id, frame)]
    assert decode_frame(encode_frame(frame)) == frame


def test_many_re_splits_with_guardians_coming_and_going_leave_only_the_newest_set() -> None:
    """Twelve splits among six guardians, each online half the time; what waits for a
    guardian arrives in any order (store and forward). In the end every guardian holds the
    newest set or nothing, and the newest set recovers the identity."""
    rng = random.Random(7)
    owner = Peer("alice")
    guardians = [Peer(f"g{i}") for i in range(6)]
    stores = {g.peer_id: g.store() for g in guardians}
    backup = OwnerGuardians(owner.identity)
    waiting: dict[str, list[dict[str, Any]]] = {g.peer_id: [] for g in guardians}
    refused: dict[str, int] = {}

    def deliver(peer_id: str, now: int) -> None:
        messages = waiting[peer_id] + backup.outgoing_for(peer_id)
        waiting[peer_id] = []
        rng.shuffle(messages)
        for envelope in messages:
            try:
                if envelope["body"]["kind"] == "revoke":
                    stores[peer_id].revoke(envelope, now=now)
                    continue
                _held, receipt = stores[peer_id].accept_share(envelope, now=now)
                backup.receive(receipt, now=now)
            except ProtocolError as error:
                refused[error.code] = refused.get(error.code, 0) + 1

    now = NOW
    for _round in range(12):
        chosen = rng.sample(guardians, 3)
        shares = [stand_in(2, i, owner.seed) for i in (1, 2, 3)]
        for o in backup.split([g.key for g in chosen], shares, 2, now=now):
            waiting[o.to].append(o.envelope)
        for g in guardians:
            if rng.random() < 0.5:
                deliver(g.peer_id, now + 10)
        now += 1000
    for g in guardians:
        deliver(g.peer_id, now)
    assert backup.current is not None
    current = backup.current.id
    assert set(refused) <= {"stale_set", "revoked_set"}
    assert refused, "some old shares and receipts arrived late"
    holders = [g for g in guardians if stores[g.peer_id].held()]
    for g in guardians:
        assert {h.share.set for h in stores[g.peer_id].held()} <= {current}
    assert len(holders) == 3
    states = {e.peer_id: e.state for e in backup.guardians() if e.set == current}
    assert states == {g.peer_id: "held" for g in holders}

    collector = RecoveryCollector.start(
        Peer("new device").identity,
        owner.peer_id,
        now=now,
        combine=combine,
        check_share=check_share,
    )
    for g in holders[:2]:
        incoming = stores[g.peer_id].request(collector.request.envelope, now=now + 1)
        assert incoming is not None
        for release in stores[g.peer_id].approve(incoming.id, now=now + 2):
            collector.receive(release, now=now + 3)
    assert collector.progress().state == "recovered"
    assert collector.seed == owner.seed
