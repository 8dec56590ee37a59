"""Shared vectors for supernodes (tests/vectors/supernode.json, written by
scripts/make_vectors.py): signed swarm/supernode/v1 adverts made with fixed keys, adverts with
one fault each and their codes, the seat count, elections over given advert bodies and
SupernodeView scenarios on a fake clock. Every expected election and publication is written
here by hand (docs/protocol.md "Supernodes"), not computed by the code under test."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.encoding import b64url_encode, peer_id_for_key
from peers.protocol.envelope import DOMAIN_GOSSIP, sign
from peers.protocol.supernode import DOMAIN_SUPERNODE, sign_advert

NOW = 1_800_000_000_000
COMMUNITY = "main"
LABELS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "sp")
NUMBERED = tuple(f"n{i:02d}" for i in range(20))


def seeded_key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


K = {label: seeded_key(label) for label in (*LABELS, *NUMBERED)}
ID = {label: peer_id_for_key(k.public_key().public_bytes_raw()) for label, k in K.items()}


def body(
    label: str,
    *,
    issued_at: int = NOW - 1000,
    ttl: int = 150_000,
    uptime: int = 3600,
    up_kbps: int = 2000,
    conns: int = 8,
    swarm: int = 10,
    opt_in: bool = True,
    superpeer: bool = False,
    elected: bool = False,
    community: str = COMMUNITY,
) -> dict[str, Any]:
    """An advert body of ``label``; the defaults score 60 + 40 + 80 = 180."""
    return {
        "v": 1,
        "peer_id": ID[label],
        "community": community,
        "issued_at": issued_at,
        "expires_at": issued_at + ttl,
        "uptime": uptime,
        "up_kbps": up_kbps,
        "conns": conns,
        "swarm": swarm,
        "opt_in": opt_in,
        "superpeer": superpeer,
        "elected": elected,
    }


def keys() -> dict[str, Any]:
    return {
        label: {"seed_hex": hashlib.sha256(label.encode()).hexdigest(), "peer_id": ID[label]}
        for label in K
    }


def resign(envelope: dict[str, Any], signer: str, **changes: Any) -> dict[str, Any]:
    b = copy.deepcopy(envelope["body"])
    b.update(changes)
    return sign(DOMAIN_SUPERNODE, b, K[signer])


def valid_vectors() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(name: str, signer: str, b: dict[str, Any]) -> None:
        out.append({"name": name, "signer": signer, "envelope": sign_advert(K[signer], b)})

    add("browser", "bob", body("bob"))
    add("superpeer_new", "sp", body("sp", uptime=0, up_kbps=0, conns=0, superpeer=True))
    add("opted_out", "carol", body("carol", opt_in=False))
    add("seat_holder", "dave", body("dave", elected=True, swarm=1000))
    add(
        "largest_values",
        "erin",
        body(
            "erin",
            uptime=0xFFFFFFFF,
            up_kbps=10_000_000,
            conns=1024,
            swarm=10_000_000,
            elected=True,
            superpeer=True,
            ttl=300_000,
        ),
    )
    add("skew_edge", "frank", body("frank", issued_at=NOW + 15_000))
    add("expires_in_1ms", "grace", body("grace", issued_at=NOW - 149_999))
    add("other_hyphenated_community", "bob", body("bob", community="book-club-2"))
    return out


def invalid_vectors() -> list[dict[str, Any]]:
    base = sign_advert(K["bob"], body("bob"))
    out: list[dict[str, Any]] = []

    def bad(name: str, envelope: Any, error: str) -> None:
        out.append({"name": name, "envelope": envelope, "error": error})

    bad("not_an_object", [base], "bad_envelope")
    bad("unsigned_body_only", {"body": base["body"]}, "bad_envelope")
    forged = copy.deepcopy(base)
    forged["body"]["conns"] = 32
    bad("forged_body_changed_after_signing", forged, "bad_signature")
    zero = copy.deepcopy(base)
    zero["sig"] = b64url_encode(bytes(64))
    bad("forged_zero_signature", zero, "bad_signature")
    bad("signed_with_gossip_domain", sign(DOMAIN_GOSSIP, base["body"], K["bob"]), "bad_signature")
    bad("too_large_padding_field", resign(base, "bob", pad="z" * 800), "advert_too_large")
    bad("v_2", resign(base, "bob", v=2), "bad_advert")
    bad("unknown_field", resign(base, "bob", region="eu"), "bad_advert")
    missing = copy.deepcopy(base["body"])
    del missing["swarm"]
    bad("missing_field", sign(DOMAIN_SUPERNODE, missing, K["bob"]), "bad_advert")
    bad("peer_id_not_key_bound", resign(base, "bob", peer_id="bob"), "bad_advert")
    bad("community_invalid", resign(base, "bob", community="Main"), "bad_advert")
    bad("issued_at_a_string", resign(base, "bob", issued_at=str(NOW)), "bad_advert")
    bad("expires_at_not_after_issued_at", resign(base, "bob", expires_at=NOW - 1000), "bad_advert")
    bad("uptime_negative", resign(base, "bob", uptime=-1), "bad_advert")
    bad("up_kbps_over_10_gbit", resign(base, "bob", up_kbps=10_000_001), "bad_advert")
    bad("conns_1025", resign(base, "bob", conns=1025), "bad_advert")
    bad("swarm_0", resign(base, "bob", swarm=0), "bad_advert")
    bad("opt_in_a_string", resign(base, "bob", opt_in="yes"), "bad_advert")
    bad("elected_an_integer", resign(base, "bob", elected=1), "bad_advert")
    bad("superpeer_opted_out", resign(base, "bob", superpeer=True, opt_in=False), "bad_advert")
    bad("seat_holder_opted_out", resign(base, "bob", elected=True, opt_in=False), "bad_advert")
    bad("peer_id_is_not_the_signer", resign(base, "carol"), "peer_mismatch")
    bad("wrong_community", sign_advert(K["bob"], body("bob", community="other")), "wrong_community")
    bad("ttl_300001_ms", resign(base, "bob", expires_at=NOW - 1000 + 300_001), "ttl_too_long")
    future = sign_advert(K["bob"], body("bob", issued_at=NOW + 15_001))
    bad("in_the_future", future, "not_yet_valid")
    bad("expired", sign_advert(K["bob"], body("bob", issued_at=NOW - 150_000)), "expired")
    return out


def sign_invalid_vectors() -> list[dict[str, Any]]:
    def case(name: str, b: dict[str, Any], error: str, signer: str = "bob") -> dict[str, Any]:
        return {"name": name, "signer": signer, "body": b, "error": error}

    return [
        case("someone_elses_peer_id", body("carol"), "peer_mismatch"),
        case("ttl_too_long", body("bob", ttl=300_001), "ttl_too_long"),
        case("conns_out_of_range", body("bob", conns=-1), "bad_advert"),
        case("superpeer_opted_out", body("bob", superpeer=True, opt_in=False), "bad_advert"),
    ]


def seat_vectors() -> list[list[int]]:
    # max(2, ceil(sqrt(n) / 4)), at most 16: the smallest k with 16 k^2 >= n.
    return [
        [0, 2],
        [1, 2],
        [64, 2],
        [65, 3],
        [100, 3],
        [144, 3],
        [145, 4],
        [1000, 8],
        [1024, 8],
        [1025, 9],
        [4096, 16],
        [4097, 16],
        [10_000_000, 16],
    ]


def fnv1a32(text: str) -> int:
    """FNV-1a, 32 bits (the reference algorithm, written out here on its own)."""
    h = 2166136261
    for byte in text.encode("ascii"):
        h ^= byte
        h = (h * 16777619) % 2**32
    return h


def tiebreak_vectors() -> list[dict[str, Any]]:
    epoch = NOW // 86_400_000
    return [
        {"peer_id": ID[label], "epoch": e, "value": fnv1a32(f"{e}:{ID[label]}")}
        for label in ("alice", "bob")
        for e in (0, epoch)
    ]


def election_vectors() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def case(name: str, adverts: list[dict[str, Any]], seats: int, expect: list[str]) -> None:
        out.append(
            {
                "name": name,
                "now": NOW,
                "adverts": adverts,
                "seats": seats,
                "expect": [ID[label] for label in expect],
            }
        )

    five = [
        body("alice"),  # 180
        body("bob", conns=9),  # 190
        body("carol", conns=10),  # 200
        body("dave", conns=7),  # 170
        body("erin", conns=5),  # 150
    ]
    case("top_two_of_five", five, 2, ["carol", "bob"])
    sp = body("sp", uptime=0, up_kbps=0, conns=0, superpeer=True)  # 1000, eligible as it is
    case("superpeer_with_nothing_beats_browsers", [*five, sp], 2, ["sp", "carol"])
    big = {"uptime": 21_600, "up_kbps": 10_000, "conns": 32}  # 880 points
    case(
        "ineligible_adverts_do_not_count",
        [
            body("frank", opt_in=False, **big),
            body("grace", **{**big, "uptime": 299}),
            body("alice", **{**big, "conns": 2}),
            body("bob", conns=9),
            body("dave", conns=7),
        ],
        2,
        ["bob", "dave"],
    )
    incumbent = body("alice", conns=6, elected=True)  # 160, counts 200
    case(
        "a_seat_holder_keeps_it_within_a_quarter",
        [incumbent, body("bob", uptime=3540, conns=10), body("carol")],  # 199, 180
        2,
        ["alice", "bob"],
    )
    case(
        "a_seat_holder_loses_it_beyond_a_quarter",
        [
            incumbent,
            body("bob", uptime=3660, conns=10),  # 201
            body("carol", uptime=3720, conns=10),  # 202
        ],
        2,
        ["carol", "bob"],
    )
    equal = ["alice", "bob", "carol", "dave", "erin"]
    epoch = NOW // 86_400_000
    by_tie = sorted(equal, key=lambda label: (fnv1a32(f"{epoch}:{ID[label]}"), ID[label]))
    case("equal_scores_by_tiebreak", [body(label) for label in equal], 2, by_tie[:2])
    estimates = [100, 100, 100, 100, 100, 100, 1, 1, 1, 10_000_000]
    ten = [body(NUMBERED[i], conns=3 + i, swarm=s) for i, s in enumerate(estimates)]
    # Lower median of the estimates: 100 -> 3 seats: the three with most connections.
    case("seats_from_the_lower_median_estimate", ten, 3, ["n09", "n08", "n07"])
    twenty = [body(NUMBERED[i], conns=3 + i, swarm=10_000_000) for i in range(20)]
    case("at_most_16_seats", twenty, 16, [NUMBERED[i] for i in range(19, 3, -1)])
    case(
        "expired_adverts_do_not_count",
        [body("alice"), body("bob", conns=9), body("carol", conns=10, issued_at=NOW - 150_000)],
        2,
        ["bob", "alice"],
    )
    case("no_adverts", [], 2, [])
    case("only_ineligible", [body("alice", opt_in=False), body("bob", conns=0)], 2, [])
    return out


# --- SupernodeView scenarios; every expectation written by hand ---


def recv(at: int, b: dict[str, Any], expect: str = "ok") -> dict[str, Any]:
    return {"op": "receive", "at": at, "advert": b, "expect": expect}


def elected(at: int, labels: list[str]) -> dict[str, Any]:
    return {"op": "elected", "at": at, "expect": [ID[label] for label in labels]}


def due(at: int, expect: dict[str, Any] | None) -> dict[str, Any]:
    """``advert_due`` at ``at``; a body is then received as the adapter would."""
    return {"op": "due", "at": at, "expect": expect}


def local(**state: Any) -> dict[str, Any]:
    return {"op": "local", "state": state}


def deadline(at: int, expect: int) -> dict[str, Any]:
    return {"op": "deadline", "at": at, "expect": expect}


ALICE = {"uptime": 3600, "up_kbps": 2000, "conns": 8, "swarm": 10}


def scenario_vectors() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def scenario(
        name: str, steps: list[dict[str, Any]], self_id: str | None = None, **view: Any
    ) -> None:
        config = {"now": NOW - 100_000, "self": ID[self_id] if self_id else None, **view}
        out.append({"name": name, "view": config, "steps": steps})

    bob = body("bob", conns=9, elected=True)  # 190, counts 237
    carol = body("carol", elected=True)  # 180, counts 225
    dave = body("dave", conns=12)  # 220
    three = [recv(NOW, bob), recv(NOW, carol), recv(NOW, dave)]
    scenario(
        "hysteresis_keeps_seat_holders_until_beaten_by_a_quarter",
        [
            *three,
            elected(NOW, ["bob", "carol"]),
            recv(NOW + 4000, body("dave", conns=13, issued_at=NOW + 4000)),  # 230 > 225
            elected(NOW + 4000, ["bob", "dave"]),
        ],
    )
    early_bob = body("bob", conns=9, elected=True, issued_at=NOW - 100_000)
    scenario(
        "reelection_when_a_seat_holders_advert_expires",
        [
            recv(NOW, early_bob),
            recv(NOW, carol),
            recv(NOW, dave),
            elected(NOW + 49_999, ["bob", "carol"]),
            elected(NOW + 50_000, ["carol", "dave"]),
        ],
    )
    scenario(
        "reelection_when_a_seat_holder_degrades",
        [
            *three,
            # Still claims its seat, but 140 points count 175 < 220.
            recv(NOW + 4000, body("bob", conns=4, elected=True, issued_at=NOW + 4000)),
            elected(NOW + 4000, ["carol", "dave"]),
            # carol falls below 3 connections: no longer eligible at all.
            recv(NOW + 4000, body("carol", conns=2, elected=True, issued_at=NOW + 4000)),
            elected(NOW + 4000, ["dave", "bob"]),
        ],
    )
    scenario(
        "a_seat_holder_that_opts_out_leaves_at_once",
        [
            *three,
            recv(NOW + 4000, body("bob", conns=9, opt_in=False, issued_at=NOW + 4000)),
            elected(NOW + 4000, ["carol", "dave"]),
        ],
    )
    scenario(
        "replays_bursts_and_strangers_are_refused",
        [
            recv(NOW, body("bob")),
            recv(NOW, body("bob"), "replay"),
            recv(NOW, body("bob", issued_at=NOW + 3999), "rate_limited"),
            recv(NOW, body("bob", issued_at=NOW + 4000)),
            recv(NOW, body("bob", issued_at=NOW - 500), "replay"),
            recv(NOW, body("carol", community="other"), "wrong_community"),
            recv(NOW, body("carol", issued_at=NOW - 150_000), "expired"),
            elected(NOW, ["bob"]),
        ],
    )
    scenario(
        "a_full_table_keeps_the_best",
        [
            recv(NOW, body("bob")),  # 180
            recv(NOW, body("carol", conns=9, issued_at=NOW - 140_000)),  # 190, until NOW+10 s
            recv(NOW, body("dave", conns=2)),  # not eligible
            recv(NOW, body("erin", conns=10)),  # 200: dave (ineligible) makes room
            elected(NOW, ["erin", "carol"]),
            recv(NOW, body("frank", conns=5), "table_full"),  # 150 < bob's 180
            recv(NOW, body("grace", conns=20)),  # 300: bob makes room
            elected(NOW, ["grace", "erin"]),
            recv(NOW + 10_000, body("frank", conns=5, issued_at=NOW + 9000)),  # carol expired
            elected(NOW + 10_000, ["grace", "erin"]),
        ],
        max_adverts=3,
    )
    s = NOW + 16_400  # alice's 180 points: a new candidate waits (1000 - 180) x 20 ms
    scenario(
        "own_advert_candidate_then_seat_then_republish_degrade_and_opt_out",
        [
            recv(NOW, bob),
            due(NOW, None),  # no local numbers yet
            local(**ALICE),
            due(NOW, None),  # a candidate (2nd of 2, below 2 x 2 seats), waiting its turn
            deadline(NOW, s),
            due(s, body("alice", issued_at=s)),
            elected(s, ["bob", "alice"]),
            due(s + 4999, None),
            deadline(s + 4999, s + 5000),
            due(s + 5000, body("alice", issued_at=s + 5000, elected=True)),  # takes its seat
            due(s + 10_000, None),
            deadline(s + 10_000, s + 65_000),
            due(s + 65_000, body("alice", issued_at=s + 65_000, elected=True)),
            local(**{**ALICE, "conns": 5}),  # 150 of 180: not a quarter down
            due(s + 70_000, None),
            local(**{**ALICE, "conns": 3}),  # 130: more than a quarter down
            due(s + 70_000, body("alice", issued_at=s + 70_000, conns=3, elected=True)),
            local(**{**ALICE, "conns": 3, "opt_in": False}),
            due(s + 74_999, None),
            due(s + 75_000, body("alice", issued_at=s + 75_000, conns=3, opt_in=False)),
            elected(s + 75_000, ["bob"]),
            due(s + 80_000, None),
            due(s + 300_000, None),
        ],
        self_id="alice",
    )
    sp = {"uptime": 0, "up_kbps": 0, "conns": 0, "swarm": 1, "superpeer": True, "opt_in": False}
    sp_body = {"uptime": 0, "up_kbps": 0, "conns": 0, "swarm": 1, "superpeer": True}
    scenario(
        "a_new_view_claims_no_seat_before_its_warmup",
        [
            local(**sp),
            due(NOW, body("alice", issued_at=NOW, **sp_body)),  # opt_in forced for a super-peer
            elected(NOW, ["alice"]),
            due(NOW + 59_999, None),
            deadline(NOW + 10_000, NOW + 60_000),
            due(NOW + 60_000, body("alice", issued_at=NOW + 60_000, **sp_body)),
            deadline(NOW + 60_000, NOW + 65_000),
            due(NOW + 74_999, None),
            due(NOW + 75_000, body("alice", issued_at=NOW + 75_000, elected=True, **sp_body)),
        ],
        self_id="alice",
        now=NOW,
    )
    strong = {"conns": 20}  # 300 points
    scenario(
        "quiet_while_outranked_by_twice_the_seats",
        [
            recv(NOW, body("bob", issued_at=NOW - 100_000, **strong)),
            recv(NOW, body("carol", issued_at=NOW - 100_000, **strong)),
            recv(NOW, body("dave", **strong)),
            recv(NOW, body("erin", **strong)),
            local(**ALICE),
            due(NOW, None),  # 5th: not below 2 x 2 seats
            deadline(NOW, NOW + 50_000),
            due(NOW + 50_000, None),  # bob and carol expired: 3rd, a candidate, waits its turn
            deadline(NOW + 50_000, NOW + 66_400),
            due(NOW + 66_400, body("alice", issued_at=NOW + 66_400)),
        ],
        self_id="alice",
    )
    return out


def supernode_vectors() -> dict[str, Any]:
    return {
        "description": "Supernodes (docs/protocol.md 'Supernodes'). Keys: Ed25519 from "
        "seed_hex. `valid`: each parses at `now` for community `main` (or its own) to its body, "
        "and signing the body with `signer` gives the same envelope. `invalid`: parsing at "
        "`now` for `main` fails with `error`. `sign_invalid`: signing fails with `error`. "
        "`seats`: [n, seats]. `tiebreak`: FNV-1a 32 of '<epoch>:<peer_id>'. `elections`: the "
        "advert bodies (unsigned: the rule works on checked adverts) elect `expect`, best "
        "first, with `seats` seats, at `now`. `scenarios`: a SupernodeView made at view.now "
        "for `main` with self view.self and max_adverts if given; steps: receive (expect 'ok' "
        "or the code), elected, due (advert_due: the body or null; a body is then received), "
        "local (set_local, snake_case; opt_in and superpeer default true and false), deadline "
        "(next_deadline). A new candidate waits stagger(score) = min(20 s, (1000 - score) x 20 ms) "
        "before its first advert.",
        "now": NOW,
        "community": COMMUNITY,
        "keys": keys(),
        "valid": valid_vectors(),
        "invalid": invalid_vectors(),
        "sign_invalid": sign_invalid_vectors(),
        "seats": seat_vectors(),
        "tiebreak": tiebreak_vectors(),
        "elections": election_vectors(),
        "scenarios": scenario_vectors(),
    }
