"""Shared vectors for the download scheduler.

For peers/protocol/transfer.py and static/swarm/protocol/transfer.js.

Each case is a script of events with the exact actions each step must produce, written by
hand from the policy in docs/protocol.md "Fetching a file" (not recorded from either core).
"""

from __future__ import annotations

from typing import Any

A, B, C, D = "pa", "pb", "pc", "pd"
CHUNK = 65_552  # bytes of a full encrypted chunk (64 KiB + the GCM tag)


def ask(peer: str, *indices: int) -> list[list[Any]]:
    return [["chunk_req", peer, i] for i in indices]


def step(at: int, event: list[Any], actions: list[list[Any]] | None = None, **state: Any) -> dict:
    out: dict[str, Any] = {"at": at, "event": event, "actions": actions or []}
    if state:
        out["state"] = state
    return out


def ok(peer: str, index: int) -> list[Any]:
    return ["chunk_accepted", peer, index, CHUNK]


def case(name: str, options: dict[str, Any], steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "options": options, "steps": steps}


def cases() -> list[dict[str, Any]]:
    return [
        case(
            "two holders share the work, lowest index first, within the windows",
            {"per_source": 2, "window": 3},
            [
                step(0, ["start", 6, []], phase="chunks", waiting=["no_holder", 0], deadline=1000),
                step(0, ["have", A, 6], ask(A, 0, 1), in_flight={A: [0, 1]}, waiting=None),
                step(1, ["have", B, 6], ask(B, 2), in_flight={A: [0, 1], B: [2]}),
                step(5, ok(A, 0), ask(A, 3), returns=True, held=1),
                step(6, ok(B, 2), ask(B, 4), in_flight={A: [1, 3], B: [4]}),
                # B lacks 4: 4 is pending again, B gets the next index it may hold.
                step(7, ["chunk_missing", B, 4], ask(B, 5), in_flight={A: [1, 3], B: [5]}),
                # A is now the faster source (two chunks in the rate window): it gets 4.
                step(8, ok(A, 1), ask(A, 4), in_flight={A: [3, 4], B: [5]}),
                step(9, ok(A, 3), [], returns=True),
                step(10, ok(A, 4), [], held=5),
                step(11, ok(B, 5), [["complete"]], phase="complete", held=6, deadline=None),
            ],
        ),
        case(
            "a reload asks only for the indices not held; a reload of a whole file completes",
            {},
            [
                step(0, ["start", 5, [0, 2, 4, 4, 9]], held=3, waiting=["no_holder", 0]),
                step(1, ["have", A, 5], ask(A, 1, 3), in_flight={A: [1, 3]}),
                step(2, ok(A, 1), [], held=4),
                step(3, ok(A, 3), [["complete"]], phase="complete"),
                step(4, ["chunk_lost", 2], ask(A, 2), phase="chunks", held=4),
            ],
        ),
        case(
            "a whole file held at start completes at once",
            {},
            [step(0, ["start", 3, [0, 1, 2]], [["complete"]], phase="complete", deadline=None)],
        ),
        case(
            "the manifest is asked of the most complete holder first; absent moves on",
            {},
            [
                step(0, ["start", None, []], phase="manifest", waiting=["no_holder", 0]),
                step(0, ["peer_opened", C], [], deadline=1000),
                step(10, ["have", A, 3], [["manifest_req", A]], waiting=None, deadline=1010),
                step(11, ["have", B, 5], []),
                step(20, ["manifest_absent", A], [["manifest_req", B]], in_flight={B: []}),
                step(30, ["manifest_ready", B, 4, [1]], ask(B, 0, 2, 3), phase="chunks", held=1),
            ],
        ),
        case(
            "without adverts connected peers are probed one at a time; bad manifests fail closed",
            {},
            [
                step(0, ["start", None, []]),
                step(0, ["peer_opened", C], []),
                step(0, ["peer_opened", D], [], deadline=1000),
                step(2000, ["tick"], [["manifest_req", C]], waiting=["no_holder", 0]),
                step(7000, ["tick"], [["manifest_req", D]], deadline=8000),
                step(
                    7010,
                    ["manifest_rejected", D, "bad_signature", "forged"],
                    [["penalize", D, "bad_signature", "forged"]],
                    waiting=["no_holder", 0],
                ),
                step(7020, ["have", D, 9], []),
                step(16999, ["tick"], []),
                step(17000, ["tick"], [["manifest_req", C]]),
                step(
                    17005,
                    ["manifest_ready", C, 2, []],
                    ask(C, 0, 1),
                    in_flight={C: [0, 1]},
                    waiting=None,
                ),
            ],
        ),
        case(
            "only bad manifests and a give-up timeout: failed with their code",
            {"give_up_after_ms": 10_000},
            [
                step(0, ["start", None, []]),
                step(0, ["have", A, 4], [["manifest_req", A]]),
                step(
                    5,
                    ["manifest_rejected", A, "manifest_mismatch", "not the id asked for"],
                    [["penalize", A, "manifest_mismatch", "not the id asked for"]],
                    waiting=["holders_gone", 5],
                    deadline=1005,
                ),
                step(10_004, ["tick"], [], deadline=10_005),
                step(
                    10_005,
                    ["tick"],
                    [
                        [
                            "failed",
                            "manifest_mismatch",
                            "every manifest received failed verification (manifest_mismatch)",
                        ]
                    ],
                    phase="failed",
                    deadline=None,
                ),
                step(10_006, ["have", B, 4], [], phase="failed"),
            ],
        ),
        case(
            "a give-up timeout: no_source after waiting that long",
            {"give_up_after_ms": 30_000},
            [
                step(0, ["start", 2, []], waiting=["no_holder", 0], deadline=1000),
                step(29_999, ["tick"], [], deadline=30_000),
                step(
                    30_000,
                    ["tick"],
                    [["failed", "no_source", "no peer could serve this file for 30 s"]],
                    phase="failed",
                ),
            ],
        ),
        case(
            "without a give-up timeout it waits as long as it takes and resumes with a holder",
            {},
            [
                step(0, ["start", 3, []]),
                step(0, ["have", A, 3], ask(A, 0, 1, 2)),
                step(10, ok(A, 0), [], returns=True),
                step(20, ["peer_closed", A], [], in_flight={}, waiting=["holders_gone", 20]),
                step(600_020, ["tick"], [], phase="chunks", waiting=["holders_gone", 20]),
                step(600_030, ["have", B, 3], ask(B, 1, 2), waiting=None),
                step(600_040, ok(B, 1), []),
                step(600_041, ok(B, 2), [["complete"]], phase="complete", held=3),
            ],
        ),
        case(
            "a reload with nobody advertising probes peers as they open; one that answers serves",
            {},
            [
                step(0, ["start", 2, []], waiting=["no_holder", 0]),
                step(2500, ["peer_opened", C], [["manifest_req", C]], waiting=["no_holder", 0]),
                step(2510, ["manifest_absent", C], [], waiting=["no_holder", 0]),
                step(2600, ["peer_opened", D], [["manifest_req", D]]),
                step(2610, ["manifest_ready", D, 2, []], ask(D, 0, 1), waiting=None),
                step(2620, ["chunk_missing", D, 0], [], in_flight={D: [1]}),
                step(2630, ok(D, 1), [], waiting=["holders_gone", 2630]),
            ],
        ),
        case(
            "timed-out requests go elsewhere; a late answer counts, its duplicate does not",
            {"per_source": 2, "request_timeout_ms": 1_000},
            [
                step(0, ["start", 4, []]),
                step(0, ["have", A, 4], ask(A, 0, 1)),
                step(0, ["have", B, 4], ask(B, 2, 3), deadline=1000),
                step(100, ok(B, 2), [], returns=True),
                # A was silent: two strikes (of three), asked last; B answered since: none.
                step(1000, ["tick"], [*ask(B, 0, 1), *ask(A, 3)], in_flight={A: [3], B: [0, 1]}),
                step(1500, ok(A, 1), [], returns=True, in_flight={A: [3], B: [0]}),
                step(1600, ok(B, 1), [], returns=False, held=2),
                step(2000, ["tick"], [*ask(B, 0), *ask(A, 3)], in_flight={A: [3], B: [0]}),
            ],
        ),
        case(
            "a silent source is dropped, its late answers ignored; a fresh advert brings it back",
            {"per_source": 2, "request_timeout_ms": 1_000},
            [
                step(0, ["start", 3, []]),
                step(0, ["have", A, 3], ask(A, 0, 1)),
                step(1000, ["tick"], ask(A, 0, 1)),
                step(
                    2000,
                    ["tick"],
                    [["dropped", A, "timeout", "4 requests timed out"]],
                    in_flight={},
                    waiting=["holders_gone", 2000],
                ),
                step(2100, ok(A, 0), [], returns=False, held=0),
                step(3000, ["have", A, 3], ask(A, 0, 1), waiting=None),
                step(3010, ok(A, 0), ask(A, 2), returns=True),
            ],
        ),
        case(
            "a bad chunk: sender penalized and dropped, the chunk asked of another holder",
            {"per_source": 1},
            [
                step(0, ["start", 2, []]),
                step(0, ["have", A, 2], ask(A, 0)),
                step(0, ["have", B, 2], ask(B, 1)),
                step(
                    10,
                    ["chunk_rejected", B, 1, "chunk_mismatch", "chunk 1 does not hash to its id"],
                    [["penalize", B, "chunk_mismatch", "chunk 1 does not hash to its id"]],
                    in_flight={A: [0]},
                ),
                step(20, ["have", B, 2], []),
                step(30, ok(A, 0), ask(A, 1)),
                step(40, ok(B, 1), [], returns=False),
                step(50, ok(A, 1), [["complete"]], returns=True),
            ],
        ),
        case(
            "endgame: an idle source re-asks old requests; the first answer wins",
            {},
            [
                step(0, ["start", 2, []]),
                step(0, ["have", A, 2], ask(A, 0, 1)),
                step(1, ["have", B, 2], []),
                step(1000, ["tick"], []),
                step(1500, ["tick"], ask(B, 0, 1), in_flight={A: [0, 1], B: [0, 1]}),
                step(1510, ok(B, 0), [], returns=True, in_flight={A: [1], B: [1]}),
                step(1520, ok(A, 0), [], returns=False),
                step(1530, ok(A, 1), [["complete"]], returns=True),
                step(1540, ok(B, 1), [], returns=False, phase="complete"),
            ],
        ),
        case(
            "a chunk found lost after being counted held is fetched again",
            {},
            [
                step(0, ["start", 3, []]),
                step(0, ["have", A, 3], ask(A, 0, 1, 2)),
                step(10, ok(A, 0), []),
                step(11, ok(A, 1), []),
                step(12, ok(A, 2), [["complete"]], phase="complete", deadline=None),
                step(20, ["chunk_lost", 1], ask(A, 1), phase="chunks", held=2),
                step(25, ["chunk_lost", 1], [], held=2),
                step(26, ["chunk_lost", 7], [], held=2),
                step(27, ["chunk_lost", 0], ask(A, 0), held=1),
                step(30, ok(A, 1), [], returns=True),
                step(31, ok(A, 0), [["complete"]], phase="complete", held=3),
            ],
        ),
        case(
            "a closed peer is removed at once and its requests go to the other holder",
            {"per_source": 2},
            [
                step(0, ["start", 4, []]),
                step(0, ["have", A, 4], ask(A, 0, 1)),
                step(0, ["have", B, 4], ask(B, 2, 3)),
                step(10, ["peer_closed", A], [], in_flight={B: [2, 3]}),
                step(20, ok(B, 2), ask(B, 0)),
                step(21, ok(B, 3), ask(B, 1)),
                step(22, ok(A, 0), [], returns=False, held=2),
            ],
        ),
        case(
            "requests to one source are paced under the receiving side's frame rate",
            {"burst": 3, "rate": 10, "per_source": 50, "window": 50},
            [
                step(0, ["start", 10, []]),
                step(0, ["have", A, 10], ask(A, 0, 1, 2), deadline=100),
                step(100, ["tick"], ask(A, 3), deadline=200),
                step(400, ["tick"], ask(A, 4, 5, 6), deadline=500),
            ],
        ),
        case(
            "a partial holder's chunk_missing excludes that index for it until its next advert",
            {},
            [
                step(0, ["start", 2, []]),
                step(0, ["have", B, 1], ask(B, 0, 1)),
                step(10, ["chunk_missing", B, 1], [], in_flight={B: [0]}),
                step(20, ok(B, 0), [], waiting=["holders_gone", 20]),
                step(30, ["have", A, 2], ask(A, 1), waiting=None),
                step(31, ["have", B, 2], []),
                step(40, ["chunk_missing", A, 1], ask(B, 1)),
                step(50, ok(B, 1), [["complete"]]),
            ],
        ),
    ]


def transfer_vectors() -> dict[str, Any]:
    return {
        "description": "The download scheduler: each case creates a transfer with `options` "
        "(snake_case TransferOptions; JS uses the camelCase names) at the first step's `at` "
        "(event ['start', chunk_count or null, held]), then feeds each step's event at `at`. "
        "`actions` are exactly what take_actions() returns after it, in order: "
        "['manifest_req', peer], ['chunk_req', peer, index], ['penalize', peer, code, message], "
        "['dropped', peer, code, message], ['complete'], ['failed', code, message]. `state` "
        "(when given) is checked after it: phase, held, in_flight {source: sorted indices, "
        "every source}, waiting [reason, since] or null, deadline = next_deadline(at) (null: "
        "none), returns = what chunk_accepted returned.",
        "cases": cases(),
    }
