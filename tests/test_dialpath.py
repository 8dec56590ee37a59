"""The path of a dial (peers/protocol/dialpath.py) against tests/vectors/dialpath.json, which
tests/js/dialpath.test.js checks the same way for the page."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from peers.protocol.dialpath import DialPathConfig, DialPaths
from peers.protocol.errors import ProtocolError

VECTORS = json.loads((Path(__file__).parent / "vectors" / "dialpath.json").read_text())


def _paths(config: dict[str, int]) -> DialPaths:
    return DialPaths(DialPathConfig(**config))


def _run(paths: DialPaths, step: dict[str, Any]) -> None:
    if step["op"] == "choose":
        got = paths.choose(server_up=step["server_up"], route_known=step["route_known"])
        assert got == step["expect"], step
    elif step["op"] == "record":
        paths.record(step["path"], step["ms"])
    elif step["op"] == "figures":
        expect = step["expect"]
        for path in ("server", "mesh"):
            f = paths.figures[path]
            assert {
                "samples": f.samples,
                "failures": f.failures,
                "avg_ms": f.avg_ms,
                "chosen": f.chosen,
            } == expect[path], path
        assert paths.routed == expect["routed"]
        assert paths.faster() == expect["faster"]
    else:
        raise AssertionError(f"unknown op {step['op']}")


@pytest.mark.parametrize("case", VECTORS["scenarios"], ids=lambda c: c["name"])
def test_scenarios(case: dict[str, Any]) -> None:
    paths = _paths(case["config"])
    for step in case["steps"]:
        _run(paths, step)


@pytest.mark.parametrize("step", VECTORS["errors"], ids=lambda s: f"{s['code']}-{s['ms']!r}")
def test_bad_records_have_codes_and_change_nothing(step: dict[str, Any]) -> None:
    paths = DialPaths()
    paths.record("server", 50)
    before = copy.deepcopy(paths)
    with pytest.raises(ProtocolError) as caught:
        paths.record(step["path"], step["ms"])
    assert caught.value.code == step["code"]
    assert paths == before


def test_data_for_status() -> None:
    paths = DialPaths()
    assert paths.data() == {
        "server": {"samples": 0, "failures": 0, "avg_ms": 0.0, "chosen": 0},
        "mesh": {"samples": 0, "failures": 0, "avg_ms": 0.0, "chosen": 0},
        "routed": 0,
        "faster": "server",
    }
    paths.record("mesh", None)
    assert paths.data()["mesh"] == {"samples": 1, "failures": 1, "avg_ms": 20000.0, "chosen": 0}
