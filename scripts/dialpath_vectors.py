"""Shared vectors for the path of a dial (tests/vectors/dialpath.json, written by
scripts/make_vectors.py): scripted choices and results with the exact path each choice must
give and the figures after. Every expectation is written by hand from the rules in
peers/protocol/dialpath.py, not computed by the code under test."""

from __future__ import annotations

from typing import Any

UP = {"server_up": True, "route_known": True}


def choose(expect: str, *, server_up: bool = True, route_known: bool = True) -> dict[str, Any]:
    return {"op": "choose", "server_up": server_up, "route_known": route_known, "expect": expect}


def record(path: str, ms: int | None) -> dict[str, Any]:
    return {"op": "record", "path": path, "ms": ms}


def figures(
    server: tuple[int, int, float, int],
    mesh: tuple[int, int, float, int],
    routed: int,
    faster: str,
) -> dict[str, Any]:
    """(samples, failures, avg_ms, chosen) of each path."""

    def one(f: tuple[int, int, float, int]) -> dict[str, Any]:
        return {"samples": f[0], "failures": f[1], "avg_ms": f[2], "chosen": f[3]}

    return {
        "op": "figures",
        "expect": {"server": one(server), "mesh": one(mesh), "routed": routed, "faster": faster},
    }


# Three dials each way, alternating from the server: server 50 ms, mesh 40 ms every time.
WARM = [
    choose("server"),
    record("server", 50),
    choose("mesh"),
    record("mesh", 40),
    choose("server"),
    record("server", 50),
    choose("mesh"),
    record("mesh", 40),
    choose("server"),
    record("server", 50),
    choose("mesh"),
    record("mesh", 40),
]


def scenarios() -> list[dict[str, Any]]:
    return [
        {
            "name": "server_down_goes_through_the_mesh",
            "about": "with the server down every dial goes through the mesh; nothing is counted",
            "config": {},
            "steps": [
                choose("mesh", server_up=False, route_known=False),
                choose("mesh", server_up=False, route_known=True),
                figures((0, 0, 0, 0), (0, 0, 0, 0), 0, "server"),
            ],
        },
        {
            "name": "no_route_goes_through_the_server",
            "about": "server up, no known route: the server, and nothing is counted",
            "config": {},
            "steps": [
                choose("server", route_known=False),
                choose("server", route_known=False),
                figures((0, 0, 0, 0), (0, 0, 0, 0), 0, "server"),
            ],
        },
        {
            "name": "both_measured_then_the_faster",
            "about": "three each, alternating from the server; then the mesh (40 < 50 * 0.9 = 45)",
            "config": {},
            "steps": [
                *WARM,
                figures((3, 0, 50, 3), (3, 0, 40, 3), 6, "mesh"),
                choose("mesh"),
                record("mesh", 40),
                choose("mesh"),
                figures((3, 0, 50, 3), (4, 0, 40, 5), 8, "mesh"),
            ],
        },
        {
            "name": "within_the_margin_stays_with_the_server",
            "about": "mesh 46 ms against server 50 ms: not below 45, the server",
            "config": {},
            "steps": [
                choose("server"),
                record("server", 50),
                choose("mesh"),
                record("mesh", 46),
                choose("server"),
                record("server", 50),
                choose("mesh"),
                record("mesh", 46),
                choose("server"),
                record("server", 50),
                choose("mesh"),
                record("mesh", 46),
                choose("server"),
                figures((3, 0, 50, 4), (3, 0, 46, 3), 7, "server"),
            ],
        },
        {
            "name": "moving_average_and_failures",
            "about": "avg += (ms - avg) / 4; a failure counts as fail_ms (1000 here): the mesh "
            "at 40 fails once -> 280, loses to the server, then wins back as it answers fast",
            "config": {"fail_ms": 1000},
            "steps": [
                *WARM,
                record("mesh", None),  # 40 + (1000 - 40) / 4 = 280
                figures((3, 0, 50, 3), (4, 1, 280, 3), 6, "server"),
                choose("server"),
                record("server", 60),  # 50 + 10 / 4 = 52.5
                record("mesh", 40),  # 280 - 240 / 4 = 220
                record("mesh", 40),  # 220 - 180 / 4 = 175
                record("mesh", 40),  # 175 - 135 / 4 = 141.25
                record("mesh", 40),  # 141.25 - 101.25 / 4 = 115.9375
                record("mesh", 40),  # 115.9375 - 75.9375 / 4 = 96.953125
                record("mesh", 40),  # 96.953125 - 56.953125 / 4 = 82.71484375
                record("mesh", 40),  # 82.71484375 - 42.71484375 / 4 = 72.0361328125
                record("mesh", 40),  # 72.0361328125 - 32.0361328125 / 4 = 64.027099609375
                record("mesh", 40),  # 64.027099609375 - 24.027099609375 / 4 = 58.02032470703125
                record("mesh", 40),  # - 18.02032470703125 / 4 = 53.5152435302734375
                record("mesh", 40),  # - 13.5152435302734375 / 4 = 50.136432647705078125
                record("mesh", 40),  # - 10.136432647705078125 / 4 = 47.60232448577880859375
                figures((4, 0, 52.5, 4), (16, 1, 47.60232448577880859375, 3), 7, "server"),
                record("mesh", 40),  # 47.6023... - 7.6023... / 4 = 45.7017433643341064453125
                choose("mesh"),  # 45.70... < 52.5 * 0.9 = 47.25
                figures((4, 0, 52.5, 4), (17, 1, 45.7017433643341064453125, 4), 8, "mesh"),
            ],
        },
        {
            "name": "every_sixteenth_routed_dial_tries_the_other_path",
            "about": "explore_every 4 here: the 8th routed dial goes to the server though the mesh "
            "is faster, the 9th back to the mesh; unrouted dials do not count",
            "config": {"explore_every": 4},
            "steps": [
                *WARM,
                choose("mesh"),  # routed 7
                choose("server", route_known=False),  # not counted
                choose("server"),  # routed 8: explores
                choose("mesh"),  # routed 9
                figures((3, 0, 50, 4), (3, 0, 40, 5), 9, "mesh"),
            ],
        },
        {
            "name": "min_samples_one",
            "about": "min_samples 1: one dial each way, then the faster; the server wins here",
            "config": {"min_samples": 1},
            "steps": [
                choose("server"),
                record("server", 30),
                choose("mesh"),
                record("mesh", 80),
                choose("server"),
                choose("server"),
                figures((1, 0, 30, 3), (1, 0, 80, 1), 4, "server"),
            ],
        },
    ]


def errors() -> list[dict[str, Any]]:
    return [
        {"op": "record", "path": "carrier", "ms": 5, "code": "bad_path"},
        {"op": "record", "path": "", "ms": 5, "code": "bad_path"},
        {"op": "record", "path": "mesh", "ms": -1, "code": "bad_duration"},
        {"op": "record", "path": "mesh", "ms": 1.5, "code": "bad_duration"},
        {"op": "record", "path": "server", "ms": 600_001, "code": "bad_duration"},
        {"op": "record", "path": "server", "ms": True, "code": "bad_duration"},
        {"op": "record", "path": "server", "ms": "40", "code": "bad_duration"},
    ]


def dialpath_vectors() -> dict[str, Any]:
    return {
        "description": "The path of a dial (docs/protocol.md): scripted choose/record steps with "
        "the expected path of each choice and the figures (samples, failures, avg_ms, chosen, "
        "routed, faster) at checkpoints; config keys override the defaults (min_samples 3, "
        "margin_pct 10, explore_every 16, fail_ms 20000). errors: records refused with a code "
        "and no change.",
        "scenarios": scenarios(),
        "errors": errors(),
    }
