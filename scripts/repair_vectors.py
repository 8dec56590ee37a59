"""Shared vectors for repair by peers (tests/vectors/repair.json, written by
scripts/make_vectors.py): rendezvous scores, `repair` gossip data with faults and their codes,
and RepairCore scenarios on a fake clock (scripted inputs, exact decisions).

The scores are computed here by a second, plain implementation of the rule (FNV-1a 32 through
the MurmurHash3 finaliser, docs/replication.md "Repair by peers"), not by the code under
test. The scenarios use those scores only to cast who plays "self" (the peer ranked first,
third, ...); every expected decision is written by hand from the rules."""

from __future__ import annotations

import hashlib
from typing import Any

from peers.protocol.encoding import b64url_encode, peer_id_for_key

T0 = 1_800_000_000_000
WARMUP = 75_000
START = T0 + WARMUP  # first tick that may decide
CLAIM = 120_000
GRACE = 180_000
RETRY = 120_000
HOLD_TTL = 600_000
VOL_TTL = 150_000
MiB = 1 << 20


def _peer(label: str) -> str:
    seed = hashlib.sha256(label.encode()).digest()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pk = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    return peer_id_for_key(pk)


def _manifest(label: str) -> str:
    return b64url_encode(hashlib.sha256(f"manifest {label}".encode()).digest())


def score(manifest_id: str, peer_id: str) -> int:
    h = 2166136261
    for b in f"{manifest_id}/{peer_id}".encode():
        h ^= b
        h = (h * 16777619) % 2**32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) % 2**32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) % 2**32
    return h ^ (h >> 16)


P = {
    label: _peer(label)
    for label in [f"v{i}" for i in range(12)] + ["sp", "holder1", "holder2", "holder3"]
}
M = {label: _manifest(label) for label in ("a", "b", "c")}
VOLS = [f"v{i}" for i in range(6)]  # the volunteers of most scenarios


def ranked(mid: str, labels: list[str]) -> list[str]:
    return sorted(labels, key=lambda lab: (score(mid, P[lab]), P[lab]))


def ann(spare: int = 1 << 30, slots: int = 2, backfill_at: int = 0) -> dict[str, int]:
    return {"spare": spare, "slots": slots, "backfill_at": backfill_at}


def announce_all(labels: list[str], at: int, **kw: Any) -> list[dict[str, Any]]:
    return [
        {
            "op": "announce",
            "origin": P[lab],
            "data": ann(**kw),
            "issued_at": at,
            "now": at,
            "superpeer": False,
        }
        for lab in labels
    ]


def advert(holder: str, mid: str, chunks: int, keep: bool, now: int) -> dict[str, Any]:
    return {
        "op": "advert",
        "holder": P[holder],
        "id": mid,
        "chunks": chunks,
        "keep": keep,
        "now": now,
    }


def tick(
    now: int, fetch: list[str] | None = None, cancel: list[str] | None = None, live: bool = False
) -> dict[str, Any]:
    return {
        "op": "tick",
        "now": now,
        "expect": {"fetch": fetch or [], "cancel": cancel or [], "worker_live": live},
    }


def rtick(others: list[str], now: int, *args: Any, **kw: Any) -> list[dict[str, Any]]:
    """The other volunteers announce again at `now` (they live 150 s), then a tick."""
    return [*announce_all(others, now), tick(now, *args, **kw)]


def scenario(name: str, about: str, self_label: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "about": about, "self": P[self_label], "start": T0, "steps": steps}


def me(mid: str, rank: int, labels: list[str] | None = None) -> tuple[str, list[str]]:
    """The label ranked `rank` (0 = first) for `mid` among `labels`, and the others."""
    order = ranked(mid, labels or VOLS)
    return order[rank], [lab for lab in order if lab != order[rank]]


def base(
    mid: str, self_label: str, others: list[str], holders: int = 1, chunks: int = 4, size: int = MiB
) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = [
        {"op": "set_self", "opted_in": True, "spare": 1 << 30, "max_active": 2},
        {"op": "manifest", "id": mid, "chunk_count": chunks, "size": size, "target": None},
    ]
    steps += announce_all(others, T0 + 10_000)
    steps += [advert(f"holder{i + 1}", mid, chunks, True, T0 + 10_000) for i in range(holders)]
    return steps


def scenarios() -> list[dict[str, Any]]:
    a, b, c = M["a"], M["b"], M["c"]
    out = []

    first, others1 = me(a, 0)
    out.append(
        scenario(
            "warmup_then_first_ranked_fetches",
            "1 replica of 3; self ranks first of 6 volunteers: nothing during the "
            "warm-up, then fetch",
            first,
            [
                *base(a, first, others1),
                tick(T0 + 1_000),
                tick(START - 1),
                tick(START, [a]),
                tick(START + 5_000),
            ],
        )
    )

    second = me(a, 1)[0]
    third, others3 = me(a, 2)
    out.append(
        scenario(
            "second_ranked_fetches_third_waits",
            "need 2: the second-ranked fetches at once",
            second,
            [*base(a, second, me(a, 1)[1]), tick(START, [a])],
        )
    )
    out.append(
        scenario(
            "third_ranked_waits_for_claim_timeout",
            "need 2: the third-ranked waits one claim timeout (the set widens to 4), then fetches",
            third,
            [
                *base(a, third, others3),
                tick(START),
                *rtick(others3, START + CLAIM - 1),
                tick(START + CLAIM, [a]),
            ],
        )
    )
    out.append(
        scenario(
            "new_replica_restarts_the_claim_clock",
            "third-ranked; a replica appears just before the timeout: need 1, the "
            "clock restarts; the set "
            "widens to 2 after one timeout and to 3 (self) after two",
            third,
            [
                *base(a, third, others3),
                tick(START),
                advert("holder2", a, 4, True, START + CLAIM - 10),
                *rtick(others3, START + CLAIM - 5),
                tick(START + CLAIM),
                *rtick(others3, START + CLAIM - 5 + CLAIM),
                *rtick(others3, START + CLAIM - 5 + 2 * CLAIM - 1),
                tick(START + CLAIM - 5 + 2 * CLAIM, [a]),
            ],
        )
    )

    worker = {
        "op": "announce",
        "origin": P["sp"],
        "data": ann(backfill_at=START - 1_000),
        "issued_at": START - 1_000,
        "now": START - 1_000,
        "superpeer": True,
    }
    liar = {
        "op": "announce",
        "origin": P["v11"],
        "data": ann(backfill_at=START + 50_000),
        "issued_at": START,
        "now": START,
        "superpeer": False,
    }
    me_sp, others_sp = me(a, 0, [*VOLS, "sp", "v11"])
    others_sp = [lab for lab in others_sp if lab not in ("sp", "v11")]
    out.append(
        scenario(
            "worker_live_then_gone",
            "a super-peer saw a backfill run 1 s before: nobody repairs until the "
            "grace passes; a browser's claim is ignored",
            me_sp,
            [
                *base(a, me_sp, others_sp),
                worker,
                liar,
                tick(START, live=True),
                *rtick(others_sp, START - 1_000 + GRACE - 1, live=True),
                tick(START - 1_000 + GRACE, [a]),
            ],
        )
    )

    # Eligibility: the two ranked before self lack room or slots; one of them is already fetching.
    mid_rank, _ = me(a, 2)
    order = ranked(a, VOLS)
    poor, busy = order[0], order[1]
    rest = [lab for lab in order[3:]]
    out.append(
        scenario(
            "ineligible_volunteers_are_skipped",
            "ranked first has too little spare, second no slot: the third-ranked "
            "is first among eligible",
            mid_rank,
            [
                *base(a, mid_rank, rest, size=8 * MiB),
                {
                    "op": "announce",
                    "origin": P[poor],
                    "data": ann(spare=8 * MiB - 1),
                    "issued_at": T0,
                    "now": T0,
                    "superpeer": False,
                },
                {
                    "op": "announce",
                    "origin": P[busy],
                    "data": ann(slots=0),
                    "issued_at": T0,
                    "now": T0,
                    "superpeer": False,
                },
                tick(START, [a]),
            ],
        )
    )
    out.append(
        scenario(
            "a_volunteer_fetching_keeps_its_rank",
            "ranked second has no slot left but holds a partial copy: it keeps its "
            "place, the third-ranked waits",
            mid_rank,
            [
                *base(a, mid_rank, rest),
                {
                    "op": "announce",
                    "origin": P[poor],
                    "data": ann(),
                    "issued_at": T0,
                    "now": T0,
                    "superpeer": False,
                },
                {
                    "op": "announce",
                    "origin": P[busy],
                    "data": ann(slots=0),
                    "issued_at": T0,
                    "now": T0,
                    "superpeer": False,
                },
                advert(busy, a, 2, False, T0 + 20_000),
                tick(START),
            ],
        )
    )
    out.append(
        scenario(
            "own_budget_too_small",
            "self ranks first but its spare is below the size: not a candidate, "
            "the next two are chosen",
            first,
            [
                *base(a, first, me(a, 0)[1], size=2 * MiB),
                {"op": "set_self", "opted_in": True, "spare": 2 * MiB - 1, "max_active": 2},
                tick(START),
            ],
        )
    )
    out.append(
        scenario(
            "not_opted_in",
            "a page that did not opt in never fetches",
            first,
            [
                *base(a, first, me(a, 0)[1]),
                {"op": "set_self", "opted_in": False, "spare": 1 << 30, "max_active": 2},
                tick(START),
                tick(START + 10 * CLAIM),
            ],
        )
    )
    out.append(
        scenario(
            "no_complete_source",
            "only a partial copy exists: nothing to copy from",
            first,
            [
                *base(a, first, me(a, 0)[1], holders=0),
                advert("holder1", a, 3, True, T0 + 10_000),
                tick(START),
            ],
        )
    )
    out.append(
        scenario(
            "cached_copy_is_a_source_not_a_replica",
            "a complete copy with keep false is a source: 0 replicas, need 3",
            third,
            [
                *base(a, third, others3, holders=0),
                advert("holder1", a, 4, False, T0 + 10_000),
                tick(START, [a]),
            ],
        )
    )
    out.append(
        scenario(
            "target_met_cancels_own_fetch",
            "self fetches; two other copies complete meanwhile: 3 replicas, the "
            "own fetch is dropped",
            first,
            [
                *base(a, first, others1),
                tick(START, [a]),
                advert("holder2", a, 4, True, START + 1_000),
                tick(START + 1_000),
                advert("holder3", a, 4, True, START + 2_000),
                tick(START + 2_000, cancel=[a]),
                tick(START + 3_000),
            ],
        )
    )
    out.append(
        scenario(
            "holder_gone_reopens_the_gap",
            "3 replicas; one holder leaves: self ranked first fetches",
            first,
            [
                *base(a, first, others1, holders=3),
                tick(START),
                {"op": "holder_gone", "holder": P["holder3"]},
                tick(START + 1, [a]),
            ],
        )
    )
    out.append(
        scenario(
            "adverts_expire",
            "3 replicas last heard at T0+10 s: at T0+10 s+holding TTL they expire; "
            "the holders' refresh at the "
            "same time keeps one",
            first,
            [
                *base(a, first, others1, holders=3),
                advert("holder1", a, 4, True, T0 + HOLD_TTL),
                tick(T0 + 10_000 + HOLD_TTL - 1),
                {
                    "op": "announce",
                    "origin": P[others1[0]],
                    "data": ann(),
                    "issued_at": T0 + HOLD_TTL,
                    "now": T0 + HOLD_TTL,
                    "superpeer": False,
                },
                tick(T0 + 10_000 + HOLD_TTL, [a]),
            ],
        )
    )
    out.append(
        scenario(
            "failed_fetch_backs_off",
            "self ranked first fails: it leaves the ranking for the retry time, then fetches again",
            first,
            [
                *base(a, first, others1),
                tick(START, [a]),
                {"op": "fetch_ended", "id": a, "ok": False, "now": START + 5_000},
                tick(START + 5_000),
                tick(START + 5_000 + RETRY - 1),
                tick(START + 5_000 + RETRY, [a]),
            ],
        )
    )
    # Several manifests: at most max_active at once, fewest replicas first.
    all3 = [lab for lab in [f"v{i}" for i in range(12)] if lab != "v0"]
    urgent = [
        {"op": "set_self", "opted_in": True, "spare": 1 << 30, "max_active": 2},
        *[
            {"op": "manifest", "id": m, "chunk_count": 1, "size": 1000, "target": 32}
            for m in (a, b, c)
        ],
        advert("holder1", a, 1, True, T0),
        advert("holder2", a, 1, True, T0),
        advert("holder1", b, 1, True, T0),
        advert("holder1", c, 1, True, T0),
        advert("holder2", c, 1, True, T0),
        advert("holder3", c, 1, True, T0),
        *announce_all(all3, T0),
    ]
    out.append(
        scenario(
            "max_active_most_urgent_first",
            "target 32, 12 volunteers: self is chosen for all three; two slots go "
            "to the fewest replicas (b: 1, "
            "a: 2); b done and advertised: c gets the slot",
            "v0",
            [
                *urgent,
                tick(START, sorted([b, a], key=lambda m: m != b)),
                tick(START + 1),
                {"op": "fetch_ended", "id": b, "ok": True, "now": START + 2},
                advert("v0", b, 1, True, START + 2),
                tick(START + 2, [c]),
            ],
        )
    )
    out.append(
        scenario(
            "spare_is_reserved_by_own_fetches",
            "spare 2500, three manifests of 1000: two fetches reserve 2000, the third does not fit",
            "v0",
            [
                *urgent,
                {"op": "set_self", "opted_in": True, "spare": 2500, "max_active": 3},
                tick(START, sorted([b, a], key=lambda m: m != b)),
            ],
        )
    )
    return out


def announcement_cases() -> dict[str, Any]:
    good = [
        ann(),
        ann(spare=0, slots=0, backfill_at=0),
        ann(spare=2**53 - 1, slots=64, backfill_at=2**53 - 1),
    ]
    bad = [
        None,
        [],
        "x",
        {},
        {"spare": 1, "slots": 1},
        {**ann(), "extra": 1},
        ann(spare=-1),
        ann(slots=65),
        {**ann(), "spare": 1.5},
        {**ann(), "slots": True},
        ann(backfill_at=2**53),
        {**ann(), "backfill_at": "0"},
    ]
    return {"valid": good, "invalid": [{"data": d, "code": "bad_body"} for d in bad]}


def error_cases() -> list[dict[str, Any]]:
    mid = M["a"]
    return [
        {
            "op": "manifest",
            "id": "short",
            "chunk_count": 1,
            "size": 1,
            "target": None,
            "code": "bad_repair",
        },
        {
            "op": "manifest",
            "id": mid,
            "chunk_count": 0,
            "size": 1,
            "target": None,
            "code": "bad_repair",
        },
        {
            "op": "manifest",
            "id": mid,
            "chunk_count": 1,
            "size": -1,
            "target": None,
            "code": "bad_repair",
        },
        {
            "op": "manifest",
            "id": mid,
            "chunk_count": 1,
            "size": 1,
            "target": 33,
            "code": "bad_repair",
        },
        {
            "op": "advert",
            "holder": "pnope",
            "id": mid,
            "chunks": 1,
            "keep": True,
            "now": T0,
            "code": "bad_repair",
        },
        {
            "op": "advert",
            "holder": P["v1"],
            "id": mid,
            "chunks": -1,
            "keep": True,
            "now": T0,
            "code": "bad_repair",
        },
        {
            "op": "advert",
            "holder": P["v1"],
            "id": mid,
            "chunks": 1,
            "keep": 1,
            "now": T0,
            "code": "bad_repair",
        },
        {"op": "set_self", "opted_in": 1, "spare": 0, "max_active": 1, "code": "bad_repair"},
        {"op": "set_self", "opted_in": True, "spare": -1, "max_active": 1, "code": "bad_repair"},
        {"op": "set_self", "opted_in": True, "spare": 0, "max_active": 65, "code": "bad_repair"},
        {
            "op": "announce",
            "origin": P["v1"],
            "data": {"spare": 1},
            "issued_at": T0,
            "now": T0,
            "superpeer": False,
            "code": "bad_body",
        },
        {
            "op": "announce",
            "origin": "x",
            "data": ann(),
            "issued_at": T0,
            "now": T0,
            "superpeer": False,
            "code": "bad_repair",
        },
        {"op": "worker_seen", "at": -5, "code": "bad_repair"},
        {"op": "holder_gone", "holder": "", "code": "bad_repair"},
    ]


def repair_vectors() -> dict[str, Any]:
    pairs = [(m, p) for m in M.values() for p in list(P.values())[:6]]
    return {
        "description": "Repair by peers (docs/replication.md): rendezvous "
        "scores, repair gossip data, "
        "RepairCore scenarios (default config, times in ms); each step's expect is exact.",
        "scores": [{"manifest": m, "peer": p, "score": score(m, p)} for m, p in pairs],
        "announcements": announcement_cases(),
        "errors": {"self": P["v0"], "start": T0, "steps": error_cases()},
        "scenarios": scenarios(),
    }
