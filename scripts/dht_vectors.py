"""Shared vectors for the DHT (tests/vectors/dht.json, written by scripts/make_vectors.py):
node ids, XOR distances and buckets, provider keys, the closest contacts to a target, provider
records made with fixed keys, and records and contacts with one fault each and their codes
(docs/protocol.md "DHT")."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.dht_records import (
    CONTACT_MAX_AGE_MS,
    DOMAIN_PROVIDE,
    MAX_RECORD_BYTES,
    bucket_index,
    distance,
    make_provider_record,
    node_id,
    provider_key,
)
from peers.protocol.encoding import b64url_encode, peer_id_for_key
from peers.protocol.envelope import DOMAIN_TICKET, sign
from peers.protocol.ticket import make_ticket

NOW = 1_800_000_000_000
COMMUNITY = "main"
LABELS = ("alice", "bob", "carol", "dave")


def seeded_key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


K = {label: seeded_key(label) for label in LABELS}
ID = {label: peer_id_for_key(k.public_key().public_bytes_raw()) for label, k in K.items()}
MANIFEST = b64url_encode(hashlib.sha256(b"dht manifest").digest())


def h(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def ids() -> dict[str, Any]:
    peers = [ID[label] for label in LABELS] + [
        peer_id_for_key(seeded_key(f"dht-{i}").public_key().public_bytes_raw()) for i in range(4)
    ]
    pairs = [
        (h("a"), h("a")),
        (bytes(32), bytes(31) + b"\x01"),
        (bytes(32), b"\x80" + bytes(31)),
        (bytes(32), b"\xff" * 32),
        (h("a"), h("b")),
        (node_id(ID["alice"]), node_id(ID["bob"])),
        (b"\x0f" + bytes(31), b"\x10" + bytes(31)),
    ]
    target = h("target")
    table = [
        peer_id_for_key(seeded_key(f"dht-t{i}").public_key().public_bytes_raw()) for i in range(30)
    ]
    t = int.from_bytes(target, "big")
    ranked = sorted(table, key=lambda p: int.from_bytes(node_id(p), "big") ^ t)
    return {
        "node_ids": [{"peer_id": p, "node_id": node_id(p).hex()} for p in peers],
        "distances": [
            {
                "a": a.hex(),
                "b": b.hex(),
                "distance": distance(a, b).to_bytes(32, "big").hex(),
                "bucket": bucket_index(a, b),
            }
            for a, b in pairs
        ],
        "provider_keys": [
            {"manifest": m, "key": provider_key(m).hex()}
            for m in (MANIFEST, b64url_encode(bytes(32)), b64url_encode(b"\xff" * 32))
        ],
        "closest": {
            "own": ID["alice"],
            "target": target.hex(),
            "peers": table,
            "closest_20": ranked[:20],
        },
    }


def ticket(label: str, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "community": COMMUNITY,
        "now": NOW - 1000,
        "nonce": f"dht-{label}-nonce",
        "ttl_ms": 600_000,
    }
    args.update(kw)
    return make_ticket(K[label], **args)


def resign(envelope: dict[str, Any], signer: str, domain: str, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(envelope["body"])
    for name, value in changes.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return sign(domain, body, K[signer])


def provide(label: str = "alice", **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "community": COMMUNITY,
        "manifest": MANIFEST,
        "chunks": 3,
        "now": NOW - 1000,
    }
    args.update(kw)
    return make_provider_record(K[label], **args)


def records() -> dict[str, Any]:
    good = provide()
    valid = [
        {
            "name": "provider",
            "kind": "provider",
            "make": {
                "signer": "alice",
                "manifest": MANIFEST,
                "chunks": 3,
                "now": NOW - 1000,
                "ttl_ms": 1_800_000,
            },
            "envelope": good,
            "key": provider_key(MANIFEST).hex(),
        },
        {
            "name": "provider_one_hour_zero_chunks",
            "kind": "provider",
            "make": {
                "signer": "bob",
                "manifest": MANIFEST,
                "chunks": 0,
                "now": NOW - 1000,
                "ttl_ms": 3_600_000,
            },
            "envelope": provide("bob", chunks=0, ttl_ms=3_600_000),
            "key": provider_key(MANIFEST).hex(),
        },
        {
            "name": "peer_ticket",
            "kind": "peer",
            "envelope": ticket("carol"),
            "key": node_id(ID["carol"]).hex(),
        },
    ]
    invalid: list[dict[str, Any]] = []

    def bad(name: str, kind: str, envelope: Any, error: str, now: int = NOW) -> None:
        invalid.append(
            {"name": name, "kind": kind, "envelope": envelope, "now": now, "error": error}
        )

    forged = copy.deepcopy(good)
    forged["body"]["chunks"] = 4
    bad("provider_forged", "provider", forged, "bad_signature")
    bad(
        "provider_signed_by_other_key",
        "provider",
        resign(good, "bob", DOMAIN_PROVIDE),
        "peer_mismatch",
    )
    bad(
        "provider_signed_as_ticket",
        "provider",
        resign(good, "alice", DOMAIN_TICKET),
        "bad_signature",
    )
    bad("provider_expired", "provider", good, "expired", NOW + 1_800_000)
    bad("provider_not_yet_valid", "provider", good, "not_yet_valid", NOW - 20_000)
    bad("provider_ttl_too_long", "provider", provide(ttl_ms=3_600_001), "ttl_too_long")
    bad("provider_wrong_community", "provider", provide(community="other"), "wrong_community")
    bad("provider_extra_field", "provider", resign(good, "alice", DOMAIN_PROVIDE, x=1), "bad_body")
    bad(
        "provider_missing_chunks",
        "provider",
        resign(good, "alice", DOMAIN_PROVIDE, chunks=None),
        "bad_body",
    )
    bad(
        "provider_chunks_4097",
        "provider",
        resign(good, "alice", DOMAIN_PROVIDE, chunks=4097),
        "bad_body",
    )
    bad(
        "provider_manifest_malformed",
        "provider",
        resign(good, "alice", DOMAIN_PROVIDE, manifest="x"),
        "bad_body",
    )
    bad(
        "provider_community_malformed",
        "provider",
        resign(good, "alice", DOMAIN_PROVIDE, community="Main"),
        "bad_body",
    )
    bad(
        "provider_expires_before_issued",
        "provider",
        resign(good, "alice", DOMAIN_PROVIDE, expires_at=NOW - 1000),
        "bad_body",
    )
    big = resign(good, "alice", DOMAIN_PROVIDE, pad="x" * MAX_RECORD_BYTES)
    bad("provider_oversized", "provider", big, "record_too_large")
    bad("not_an_object", "provider", "record", "bad_envelope")
    broken = copy.deepcopy(good)
    broken["sig"] = broken["sig"][:-2]
    bad("provider_bad_signature_length", "provider", broken, "bad_envelope")
    peer = ticket("carol")
    bad("peer_expired", "peer", peer, "expired", NOW + 600_000)
    bad("peer_wrong_community", "peer", ticket("carol", community="other"), "wrong_community")
    forged_peer = copy.deepcopy(peer)
    forged_peer["body"]["peer_id"] = ID["dave"]
    bad("peer_forged", "peer", forged_peer, "bad_signature")
    bad(
        "peer_claims_other_id",
        "peer",
        resign(peer, "carol", DOMAIN_TICKET, peer_id=ID["dave"]),
        "peer_mismatch",
    )
    bad("peer_provider_record", "peer", good, "bad_signature")
    big_peer = resign(peer, "carol", DOMAIN_TICKET, pad="x" * MAX_RECORD_BYTES)
    bad("peer_oversized", "peer", big_peer, "record_too_large")
    return {"valid": valid, "invalid": invalid}


def contacts() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def case(name: str, envelope: Any, now: int, error: str | None) -> None:
        out.append({"name": name, "envelope": envelope, "now": now, "error": error})

    live = ticket("dave")
    case("live", live, NOW, None)
    case("expired_as_presence_young_as_contact", live, NOW + 1_200_000, None)
    case("older_than_an_hour", live, NOW - 1000 + CONTACT_MAX_AGE_MS, "expired")
    case("wrong_community", ticket("dave", community="other"), NOW, "wrong_community")
    forged = copy.deepcopy(live)
    forged["body"]["peer_id"] = ID["alice"]
    case("forged", forged, NOW, "bad_signature")
    case(
        "peer_mismatch",
        resign(live, "dave", DOMAIN_TICKET, peer_id=ID["alice"]),
        NOW,
        "peer_mismatch",
    )
    case("not_yet_valid", ticket("dave", now=NOW + 60_000), NOW, "not_yet_valid")
    case("provider_record", provide("dave"), NOW, "bad_signature")
    return out


def dht_vectors() -> dict[str, Any]:
    return {
        "description": (
            'docs/protocol.md "DHT": node_id = SHA-256(ASCII peer id); distance = XOR '
            "(hex, 32 bytes); bucket = index of the distance's highest set bit (-1: equal); "
            "provider key = the manifest id's 32 bytes; closest_20 = the peers nearest the "
            "target, nearest first. Records: verify_record(kind, envelope, now, community "
            "'main') stores or uses them, else the error; contacts: verify_contact."
        ),
        "now": NOW,
        "community": COMMUNITY,
        "keys": {
            label: {"seed_hex": hashlib.sha256(label.encode()).hexdigest(), "peer_id": ID[label]}
            for label in LABELS
        },
        "ids": ids(),
        "records": records(),
        "contacts": contacts(),
    }
