"""Shared vectors for mail (tests/vectors/mail.json, written by scripts/make_vectors.py):
signed swarm/mail/v1 mails and acks made with fixed keys and fixed ephemeral keys, and
messages with one fault each and the code they fail with."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from peers.protocol.encoding import b64url_decode, b64url_encode, peer_id_for_key
from peers.protocol.envelope import DOMAIN_SHARD, sign
from peers.protocol.keywrap import x25519_public
from peers.protocol.mail import (
    DOMAIN_MAIL,
    mail_context,
    make_ack,
    make_mail,
)
from peers.protocol.seal import seal

NOW = 1_800_000_000_000
DAY = 86_400_000
LABELS = ("alice", "bob", "carol")


def seeded_key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def x25519_key(label: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(hashlib.sha256(f"{label}/x25519".encode()).digest())


def eph_seed(label: str) -> bytes:
    return hashlib.sha256(f"eph/mail/{label}".encode()).digest()


def eph(label: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(eph_seed(label))


def mail_id(label: str) -> str:
    return b64url_encode(hashlib.sha256(f"mail id {label}".encode()).digest()[:16])


K = {label: seeded_key(label) for label in LABELS}
X = {label: x25519_key(label) for label in LABELS}
ID = {label: peer_id_for_key(k.public_key().public_bytes_raw()) for label, k in K.items()}
XPUB = {label: x25519_public(x) for label, x in X.items()}
DATA: Any = {"manifest": "m" * 43, "wrapped": {"v": 1, "to": "p" + "a" * 32}, "n": [1, -2, None]}


def mail_args(name: str, **kw: Any) -> dict[str, Any]:
    """What makes the mail named ``name`` (labels for peers; see ``mail``)."""
    args: dict[str, Any] = {
        "to": "bob",
        "topic": "wrapped-key",
        "data": DATA,
        "created_at": NOW - 1000,
        "id": mail_id(name),
        "ephemeral": name,
    }
    args.update(kw)
    return args


def mail(signer: str, args: dict[str, Any]) -> dict[str, Any]:
    extra = {"expires_at": args["expires_at"]} if "expires_at" in args else {}
    return make_mail(
        K[signer],
        to=ID[args["to"]],
        to_key=XPUB[args["to"]],
        topic=args["topic"],
        data=args["data"],
        created_at=args["created_at"],
        id=args["id"],
        ephemeral=eph(args["ephemeral"]),
        **extra,
    )


def resign(envelope: dict[str, Any], signer: str, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(envelope["body"])
    for name, value in changes.items():
        key = "from" if name == "from_" else name
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return sign(DOMAIN_MAIL, body, K[signer])


def keys() -> dict[str, Any]:
    return {
        label: {
            "seed_hex": hashlib.sha256(label.encode()).hexdigest(),
            "peer_id": ID[label],
            "x25519_seed_hex": hashlib.sha256(f"{label}/x25519".encode()).hexdigest(),
            "x25519": b64url_encode(XPUB[label]),
        }
        for label in LABELS
    }


def valid_vectors() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add_mail(name: str, signer: str = "alice", **kw: Any) -> None:
        args = mail_args(name, **kw)
        case = {
            "name": name,
            "signer": signer,
            "make": {**args, "ephemeral_seed_hex": eph_seed(args["ephemeral"]).hex()},
            "envelope": mail(signer, args),
            "open_as": args["to"],
        }
        del case["make"]["ephemeral"]
        out.append(case)

    add_mail("mail")
    add_mail("mail_default_expiry_string_data", data="hello", topic="note")
    add_mail("mail_null_data_one_char_topic", data=None, topic="x")
    add_mail("mail_one_minute", expires_at=NOW - 1000 + 60_000)
    add_mail("mail_max_content", data="z" * (1024 - len('{"data":"","topic":"t"}')), topic="t")
    add_mail("mail_skew_edge", created_at=NOW + 15_000)
    add_mail("mail_expires_in_1ms", created_at=NOW - 7 * DAY + 1)
    add_mail("mail_from_bob_to_carol", signer="bob", to="carol")
    for name, ids, acked_at in [
        ("ack", [mail_id("mail")], NOW),
        ("ack_64_ids", [mail_id(f"n{i}") for i in range(64)], NOW - 1000),
        ("ack_skew_edge", [mail_id("a"), mail_id("b")], NOW + 15_000),
    ]:
        envelope = make_ack(K["bob"], to=ID["alice"], ids=ids, acked_at=acked_at)
        out.append(
            {
                "name": name,
                "signer": "bob",
                "make": {"to": "alice", "ids": ids, "acked_at": acked_at},
                "envelope": envelope,
            }
        )
    return out


def invalid_vectors() -> list[dict[str, Any]]:
    base = mail("alice", mail_args("mail"))
    ack = make_ack(K["bob"], to=ID["alice"], ids=[mail_id("a"), mail_id("b")], acked_at=NOW)
    out: list[dict[str, Any]] = []

    def bad(name: str, envelope: Any, error: str, **kw: Any) -> None:
        out.append({"name": name, "envelope": envelope, **kw, "error": error})

    bad("unsigned_body_only", {"body": base["body"]}, "bad_envelope")
    bad("not_an_object", [base], "bad_envelope")
    wrong_v = copy.deepcopy(base)
    wrong_v["v"] = 2
    bad("envelope_version_2", wrong_v, "bad_envelope")
    forged = copy.deepcopy(base)
    forged["body"]["created_at"] += 1
    bad("forged_body_changed_after_signing", forged, "bad_signature")
    zero = copy.deepcopy(base)
    zero["sig"] = b64url_encode(bytes(64))
    bad("forged_zero_signature", zero, "bad_signature")
    bad("signed_with_shard_domain", sign(DOMAIN_SHARD, base["body"], K["alice"]), "bad_signature")
    bad("too_large_over_4096_bytes", resign(base, "alice", pad="x" * 4000), "mail_too_large")
    bad("ack_too_large", resign(ack, "bob", pad="x" * 4000), "mail_too_large")
    bad("body_v_2", resign(base, "alice", v=2), "bad_mail")
    bad("unknown_kind", resign(base, "alice", kind="letter"), "bad_mail")
    bad("unknown_field", resign(base, "alice", topic="note"), "bad_mail")
    bad("missing_sealed", resign(base, "alice", sealed=None), "bad_mail")
    bad("mail_with_ack_fields", resign(ack, "bob", kind="mail"), "bad_mail")
    bad("from_not_a_peer_id", resign(base, "alice", from_="alice"), "bad_mail")
    bad("to_not_a_peer_id", resign(base, "alice", to="bob"), "bad_recipient")
    bad("to_a_number", resign(base, "alice", to=7), "bad_recipient")
    bad("to_is_from", resign(base, "alice", to=ID["alice"]), "bad_recipient")
    bad("ack_to_is_from", resign(ack, "bob", to=ID["bob"]), "bad_recipient")
    bad("id_15_bytes", resign(base, "alice", id=b64url_encode(bytes(15))), "bad_mail")
    bad("id_not_canonical", resign(base, "alice", id="AAAAAAAAAAAAAAAAAAAAAB"), "bad_mail")
    created = base["body"]["created_at"]
    bad("expires_at_created_at", resign(base, "alice", expires_at=created), "bad_mail")
    bad("lives_7_days_and_1ms", resign(base, "alice", expires_at=created + 7 * DAY + 1), "bad_mail")
    bad("created_at_string", resign(base, "alice", created_at=str(created)), "bad_mail")
    bad("created_at_negative", resign(base, "alice", created_at=-1), "bad_mail")
    bad("sealed_too_short", resign(base, "alice", sealed=b64url_encode(bytes(48))), "bad_mail")
    bad("sealed_too_long", resign(base, "alice", sealed=b64url_encode(bytes(1073))), "bad_mail")
    bad("sealed_not_base64url", resign(base, "alice", sealed="a+b/"), "bad_mail")
    bad("from_is_not_the_signer", resign(base, "carol"), "peer_mismatch")
    bad("ack_signed_by_its_receiver", resign(ack, "alice"), "peer_mismatch")
    bad(
        "created_in_future", mail("alice", mail_args("f", created_at=NOW + 15_001)), "not_yet_valid"
    )
    bad("expired", mail("alice", mail_args("e", created_at=NOW - 7 * DAY)), "expired")
    bad("expired_by_its_own_expiry", mail("alice", mail_args("e2", expires_at=NOW)), "expired")
    bad("ack_in_future", resign(ack, "bob", acked_at=NOW + 15_001), "not_yet_valid")
    bad("ack_expired_after_7_days", resign(ack, "bob", acked_at=NOW - 7 * DAY), "expired")
    ids = ack["body"]["ids"]
    bad("ack_no_ids", resign(ack, "bob", ids=[]), "bad_mail")
    many = sorted(mail_id(f"n{i}") for i in range(65))
    bad("ack_65_ids", resign(ack, "bob", ids=many), "bad_mail")
    bad("ack_unsorted_ids", resign(ack, "bob", ids=list(reversed(ids))), "bad_mail")
    bad("ack_duplicate_ids", resign(ack, "bob", ids=[ids[0], ids[0]]), "bad_mail")
    bad("ack_id_not_a_mail_id", resign(ack, "bob", ids=[ids[0], "x"]), "bad_mail")
    bad("ack_ids_not_a_list", resign(ack, "bob", ids=ids[0]), "bad_mail")
    bad("ack_with_mail_fields", resign(base, "alice", kind="ack"), "bad_mail")
    return out


def sealed_content(
    content: bytes, *, sender: str = "alice", to: str = "bob", mid: str, label: str
) -> str:
    return b64url_encode(
        seal(
            content,
            recipient=ID[to],
            recipient_key=XPUB[to],
            context=mail_context(ID[sender], mid),
            ephemeral=eph(label),
        )
    )


def open_invalid_vectors() -> list[dict[str, Any]]:
    base = mail("alice", mail_args("mail"))
    mid = base["body"]["id"]
    tampered = bytearray(b64url_decode(base["body"]["sealed"], field="sealed"))
    tampered[40] ^= 1
    out: list[dict[str, Any]] = []

    def bad(name: str, envelope: dict[str, Any], error: str, open_as: str = "bob") -> None:
        out.append({"name": name, "envelope": envelope, "open_as": open_as, "error": error})

    bad(
        "tampered_sealed",
        resign(base, "alice", sealed=b64url_encode(bytes(tampered))),
        "decrypt_failed",
    )
    to_carol = mail("alice", mail_args("mail", to="carol"))
    bad(
        "sealed_to_another_key",
        resign(base, "alice", sealed=to_carol["body"]["sealed"]),
        "decrypt_failed",
    )
    other_id = mail("alice", mail_args("other", id=mail_id("other")))
    bad(
        "sealed_for_another_id",
        resign(base, "alice", sealed=other_id["body"]["sealed"]),
        "decrypt_failed",
    )
    bad("opened_by_another_peer", base, "wrong_recipient", open_as="carol")

    def content(name: str, data: bytes) -> None:
        sealed = sealed_content(data, mid=mid, label=name)
        bad(name, resign(base, "alice", sealed=sealed), "bad_mail")

    content("content_bad_topic", b'{"data":1,"topic":"Wrapped"}')
    content("content_topic_33_chars", b'{"data":1,"topic":"' + b"a" * 33 + b'"}')
    content("content_not_json", b"hello")
    content("content_not_canonical", b'{"topic":"note","data":1}')
    content("content_extra_field", b'{"data":1,"topic":"note","x":2}')
    content("content_a_list", b'["note",1]')
    content("content_float", b'{"data":1.5,"topic":"note"}')
    content("content_not_utf8", b'{"data":"\xff","topic":"note"}')
    return out


def make_invalid_vectors() -> list[dict[str, Any]]:
    return [
        {"name": "content_over_1024_bytes", **_plain(data="z" * 1002), "error": "mail_too_large"},
        {"name": "topic_uppercase", **_plain(topic="Note"), "error": "bad_mail"},
        {"name": "topic_empty", **_plain(topic=""), "error": "bad_mail"},
        {"name": "topic_starts_with_digit", **_plain(topic="1note"), "error": "bad_mail"},
        {"name": "to_is_the_signer", **_plain(to="alice"), "error": "bad_recipient"},
        {"name": "id_not_a_mail_id", **_plain(id="abc"), "error": "bad_mail"},
    ]


def _plain(**kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"signer": "alice", "to": "bob", "topic": "note", "data": 1}
    args.update(kw)
    return args


def mail_vectors() -> dict[str, Any]:
    return {
        "description": "Mail (docs/protocol.md 'Mail'). Keys: Ed25519 from seed_hex, X25519 from "
        "x25519_seed_hex. `valid`: each parses at `now` (an ack's id is the base64url SHA-256 "
        "of the envelope's canonical JSON); `signer` with `make` (peers as labels, the "
        "ephemeral key from ephemeral_seed_hex) makes the same envelope; mails open as "
        "`open_as` to {topic, data} of `make`. `invalid`: parsing at `now` fails with `error`. "
        "`open_invalid`: parses, then opening as `open_as` fails with `error`. "
        "`make_invalid`: making a mail (created_at = now, fresh id unless `id`) fails "
        "with `error`.",
        "now": NOW,
        "keys": keys(),
        "valid": valid_vectors(),
        "invalid": invalid_vectors(),
        "open_invalid": open_invalid_vectors(),
        "make_invalid": make_invalid_vectors(),
    }
