"""Shared vectors for guardians and recovery (tests/vectors/shard.json, written by
scripts/make_vectors.py): sealed values, the signed swarm/shard/v1 messages with one fault
each, verification codes, and step-by-step scenarios for the guardian, owner and recovery
cores whose expectations are written here by hand (not recorded from the Python cores).

Shares are opaque to these cores; the scenarios use a stand-in format that the tests of both
languages implement (see `STAND_IN`), never the SLIP-39 module.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from peers.protocol.encoding import b64url_decode, b64url_encode, peer_id_for_key
from peers.protocol.envelope import DOMAIN_POST, DOMAIN_SHARD, sign
from peers.protocol.keywrap import wrap_file_key, x25519_public
from peers.protocol.seal import seal
from peers.protocol.shard import (
    RecoverRequest,
    Share,
    make_receipt,
    make_recover_request,
    make_refuse,
    make_release,
    make_revoke,
    make_share,
    parse_kind,
    request_id,
    share_context,
    verification_code,
)

NOW = 1_800_000_000_000
DAY = 86_400_000
LABELS = ("alice", "bob", "carol", "dave", "erin", "frank", "temp", "temp2")
SET_A = b64url_encode(hashlib.sha256(b"set a").digest()[:16])
SET_B = b64url_encode(hashlib.sha256(b"set b").digest()[:16])
SET_C = b64url_encode(hashlib.sha256(b"set c").digest()[:16])
SET_D = b64url_encode(hashlib.sha256(b"set d").digest()[:16])
TEXT = "academic acid acne acquire acrobat activity actress adapt adequate adjust"
STAND_IN = (
    "Stand-in shares for the scenarios: 'swarm test share <k> <index> <seed hex> <check>', "
    "check = first 8 hex digits of SHA-256 of the text before ' <check>'. check_share raises "
    "code 'bad_checksum' when check is wrong; combine(texts) raises 'bad_digest' unless the "
    "texts are k (their own k) with distinct indices and one seed, and returns that seed."
)
SMALL_ORDER_KEY = bytes(32)


def seeded_key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def x25519_key(label: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(hashlib.sha256(f"{label}/x25519".encode()).digest())


def eph(label: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(hashlib.sha256(f"eph/{label}".encode()).digest())


K = {label: seeded_key(label) for label in LABELS}
X = {label: x25519_key(label) for label in LABELS}
ID = {label: peer_id_for_key(k.public_key().public_bytes_raw()) for label, k in K.items()}
XPUB = {label: x25519_public(x) for label, x in X.items()}


def stand_in(k: int, index: int, seed: bytes) -> str:
    text = f"swarm test share {k} {index} {seed.hex()}"
    return f"{text} {hashlib.sha256(text.encode()).hexdigest()[:8]}"


def share(
    owner: str = "alice", guardian: str = "bob", *, text: str = TEXT, **kw: Any
) -> dict[str, Any]:
    issued_at = kw.get("issued_at", NOW - 1000)
    args: dict[str, Any] = {
        "guardian": ID[guardian],
        "guardian_key": XPUB[guardian],
        "set_id": SET_A,
        "index": 1,
        "k": 2,
        "n": 3,
        "share": text,
        "issued_at": issued_at,
        "expires_at": issued_at + 730 * DAY,
        "ephemeral": eph(f"{owner}-{guardian}"),
    }
    args.update(kw)
    return make_share(K[owner], **args)


def request(temp: str = "temp", *, issued_at: int = NOW - 1000, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"for_peer": ID["alice"], "issued_at": issued_at}
    args["expires_at"] = issued_at + DAY
    args.update(kw)
    return make_recover_request(K[temp], XPUB[temp], **args)


def parsed_request(envelope: dict[str, Any]) -> RecoverRequest:
    return parse_kind(envelope, RecoverRequest, now=NOW)


def release(
    guardian: str = "bob", req: dict[str, Any] | None = None, *, text: str = TEXT, **kw: Any
) -> dict[str, Any]:
    args: dict[str, Any] = {"set_id": SET_A, "index": 1, "k": 2, "n": 3, "share": text}
    args.update(kw)
    args.setdefault("ephemeral", eph(f"release-{guardian}-{args['index']}"))
    return make_release(K[guardian], parsed_request(req or request()), **args)


def resign(envelope: dict[str, Any], signer: str, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(envelope["body"])
    for name, value in changes.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return sign(DOMAIN_SHARD, body, K[signer])


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


def seal_vectors() -> dict[str, Any]:
    valid = []
    for name, data, context in [
        ("one_byte", b"\x00", "c"),
        ("share_text", TEXT.encode(), share_context(ID["alice"], SET_A, 1)),
        ("max_1024_bytes", bytes(i % 251 for i in range(1024)), "h\u00e9llo \u2603"),
        ("empty_context", b"hello", ""),
    ]:
        sealed = seal(
            data,
            recipient=ID["bob"],
            recipient_key=XPUB["bob"],
            context=context,
            ephemeral=eph(name),
        )
        valid.append(
            {
                "name": name,
                "data_hex": data.hex(),
                "context": context,
                "recipient": "bob",
                "ephemeral_seed_hex": hashlib.sha256(f"eph/{name}".encode()).hexdigest(),
                "sealed_hex": sealed.hex(),
            }
        )
    base = bytes.fromhex(valid[1]["sealed_hex"])
    context = valid[1]["context"]
    flipped = bytearray(base)
    flipped[40] ^= 1
    wrapped = wrap_file_key(
        bytes(range(32)),
        file_id=SET_A,
        recipient=ID["bob"],
        recipient_key=XPUB["bob"],
        ephemeral=eph("wrap"),
    )
    as_sealed = b64url_decode(wrapped["epk"], field="epk") + b64url_decode(
        wrapped["ct"], field="ct"
    )
    key_sealed = seal(
        bytes(range(32)),
        recipient=ID["bob"],
        recipient_key=XPUB["bob"],
        context=f"swarm/keywrap/v1\n{SET_A}",
        ephemeral=eph("as-wrap"),
    )

    def bad(name: str, sealed: bytes, error: str, **kw: Any) -> dict[str, Any]:
        case = {"name": name, "sealed_hex": sealed.hex(), "recipient": "bob", "context": context}
        case.update(kw)
        case["error"] = error
        return case

    open_invalid = [
        bad("another_recipient_id", base, "decrypt_failed", recipient_id=ID["carol"]),
        bad("another_recipient_key", base, "decrypt_failed", recipient="carol"),
        bad(
            "another_context", base, "decrypt_failed", context=share_context(ID["alice"], SET_A, 2)
        ),
        bad("flipped_byte", bytes(flipped), "decrypt_failed"),
        bad("overhead_only", base[:48], "bad_sealed"),
        bad("over_1072_bytes", bytes(1073), "bad_sealed"),
        bad("small_order_ephemeral", SMALL_ORDER_KEY + base[32:], "bad_sealed"),
        bad(
            "a_wrapped_file_key",
            as_sealed,
            "decrypt_failed",
            context=f"swarm/keywrap/v1\n{SET_A}",
        ),
    ]
    seal_invalid = [
        {"name": "empty", "data_hex": "", "recipient": "bob", "error": "bad_sealed"},
        {"name": "1025_bytes", "data_hex": "00" * 1025, "recipient": "bob", "error": "bad_sealed"},
        {
            "name": "small_order_key",
            "data_hex": "00",
            "recipient": "bob",
            "recipient_key_hex": SMALL_ORDER_KEY.hex(),
            "error": "bad_key",
        },
        {
            "name": "recipient_not_a_peer_id",
            "data_hex": "00",
            "recipient": "bob",
            "recipient_id": "bob",
            "error": "bad_sealed",
        },
    ]
    as_wrapped = {
        "v": 1,
        "alg": "x25519-hkdf-sha256-aes256gcm",
        "file_id": SET_A,
        "to": ID["bob"],
        "epk": b64url_encode(key_sealed[:32]),
        "ct": b64url_encode(key_sealed[32:]),
    }
    return {
        "valid": valid,
        "open_invalid": open_invalid,
        "seal_invalid": seal_invalid,
        "as_wrapped_key": {"wrapped": as_wrapped, "recipient": "bob", "error": "decrypt_failed"},
    }


def message_vectors() -> dict[str, Any]:
    req = request()

    def eph_hex(label: str) -> str:
        return hashlib.sha256(f"eph/{label}".encode()).hexdigest()

    zoo = " ".join(["zoo"] * 33)
    sharing = {"signer": "alice", "ephemeral_seed_hex": eph_hex("alice-bob")}
    valid = [
        {"name": "share", "envelope": share(), "open_as": "bob", "text": TEXT, **sharing},
        {
            "name": "share_max_n_and_lifetime",
            "envelope": share(index=16, k=16, n=16, expires_at=NOW - 1000 + 3650 * DAY),
            "open_as": "bob",
            "text": TEXT,
            **sharing,
        },
        {
            "name": "share_33_words",
            "envelope": share(text=zoo),
            "open_as": "bob",
            "text": zoo,
            **sharing,
        },
        {
            "name": "share_skew_edge",
            "envelope": share(issued_at=NOW + 15_000),
            "open_as": "bob",
            "text": TEXT,
            **sharing,
        },
        {
            "name": "receipt",
            "envelope": make_receipt(K["bob"], parse_kind(share(), Share, now=NOW), held_at=NOW),
            "signer": "bob",
        },
        {
            "name": "revoke",
            "envelope": make_revoke(K["alice"], set_id=SET_A, issued_at=NOW),
            "signer": "alice",
        },
        {"name": "recover_req", "envelope": req, "id": request_id(req["body"]), "signer": "temp"},
        {
            "name": "release",
            "envelope": release(),
            "open_as": "temp",
            "text": TEXT,
            "signer": "bob",
            "ephemeral_seed_hex": eph_hex("release-bob-1"),
            "request": req,
        },
        {
            "name": "refuse",
            "envelope": make_refuse(K["bob"], parsed_request(req)),
            "signer": "bob",
            "request": req,
        },
    ]
    base = share()
    invalid: list[dict[str, Any]] = []

    def bad(name: str, envelope: Any, error: str, **kw: Any) -> None:
        invalid.append({"name": name, "envelope": envelope, **kw, "error": error})

    forged = copy.deepcopy(base)
    forged["body"]["index"] = 2
    bad("forged_body_changed_after_signing", forged, "bad_signature")
    bad("signed_with_post_domain", sign(DOMAIN_POST, base["body"], K["alice"]), "bad_signature")
    wrong_v = copy.deepcopy(base)
    wrong_v["v"] = 2
    bad("envelope_version_2", wrong_v, "bad_envelope")
    bad("not_an_object", [base], "bad_envelope")
    padded = resign(base, "alice", note="x" * 4000)
    bad("oversized_over_4096_bytes", padded, "shard_too_large")
    bad("unknown_kind", resign(base, "alice", kind="gift"), "bad_shard")
    bad("kind_pinned_to_receipt", base, "unexpected_kind", kind="receipt")
    bad("unknown_field", resign(base, "alice", color="red"), "bad_shard")
    bad("missing_sealed", resign(base, "alice", sealed=None), "bad_shard")
    bad("k_above_n", resign(base, "alice", k=4), "bad_shard")
    bad("k_1", resign(base, "alice", k=1), "bad_shard")
    bad("n_17", resign(base, "alice", n=17, k=2), "bad_shard")
    bad("index_0", resign(base, "alice", index=0), "bad_shard")
    bad("index_above_n", resign(base, "alice", index=4), "bad_shard")
    bad("index_string", resign(base, "alice", index="1"), "bad_shard")
    bad("set_not_16_bytes", resign(base, "alice", set=b64url_encode(bytes(15))), "bad_shard")
    bad("guardian_not_a_peer_id", resign(base, "alice", guardian="bob"), "bad_shard")
    bad("owner_is_guardian", resign(base, "alice", guardian=ID["alice"]), "bad_shard")
    bad("sealed_too_short", resign(base, "alice", sealed=b64url_encode(bytes(48))), "bad_shard")
    bad("sealed_not_base64url", resign(base, "alice", sealed="a+b/"), "bad_shard")
    bad(
        "expires_before_issued",
        resign(base, "alice", expires_at=base["body"]["issued_at"]),
        "bad_shard",
    )
    bad("owner_is_not_the_signer", resign(base, "carol"), "peer_mismatch")
    bad("expired", share(issued_at=NOW - 2000, expires_at=NOW), "expired")
    bad("not_yet_valid", share(issued_at=NOW + 15_001), "not_yet_valid")
    bad("ttl_too_long", share(expires_at=NOW - 1000 + 3650 * DAY + 1), "ttl_too_long")
    receipt = make_receipt(K["bob"], parse_kind(base, Share, now=NOW), held_at=NOW)
    bad("receipt_signed_by_owner", resign(receipt, "alice"), "peer_mismatch")
    bad("receipt_held_in_future", resign(receipt, "bob", held_at=NOW + 15_001), "not_yet_valid")
    revoke = make_revoke(K["alice"], set_id=SET_A, issued_at=NOW)
    bad("revoke_signed_by_guardian", resign(revoke, "bob"), "peer_mismatch")
    bad("revoke_issued_in_future", resign(revoke, "alice", issued_at=NOW + 15_001), "not_yet_valid")
    bad("request_temp_not_signer", resign(req, "carol"), "peer_mismatch")
    bad("request_for_itself", resign(req, "temp", **{"for": ID["temp"]}), "bad_shard")
    bad(
        "request_small_order_key",
        resign(req, "temp", x25519=b64url_encode(SMALL_ORDER_KEY)),
        "bad_key",
    )
    bad("request_key_31_bytes", resign(req, "temp", x25519=b64url_encode(bytes(31))), "bad_key")
    bad("request_expired", request(issued_at=NOW - DAY), "expired")
    bad("request_lives_8_days", request(expires_at=NOW - 1000 + 8 * DAY), "ttl_too_long")
    rel = release()
    bad("release_signed_by_temp", resign(rel, "temp"), "peer_mismatch")
    bad("release_request_not_an_id", resign(rel, "bob", request="abc"), "bad_shard")
    bad("release_guardian_is_temp", resign(rel, "bob", guardian=ID["temp"]), "bad_shard")
    bad(
        "refuse_extra_field",
        resign(make_refuse(K["bob"], parsed_request(req)), "bob", why="no"),
        "bad_shard",
    )

    open_invalid = [
        {
            "name": "share_sealed_to_another_guardian",
            "envelope": resign(base, "alice", sealed=share(guardian="carol")["body"]["sealed"]),
            "open_as": "bob",
            "error": "decrypt_failed",
        },
        {
            "name": "share_sealed_for_another_index",
            "envelope": resign(base, "alice", sealed=share(index=2)["body"]["sealed"]),
            "open_as": "bob",
            "error": "decrypt_failed",
        },
        {
            "name": "share_opened_by_someone_else",
            "envelope": base,
            "open_as": "carol",
            "error": "wrong_recipient",
        },
        {
            "name": "share_text_not_words",
            "envelope": resign(
                base,
                "alice",
                sealed=b64url_encode(
                    seal(
                        b"two  spaces",
                        recipient=ID["bob"],
                        recipient_key=XPUB["bob"],
                        context=share_context(ID["alice"], SET_A, 1),
                        ephemeral=eph("not-words"),
                    )
                ),
            ),
            "open_as": "bob",
            "error": "bad_share",
        },
        {
            "name": "release_sealed_to_another_request_key",
            "envelope": resign(rel, "bob", sealed=release(req=request("temp2"))["body"]["sealed"]),
            "open_as": "temp",
            "error": "decrypt_failed",
        },
    ]
    return {"valid": valid, "invalid": invalid, "open_invalid": open_invalid}


def code_vectors() -> list[dict[str, Any]]:
    out = []
    for label in ("temp", "temp2"):
        req = request(label)
        rid = request_id(req["body"])
        out.append({"request": rid, "code": verification_code(rid)})
    return out


def guardian_scenario() -> dict[str, Any]:
    """Bob guards Alice's and Carol's shares, with small limits (2 shares, 1 per owner)."""
    t = NOW
    a1 = share(set_id=SET_A, index=1, issued_at=t)
    b1 = share(set_id=SET_B, index=1, issued_at=t + 1000)
    c1 = share(set_id=SET_C, index=1, issued_at=t + 500)  # never held, older than B
    d1 = share(set_id=SET_D, index=1, issued_at=t + 3000)
    d2 = share(set_id=SET_D, index=2, issued_at=t + 3000)
    carol1 = share("carol", set_id=SET_A, index=1, issued_at=t)
    erin1 = share("erin", set_id=SET_A, index=1, issued_at=t)
    to_dave = share(guardian="dave", set_id=SET_D, index=3, issued_at=t + 3000)
    req = request(issued_at=t + 4000)
    req2 = request("temp2", issued_at=t + 4100)
    rid, rid2 = request_id(req["body"]), request_id(req2["body"])

    def receipt(env: dict[str, Any], at: int) -> dict[str, Any]:
        return make_receipt(K["bob"], parse_kind(env, Share, now=at), held_at=at)

    def held(*items: tuple[str, str, int]) -> list[list[Any]]:
        return [[ID[o], s, i] for o, s, i in items]

    steps = [
        {"op": "accept", "envelope": a1, "now": t + 10, "receipt": receipt(a1, t + 10)},
        {"op": "accept", "envelope": a1, "now": t + 20, "receipt": receipt(a1, t + 20)},
        {"op": "accept", "envelope": b1, "now": t + 1010, "receipt": receipt(b1, t + 1010)},
        {"op": "accept", "envelope": a1, "now": t + 1020, "error": "revoked_set"},
        {"op": "accept", "envelope": c1, "now": t + 1030, "error": "stale_set"},
        {"op": "accept", "envelope": to_dave, "now": t + 1040, "error": "wrong_recipient"},
        {"op": "accept", "envelope": carol1, "now": t + 1050, "receipt": receipt(carol1, t + 1050)},
        {"op": "accept", "envelope": erin1, "now": t + 1060, "error": "over_quota"},
        {"op": "held", "held": held(("alice", SET_B, 1), ("carol", SET_A, 1))},
        {
            "op": "revoke",
            "envelope": make_revoke(K["alice"], set_id=SET_B, issued_at=t + 2000),
            "now": t + 2010,
            "deleted": 1,
        },
        {"op": "accept", "envelope": b1, "now": t + 2020, "error": "revoked_set"},
        {"op": "request", "envelope": req, "now": t + 4010, "ignored": True},
        {"op": "accept", "envelope": d1, "now": t + 4020, "receipt": receipt(d1, t + 4020)},
        {"op": "accept", "envelope": d2, "now": t + 4030, "error": "over_quota"},
        {"op": "approve", "request": rid, "now": t + 4040, "error": "unknown_request"},
        {
            "op": "request",
            "envelope": req,
            "now": t + 4050,
            "code": verification_code(rid),
            "state": "pending",
        },
        {
            "op": "refuse",
            "request": rid,
            "now": t + 4060,
            "refuse": make_refuse(K["bob"], parsed_request(req)),
        },
        {"op": "approve", "request": rid, "now": t + 4070, "error": "unknown_request"},
        {
            "op": "request",
            "envelope": req,
            "now": t + 4080,
            "code": verification_code(rid),
            "state": "refused",
        },
        {
            "op": "request",
            "envelope": req2,
            "now": t + 4110,
            "code": verification_code(rid2),
            "state": "pending",
        },
        {
            "op": "approve",
            "request": rid2,
            "now": t + 4120,
            "releases": [{"to": "temp2", "set": SET_D, "index": 1, "k": 2, "n": 3, "text": TEXT}],
        },
        {
            "op": "receipts_for",
            "owner": ID["alice"],
            "now": t + 5000,
            "receipts": [receipt(d1, t + 5000)],
        },
        {"op": "approve", "request": rid2, "now": t + 4100 + DAY, "error": "expired"},
        {"op": "prune", "now": t + 730 * DAY + 1, "held": held(("alice", SET_D, 1))},
        {"op": "prune", "now": t + 3000 + 730 * DAY, "held": []},
    ]
    return {"limits": {"max_shares": 2, "max_per_owner": 1}, "guardian": "bob", "steps": steps}


def owner_scenario() -> dict[str, Any]:
    """Alice splits 2 of 3 (one share on paper), then again 2 of 2 to other guardians."""
    t = NOW
    s1 = share(guardian="bob", set_id=SET_A, index=1, issued_at=t)
    s1_dave = share(guardian="dave", set_id=SET_A, index=2, issued_at=t)
    s2_dave = share(guardian="dave", set_id=SET_B, index=1, k=2, n=2, issued_at=t + 1000)

    def receipt(env: dict[str, Any], guardian: str, at: int) -> dict[str, Any]:
        return make_receipt(K[guardian], parse_kind(env, Share, now=NOW), held_at=at)

    def row(peer: str, set_id: str, index: int, state: str, **kw: Any) -> dict[str, Any]:
        return {"peer_id": ID[peer], "set": set_id, "index": index, "state": state, **kw}

    steps = [
        {
            "op": "split",
            "guardians": ["bob", "dave", None],
            "shares": [stand_in(2, i, b"\x01" * 32) for i in (1, 2, 3)],
            "k": 2,
            "set": SET_A,
            "now": t,
            "out": [["bob", "share", SET_A, 1], ["dave", "share", SET_A, 2]],
        },
        {
            "op": "receive",
            "envelope": receipt(s1, "bob", t + 10),
            "now": t + 20,
            "state": "held",
        },
        {
            "op": "receive",
            "envelope": receipt(share(guardian="bob", set_id=SET_C), "bob", t + 30),
            "now": t + 40,
            "error": "stale_set",
        },
        {
            "op": "receive",
            "envelope": receipt(share(guardian="erin", set_id=SET_A, index=3), "erin", t + 30),
            "now": t + 40,
            "error": "set_mismatch",
        },
        {
            "op": "receive",
            "envelope": receipt(share(guardian="dave", set_id=SET_A, index=3), "dave", t + 30),
            "now": t + 40,
            "error": "set_mismatch",
        },
        {
            "op": "receive",
            "envelope": receipt(share("carol", guardian="bob", set_id=SET_A), "bob", t + 30),
            "now": t + 40,
            "error": "wrong_recipient",
        },
        {"op": "seen", "peer": "dave", "now": t + 50},
        {
            "op": "guardians",
            "rows": [
                row("bob", SET_A, 1, "held", held_at=t + 10, last_seen=t + 20),
                row("dave", SET_A, 2, "sent", held_at=None, last_seen=t + 50),
            ],
        },
        {"op": "outgoing_for", "peer": "bob", "out": []},
        {"op": "outgoing_for", "peer": "dave", "out": [["share", SET_A, 2]]},
        {
            "op": "split",
            "guardians": ["dave", "erin"],
            "shares": [stand_in(2, i, b"\x02" * 32) for i in (1, 2)],
            "k": 2,
            "set": SET_B,
            "now": t + 1000,
            "out": [
                ["dave", "share", SET_B, 1],
                ["erin", "share", SET_B, 2],
                ["bob", "revoke", SET_A, None],
                ["dave", "revoke", SET_A, None],
            ],
        },
        {
            "op": "guardians",
            "rows": [
                row("dave", SET_B, 1, "sent", held_at=None, last_seen=t + 50),
                row("erin", SET_B, 2, "sent", held_at=None, last_seen=None),
                row("bob", SET_A, 1, "revoked", held_at=t + 10, last_seen=t + 20),
            ],
        },
        {"op": "outgoing_for", "peer": "bob", "out": [["revoke", SET_A, None]]},
        {
            "op": "receive",
            "envelope": receipt(s1_dave, "dave", t + 1010),
            "now": t + 1020,
            "error": "stale_set",
        },
        {
            "op": "receive",
            "envelope": receipt(s2_dave, "dave", t + 1030),
            "now": t + 1040,
            "state": "held",
        },
        {"op": "prune", "now": t + 730 * DAY, "guardians": ["dave", "erin"]},
        {"op": "prune", "now": t + 1000 + 730 * DAY, "guardians": []},
    ]
    return {"owner": "alice", "lifetime_ms": 730 * DAY, "steps": steps}


def recovery_scenarios() -> list[dict[str, Any]]:
    seed = hashlib.sha256(b"alice").digest()  # alice's key seed: the identity to recover
    other = hashlib.sha256(b"bob").digest()
    req = request(issued_at=NOW - 1000)
    rid = request_id(req["body"])

    def rel(guardian: str, index: int, text: str, **kw: Any) -> dict[str, Any]:
        return release(guardian, req, index=index, text=text, **kw)

    other_request = request_id(request(issued_at=NOW - 2000)["body"])
    good = {i: stand_in(2, i, seed) for i in (1, 2, 3)}
    corrupted = good[3].replace("share 2 3", "share 2 4")  # checksum no longer matches
    lying = stand_in(2, 3, other)  # well formed, another seed
    progress = _progress_helper()
    basic = [
        {"envelope": rel("bob", 1, good[1]), "outcome": ["share", "bob", None], **progress(1)},
        {
            "envelope": release("dave", request("temp2"), index=2, text=good[2]),
            "outcome": ["dropped", None, "wrong_recipient"],
            **progress(1),
        },
        {
            "envelope": resign(rel("dave", 2, good[2]), "dave", request=other_request),
            "outcome": ["dropped", None, "wrong_request"],
            **progress(1),
        },
        {
            "envelope": rel("erin", 3, corrupted),
            "outcome": ["bad", "erin", "bad_checksum"],
            **progress(1, bad={"erin": "bad_checksum"}),
        },
        {
            "envelope": make_refuse(K["frank"], parsed_request(req)),
            "outcome": ["refused", "frank", None],
            **progress(1, bad={"erin": "bad_checksum"}, refused=["frank"]),
        },
        {
            "envelope": rel("erin", 3, good[3]),
            "outcome": ["dropped", "erin", "bad_checksum"],
            **progress(1, bad={"erin": "bad_checksum"}, refused=["frank"]),
        },
        {
            "envelope": rel("bob", 1, good[1], ephemeral=eph("again")),
            "outcome": ["duplicate", "bob", None],
            **progress(1, bad={"erin": "bad_checksum"}, refused=["frank"]),
        },
        {
            "envelope": rel("carol", 2, good[2], k=3),
            "outcome": ["bad", "carol", "set_mismatch"],
            **progress(1, bad={"erin": "bad_checksum", "carol": "set_mismatch"}, refused=["frank"]),
        },
        {
            "envelope": make_revoke(K["alice"], set_id=SET_A, issued_at=NOW),
            "outcome": ["dropped", None, "unexpected_kind"],
            **progress(1, bad={"erin": "bad_checksum", "carol": "set_mismatch"}, refused=["frank"]),
        },
        {
            "envelope": rel("dave", 2, good[2]),
            "outcome": ["share", "dave", None],
            **progress(
                2,
                state="recovered",
                bad={"erin": "bad_checksum", "carol": "set_mismatch"},
                refused=["frank"],
            ),
        },
        {
            "envelope": rel("erin", 3, good[3]),
            "outcome": ["dropped", None, "recovered"],
            **progress(
                2,
                state="recovered",
                bad={"erin": "bad_checksum", "carol": "set_mismatch"},
                refused=["frank"],
            ),
        },
    ]
    liar = [
        {"envelope": rel("bob", 1, good[1]), "outcome": ["share", "bob", None], **progress(1)},
        {
            "envelope": rel("carol", 3, lying),
            "outcome": ["share", "carol", None],
            **progress(2, reason="bad_digest"),
        },
        {
            "envelope": rel("dave", 2, good[2]),
            "outcome": ["share", "dave", None],
            **progress(3, state="recovered", bad={"carol": "bad_digest"}),
        },
    ]
    wrong_identity = [
        {
            "envelope": rel("bob", 1, stand_in(2, 1, other)),
            "outcome": ["share", "bob", None],
            **progress(1),
        },
        {
            "envelope": rel("dave", 2, stand_in(2, 2, other)),
            "outcome": ["share", "dave", None],
            **progress(2, reason="seed_mismatch"),
        },
    ]
    two_sets = [
        {"envelope": rel("bob", 1, good[1]), "outcome": ["share", "bob", None], **progress(1)},
        {
            "envelope": rel("dave", 1, stand_in(3, 1, seed), set_id=SET_B, k=3, n=3),
            "outcome": ["share", "dave", None],
            **progress(1),
        },
        {
            "envelope": rel("erin", 2, stand_in(3, 2, seed), set_id=SET_B, k=3, n=3),
            "outcome": ["share", "erin", None],
            **progress(2, need=3, set_id=SET_B),
        },
    ]
    scenarios = [
        ("basic", basic, seed),
        ("a_lying_guardian_is_named", liar, seed),
        ("shares_of_another_identity", wrong_identity, None),
        ("two_sets_never_mix", two_sets, None),
    ]
    return [
        {
            "name": name,
            "request": req,
            "request_id": rid,
            "temp": "temp",
            "steps": steps,
            "seed_hex": None if result is None else result.hex(),
        }
        for name, steps, result in scenarios
    ]


def _progress_helper() -> Any:
    def progress(
        have: int,
        *,
        state: str = "collecting",
        need: int = 2,
        set_id: str = SET_A,
        bad: dict[str, str] | None = None,
        refused: list[str] | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        return {
            "progress": {
                "state": state,
                "have": have,
                "need": need,
                "set": set_id,
                "bad": {ID[g]: code for g, code in (bad or {}).items()},
                "refused": [ID[g] for g in refused or []],
                "reason": reason,
            }
        }

    return progress


def shard_vectors() -> dict[str, Any]:
    return {
        "description": "Guardians and recovery (docs/protocol.md 'Guardians and recovery'). "
        "Keys: Ed25519 from seed_hex, X25519 from x25519_seed_hex. `seal`: seal data_hex to "
        "`recipient` with the ephemeral key from ephemeral_seed_hex and `context` (same bytes); "
        "each open_invalid case opened as `recipient` (its X25519 key; `recipient_id` overrides "
        "the peer id) fails with `error`. `messages`: parse at `now` (a case's `kind` pins the "
        "kind); valid ones with `open_as` open to `text`, and `signer` (with "
        "`ephemeral_seed_hex`, `text` and `request` where they apply) makes the same envelope "
        "from its body. `guardian`, `owner`, `recovery`: "
        "scenarios, each step's expectations written by hand. " + STAND_IN,
        "now": NOW,
        "keys": keys(),
        "seal": seal_vectors(),
        "codes": code_vectors(),
        "messages": message_vectors(),
        "guardian": guardian_scenario(),
        "owner": owner_scenario(),
        "recovery": recovery_scenarios(),
    }
