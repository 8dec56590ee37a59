"""Write the shared test vectors in tests/vectors/ (checked by pytest and node --test).

Deterministic: keys come from fixed seeds and Ed25519 signatures are deterministic,
so running this again gives byte-identical files (a test checks that).
Usage: python scripts/make_vectors.py [--check]
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.capsule import CAPSULE_TTL_MS, TrustedKey, make_capsule
from peers.protocol.encoding import b64url_encode, peer_id_for_key
from peers.protocol.envelope import (
    DOMAIN_CAPSULE,
    DOMAIN_POST,
    DOMAIN_TICKET,
    DOMAIN_WITHDRAW,
    sign,
    signing_input,
)
from peers.protocol.keywrap import x25519_from_identity_seed, x25519_public
from peers.protocol.signal_token import make_signal_token
from peers.protocol.ticket import make_ticket, make_withdrawal
from scripts import (
    content_vectors,
    dht_vectors,
    dialpath_vectors,
    mail_vectors,
    meshsig_vectors,
    post_vectors,
    repair_vectors,
    shard_vectors,
    share_vectors,
    supernode_vectors,
    transfer_vectors,
)

OUT = Path(__file__).resolve().parent.parent / "tests" / "vectors"
NOW = 1_800_000_000_000  # fixed "current time" (ms) for every time-dependent vector
COMMUNITY = "main"


def seeded_key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def key_vectors() -> list[dict[str, Any]]:
    out = []
    for label in ("alice", "bob", "carol"):
        key = seeded_key(label)
        pk = key.public_key().public_bytes_raw()
        out.append(
            {
                "label": label,
                "seed_hex": hashlib.sha256(label.encode()).hexdigest(),
                "pk": b64url_encode(pk),
                "peer_id": peer_id_for_key(pk),
                "x25519": b64url_encode(
                    x25519_public(
                        x25519_from_identity_seed(hashlib.sha256(label.encode()).digest())
                    )
                ),
            }
        )
    return out


def canonical_vectors() -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = [
        {"b": 2, "a": 1},
        {"z": [3, 1, 2], "a": {"y": None, "x": True}},
        {"text": "héllo \u2603 \U0001f600", "n": -9007199254740991},
        {"esc": 'quote " backslash \\ newline \n tab \t ctrl \u0001'},
        {"\u00e9": 1, "e": 2, "\U0001f600": 3, "\uff41": 4},
    ]
    return [
        {
            "body": body,
            "domain": DOMAIN_POST,
            "signing_input_hex": signing_input(DOMAIN_POST, body).hex(),
        }
        for body in bodies
    ]


def resign(envelope: dict[str, Any], key: Ed25519PrivateKey, domain: str) -> dict[str, Any]:
    """Re-sign a modified body, so the only fault left is the one under test."""
    return sign(domain, envelope["body"], key)


def ticket_vectors() -> dict[str, Any]:
    alice = seeded_key("alice")
    bob = seeded_key("bob")

    def ticket(**kw: Any) -> dict[str, Any]:
        args: dict[str, Any] = {"community": COMMUNITY, "now": NOW - 1000, "nonce": "bm9uY2UtMDAx"}
        args.update(kw)
        return make_ticket(alice, **args)

    valid = [
        {"name": "minimal", "ticket": ticket()},
        {
            "name": "with_signal_and_caps",
            "ticket": ticket(signal=["wss://signal.example/signal/"], caps=["superpeer", "relay"]),
        },
        {"name": "max_ttl", "ticket": ticket(ttl_ms=600_000)},
        {"name": "issued_at_skew_edge", "ticket": ticket(now=NOW + 15_000)},
        {"name": "expires_in_1ms", "ticket": ticket(now=NOW - 179_999)},
    ]
    invalid: list[dict[str, Any]] = []

    def bad(name: str, envelope: Any, error: str) -> None:
        invalid.append({"name": name, "ticket": envelope, "error": error})

    base = ticket()
    t = copy.deepcopy(base)
    t["sig"] = b64url_encode(bytes(64))
    bad("zero_signature", t, "bad_signature")
    t = copy.deepcopy(base)
    t["body"]["nonce"] = "bm9uY2UtMDAy"
    bad("body_changed_after_signing", t, "bad_signature")
    bad("signed_with_other_domain", sign(DOMAIN_POST, base["body"], alice), "bad_signature")
    t = copy.deepcopy(base)
    t["v"] = 2
    bad("unknown_version", t, "bad_envelope")
    t = copy.deepcopy(base)
    t["alg"] = "rsa"
    bad("unknown_alg", t, "bad_envelope")
    t = copy.deepcopy(base)
    t["pk"] = t["pk"] + "+"
    bad("pk_not_base64url", t, "bad_envelope")
    t = copy.deepcopy(base)
    t["pk"] = b64url_encode(bytes(31))
    bad("pk_wrong_length", t, "bad_envelope")
    t = copy.deepcopy(base)
    t["sig"] = t["sig"][:-4]
    bad("sig_wrong_length", t, "bad_envelope")
    t = copy.deepcopy(base)
    t["extra"] = 1
    bad("envelope_unknown_field", t, "bad_envelope")
    t = copy.deepcopy(base)
    del t["sig"]
    bad("envelope_missing_sig", t, "bad_envelope")
    bad("not_an_object", [base], "bad_envelope")
    bad(
        "peer_id_of_other_key",
        make_ticket(
            bob,
            community=COMMUNITY,
            now=NOW,
            peer_id=peer_id_for_key(alice.public_key().public_bytes_raw()),
            nonce="bm9uY2UtMDAz",
        ),
        "peer_mismatch",
    )
    bad("wrong_community", ticket(community="other"), "wrong_community")
    bad("expired", ticket(now=NOW - 180_000), "expired")
    bad("not_yet_valid", ticket(now=NOW + 15_001), "not_yet_valid")
    bad("ttl_too_long", ticket(ttl_ms=600_001), "ttl_too_long")
    bad(
        "expires_before_issued",
        resign(_with_body(base, expires_at=NOW - 2000), alice, DOMAIN_TICKET),
        "bad_body",
    )
    bad(
        "unknown_body_field",
        resign(_with_body(base, color="red"), alice, DOMAIN_TICKET),
        "bad_body",
    )
    bad(
        "issued_at_string",
        resign(_with_body(base, issued_at=str(NOW)), alice, DOMAIN_TICKET),
        "bad_body",
    )
    bad(
        "issued_at_bool", resign(_with_body(base, issued_at=True), alice, DOMAIN_TICKET), "bad_body"
    )
    bad("nonce_too_short", resign(_with_body(base, nonce="abc"), alice, DOMAIN_TICKET), "bad_body")
    bad(
        "bad_community_name",
        resign(_with_body(base, community="Main!"), alice, DOMAIN_TICKET),
        "bad_body",
    )
    bad(
        "signal_not_url",
        resign(_with_body(base, signal=["ftp://x"]), alice, DOMAIN_TICKET),
        "bad_body",
    )
    bad("missing_nonce", resign(_without(base, "nonce"), alice, DOMAIN_TICKET), "bad_body")
    return {
        "description": "Presence tickets (domain swarm/ticket/v1). Verify each at `now` for "
        "`community`; valid ones must verify, invalid ones must fail with `error`. "
        "`withdrawals` (domain swarm/withdraw/v1) likewise, for `community`, with no clock.",
        "withdrawals": withdrawal_vectors(alice, bob),
        "now": NOW,
        "community": COMMUNITY,
        "max_ttl_ms": 600_000,
        "skew_ms": 15_000,
        "valid": valid,
        "invalid": invalid,
    }


def withdrawal_vectors(alice: Ed25519PrivateKey, bob: Ed25519PrivateKey) -> dict[str, Any]:
    base = make_withdrawal(alice, community=COMMUNITY, nonce="bm9uY2UtMDAx")
    invalid: list[dict[str, Any]] = []

    def bad(name: str, envelope: Any, error: str) -> None:
        invalid.append({"name": name, "withdrawal": envelope, "error": error})

    t = copy.deepcopy(base)
    t["body"]["nonce"] = "bm9uY2UtMDAy"
    bad("body_changed_after_signing", t, "bad_signature")
    bad("a_ticket_signature", sign(DOMAIN_TICKET, base["body"], alice), "bad_signature")
    bad("extra_field", resign(_with_body(base, issued_at=NOW), alice, DOMAIN_WITHDRAW), "bad_body")
    bad("missing_nonce", resign(_without(base, "nonce"), alice, DOMAIN_WITHDRAW), "bad_body")
    bad(
        "nonce_too_short", resign(_with_body(base, nonce="abc"), alice, DOMAIN_WITHDRAW), "bad_body"
    )
    bad(
        "peer_id_of_other_key",
        resign(base, bob, DOMAIN_WITHDRAW),
        "peer_mismatch",
    )
    bad(
        "wrong_community",
        make_withdrawal(alice, community="other", nonce="bm9uY2UtMDAx"),
        "wrong_community",
    )
    return {"valid": [{"name": "minimal", "withdrawal": base}], "invalid": invalid}


def _with_body(envelope: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(envelope)
    out["body"].update(changes)
    return out


def _without(envelope: dict[str, Any], field: str) -> dict[str, Any]:
    out = copy.deepcopy(envelope)
    del out["body"][field]
    return out


def capsule_vectors() -> dict[str, Any]:
    """Capsules (swarm/capsule/v1) against a keys.json document with an active and a
    retired key; inner tickets mix usable, expired, forged and duplicate ones."""
    old_key, new_key, mallory = (seeded_key(n) for n in ("capsule-old", "capsule-new", "mallory"))
    retired_at = NOW - 300_000
    keys_doc = {
        "capsule_ttl_ms": CAPSULE_TTL_MS,
        "keys": [
            TrustedKey(pk_of(new_key), created_at=retired_at).to_json(),
            TrustedKey(
                pk_of(old_key),
                created_at=NOW - 86_400_000,
                retired_at=retired_at,
                expires_at=retired_at + CAPSULE_TTL_MS,
            ).to_json(),
        ],
    }
    people = {n: seeded_key(n) for n in ("alice", "bob", "carol", "dave")}

    def tick(name: str, issued: int, nonce: str, **kw: Any) -> dict[str, Any]:
        args: dict[str, Any] = {"community": COMMUNITY, "now": issued, "nonce": nonce}
        args.update(kw)
        return make_ticket(people[name], **args)

    forged = tick("dave", NOW - 5000, "ZGF2ZS0wMDAx")
    forged = _with_body(forged, nonce="ZGF2ZS0wMDAy")
    inner = [
        tick("alice", NOW - 2000, "YWxpY2UtMDAx"),
        tick("bob", NOW - 3000, "Ym9iLTAwMDAx"),
        tick("carol", NOW - 200_000, "Y2Fyb2wtMDAx"),  # expired 20 s before NOW
        forged,
    ]

    def capsule(key: Ed25519PrivateKey, issued: int, **kw: Any) -> dict[str, Any]:
        args: dict[str, Any] = {"community": COMMUNITY, "now": issued, "peers": inner}
        args.update(kw)
        return make_capsule(key, **args)

    usable = {"peer_ids": [peer_id_of(people["alice"]), peer_id_of(people["bob"])]}
    usable["dropped"] = {"bad_signature": 1, "expired": 1}  # type: ignore[assignment]
    valid = [
        {"name": "current_key", "capsule": capsule(new_key, NOW - 60_000), **usable},
        {
            "name": "retired_key_signed_before_retirement",
            "capsule": capsule(old_key, retired_at - 100_000),
            **usable,
        },
        {
            "name": "no_peers",
            "capsule": capsule(new_key, NOW - 1000, peers=[]),
            "peer_ids": [],
            "dropped": {},
        },
        {"name": "expires_in_1ms", "capsule": capsule(old_key, NOW - 599_999), **usable},
    ]
    invalid: list[dict[str, Any]] = []

    def bad(name: str, envelope: Any, error: str, now: int | None = None) -> None:
        case = {"name": name, "capsule": envelope, "error": error}
        if now is not None:
            case["now"] = now
        invalid.append(case)

    base = capsule(new_key, NOW - 60_000)
    t = copy.deepcopy(base)
    t["body"]["peers"] = t["body"]["peers"][:1]
    bad("tampered_peers", t, "bad_signature")
    t = copy.deepcopy(base)
    t["body"]["expires_at"] += 60_000
    bad("tampered_expiry", t, "bad_signature")
    bad("signed_by_untrusted_key", capsule(mallory, NOW - 60_000), "untrusted_key")
    bad("retired_key_signed_after_retirement", capsule(old_key, NOW - 1000), "untrusted_key")
    bad(
        "retired_key_after_trust_ended",
        capsule(old_key, retired_at - 100_000),
        "untrusted_key",
        now=retired_at + CAPSULE_TTL_MS,
    )
    bad("expired", capsule(old_key, NOW - CAPSULE_TTL_MS), "expired")
    bad("not_yet_valid", capsule(new_key, NOW + 15_001), "not_yet_valid")
    bad("ttl_too_long", capsule(new_key, NOW - 1000, ttl_ms=CAPSULE_TTL_MS + 1), "ttl_too_long")
    bad("wrong_community", capsule(new_key, NOW - 1000, community="other"), "wrong_community")
    bad("signed_as_ticket", sign(DOMAIN_TICKET, base["body"], new_key), "bad_signature")
    bad(
        "too_many_peers",
        sign(DOMAIN_CAPSULE, {**base["body"], "peers": [{}] * 101}, new_key),
        "bad_body",
    )
    bad("body_carries_kid", resign(_with_body(base, kid="x"), new_key, DOMAIN_CAPSULE), "bad_body")
    bad("missing_peers", resign(_without(base, "peers"), new_key, DOMAIN_CAPSULE), "bad_body")
    bad(
        "peers_not_a_list",
        resign(_with_body(base, peers={"a": 1}), new_key, DOMAIN_CAPSULE),
        "bad_body",
    )
    bad(
        "peer_not_an_object",
        resign(_with_body(base, peers=["x"]), new_key, DOMAIN_CAPSULE),
        "bad_body",
    )
    bad(
        "expires_before_issued",
        resign(_with_body(base, expires_at=NOW - 70_000), new_key, DOMAIN_CAPSULE),
        "bad_body",
    )
    t = copy.deepcopy(base)
    t["pk"] = b64url_encode(bytes(32))
    bad("zero_key", t, "bad_signature")

    newer_alice = tick("alice", NOW - 1000, "YWxpY2UtMDAy")
    selection = {
        "name": "dedupe_newest_first_limit",
        "now": NOW,
        "community": COMMUNITY,
        "limit": 2,
        "candidates": [*inner, newer_alice, tick("dave", NOW - 500, "ZGF2ZS0wMDAz", community="x")],
        "peer_ids": [peer_id_of(people["alice"]), peer_id_of(people["bob"])],
        "nonces": ["YWxpY2UtMDAy", "Ym9iLTAwMDAx"],
        "dropped": {"bad_signature": 1, "expired": 1, "wrong_community": 1},
        "duplicates": 1,
        "over_limit": 0,
    }
    return {
        "description": "Capsules (domain swarm/capsule/v1). Verify each at `now` (a case's own "
        "`now` if it has one) for `community` against the trusted `keys` document; valid ones "
        "verify and their re-verified inner tickets give `peer_ids` (newest first) with "
        "`dropped` counts; invalid ones fail with `error`. `selection` is the publisher's "
        "verify-dedupe-limit step.",
        "now": NOW,
        "community": COMMUNITY,
        "keys": keys_doc,
        "signing_seed_hex": hashlib.sha256(b"capsule-new").hexdigest(),
        "valid": valid,
        "invalid": invalid,
        "selection": [selection],
    }


def pk_of(key: Ed25519PrivateKey) -> str:
    return b64url_encode(key.public_key().public_bytes_raw())


def peer_id_of(key: Ed25519PrivateKey) -> str:
    return peer_id_for_key(key.public_key().public_bytes_raw())


def signal_token_vectors() -> dict[str, Any]:
    """Signal tokens (docs/protocol.md "Signal tokens"): valid ones and one fault each."""
    alice = seeded_key("alice")
    bob = seeded_key("bob")
    alice_id = peer_id_of(alice)
    max_age_ms = 600_000
    skew_ms = 15_000

    def token(key: Ed25519PrivateKey = alice, at: int = NOW - 1000, **kw: Any) -> str:
        return make_signal_token(key, now=at, **kw)

    valid = [
        {"name": "fresh", "peer_id": alice_id, "token": token()},
        {"name": "skew_edge", "peer_id": alice_id, "token": token(at=NOW + skew_ms)},
        {"name": "last_ms", "peer_id": alice_id, "token": token(at=NOW - max_age_ms + 1)},
        {"name": "other_key", "peer_id": peer_id_of(bob), "token": token(bob)},
    ]
    for case in valid:
        case["issued_at"] = int(case["token"].split(".")[1])
    base = token()
    prefix, issued, pk, sig = base.split(".")
    zero_sig = b64url_encode(bytes(64))
    invalid: list[dict[str, Any]] = []

    def bad(name: str, value: Any, error: str, peer_id: str = alice_id) -> None:
        invalid.append({"name": name, "peer_id": peer_id, "token": value, "error": error})

    bad("not_a_string", 12345, "bad_token")
    bad("empty", "", "bad_token")
    bad("random_peerjs_token", "x8kq2m4wz1", "bad_token")
    bad("three_parts", f"{prefix}.{issued}.{pk}", "bad_token")
    bad("five_parts", f"{base}.x", "bad_token")
    bad("unknown_prefix", f"s2.{issued}.{pk}.{sig}", "bad_token")
    bad("issued_at_leading_zero", f"{prefix}.0{issued}.{pk}.{sig}", "bad_token")
    bad("issued_at_negative", f"{prefix}.-{issued}.{pk}.{sig}", "bad_token")
    bad("issued_at_beyond_safe_integer", f"{prefix}.9007199254740992.{pk}.{sig}", "bad_token")
    bad("pk_padded", f"{prefix}.{issued}.{pk}=.{sig}", "bad_token")
    bad("pk_not_base64url", f"{prefix}.{issued}.+{pk[1:]}.{sig}", "bad_token")
    bad("pk_wrong_length", f"{prefix}.{issued}.{b64url_encode(bytes(31))}.{sig}", "bad_token")
    bad("sig_wrong_length", f"{prefix}.{issued}.{pk}.{sig[:-4]}", "bad_token")
    bad("too_long", base + "A" * 40, "bad_token")
    bad("key_of_another_id", token(bob), "peer_mismatch")
    bad("issued_in_the_future", token(at=NOW + skew_ms + 1), "not_yet_valid")
    bad("expired", token(at=NOW - max_age_ms), "expired")
    bad("zero_signature", f"{prefix}.{issued}.{pk}.{zero_sig}", "bad_signature")
    bad("issued_at_changed_after_signing", f"{prefix}.{NOW - 999}.{pk}.{sig}", "bad_signature")
    bad("signed_for_another_id", token(peer_id=peer_id_of(bob)), "bad_signature")
    return {
        "description": "Signal tokens s1.<issued_at>.<pk>.<sig> (domain swarm/signal-token/v1) "
        "over JCS({issued_at, peer_id}). Verify each for `peer_id` at `now` with `max_age_ms` "
        "and `skew_ms`; valid ones must verify, invalid ones must fail with `error`.",
        "now": NOW,
        "max_age_ms": max_age_ms,
        "skew_ms": skew_ms,
        "signing_input_hex": signing_input(
            "swarm/signal-token/v1", {"issued_at": NOW - 1000, "peer_id": alice_id}
        ).hex(),
        "valid": valid,
        "invalid": invalid,
    }


def files() -> dict[str, Any]:
    return {
        "keys.json": {
            "description": "Ed25519 keys from 32-byte seeds; "
            "peer_id = 'p' + base32(SHA-256(pk)[:20]); x25519 = the identity's X25519 public key, "
            "from HKDF-SHA256(ikm=seed, info='swarm/xkey/v1', L=32) as the private key.",
            "keys": key_vectors(),
        },
        "canonical.json": {
            "description": "RFC 8785 canonical JSON: signing input = domain + '\\n' + JCS(body).",
            "cases": canonical_vectors(),
        },
        "tickets.json": ticket_vectors(),
        "capsules.json": capsule_vectors(),
        "signal_tokens.json": signal_token_vectors(),
        "chunks.json": content_vectors.chunk_vectors(),
        "manifests.json": content_vectors.manifest_vectors(),
        "keywrap.json": content_vectors.keywrap_vectors(),
        "posts.json": post_vectors.post_vectors(),
        "transfer.json": transfer_vectors.transfer_vectors(),
        "shares.json": share_vectors.share_vectors(),
        "shard.json": shard_vectors.shard_vectors(),
        "mail.json": mail_vectors.mail_vectors(),
        "meshsig.json": meshsig_vectors.meshsig_vectors(),
        "supernode.json": supernode_vectors.supernode_vectors(),
        "dht.json": dht_vectors.dht_vectors(),
        "repair.json": repair_vectors.repair_vectors(),
        "dialpath.json": dialpath_vectors.dialpath_vectors(),
        "errand.json": errand_vectors(),
    }


def errand_vectors() -> dict[str, Any]:
    """What a dial is for, from a DataConnection's PeerJS metadata (docs/protocol.md
    "Errands"). Written out by hand: ``errand`` is what both mirrors must read (None: an
    ordinary dial)."""
    manifest = "M" * 42 + "A"
    content = {"errand": "content", "manifest": manifest}
    cases: list[tuple[str, Any, Any]] = [
        ("dht", {"errand": "dht"}, {"errand": "dht"}),
        ("content", content, content),
        ("content, keys in the other order", {"manifest": manifest, "errand": "content"}, content),
        ("no metadata", None, None),
        ("a string", "dht", None),
        ("a list", ["dht"], None),
        ("an empty object", {}, None),
        ("an unknown errand", {"errand": "chat"}, None),
        ("dht with another field", {"errand": "dht", "extra": 1}, None),
        ("content without its manifest", {"errand": "content"}, None),
        ("content, manifest too short", {"errand": "content", "manifest": "short"}, None),
        (
            "content, manifest not a digest id (last character)",
            {"errand": "content", "manifest": "M" * 42 + "B"},
            None,
        ),
        ("content, manifest a number", {"errand": "content", "manifest": 7}, None),
        ("content with another field", {**content, "more": True}, None),
        ("errand not a string", {"errand": 1}, None),
    ]
    return {
        "description": "errand_of(metadata) -> errand (null: an ordinary dial)",
        "cases": [{"name": n, "metadata": m, "errand": e} for n, m, e in cases],
    }


def render(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def main() -> int:
    check = "--check" in sys.argv
    stale = []
    for name, data in files().items():
        path = OUT / name
        text = render(data)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print("stale vectors (run scripts/make_vectors.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
