"""The download scheduler (peers/protocol/transfer.py) against the shared vectors in
tests/vectors/transfer.json (tests/js/transfer_vectors.test.js checks transfer.js)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from peers.protocol.transfer import (
    Action,
    AskChunk,
    AskManifest,
    Complete,
    Failed,
    Penalize,
    SourceDropped,
    Transfer,
    TransferOptions,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "transfer.json").read_text())


def as_vector(action: Action) -> list[Any]:
    match action:
        case AskManifest(peer_id):
            return ["manifest_req", peer_id]
        case AskChunk(peer_id, index):
            return ["chunk_req", peer_id, index]
        case Penalize(peer_id, code, message):
            return ["penalize", peer_id, code, message]
        case SourceDropped(peer_id, code, message):
            return ["dropped", peer_id, code, message]
        case Complete():
            return ["complete"]
        case Failed(code, message):
            return ["failed", code, message]
    raise AssertionError(action)


def state_of(t: Transfer, at: int) -> dict[str, Any]:
    return {
        "phase": t.phase,
        "held": t.held_count,
        "in_flight": {p: sorted(s.in_flight) for p, s in t.sources.items()},
        "waiting": list(t.waiting) if t.waiting else None,
        "deadline": t.next_deadline(at),
    }


def apply(t: Transfer, event: list[Any], at: int) -> Any:
    name, *args = event
    return getattr(t, name)(*args, at)


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_transfer_vector(case: dict[str, Any]) -> None:
    first = case["steps"][0]
    assert first["event"][0] == "start"
    _, count, held = first["event"]
    options = TransferOptions(**case["options"])
    t = Transfer("m", now=first["at"], chunk_count=count, held=held, options=options)
    for number, step in enumerate(case["steps"]):
        returned = None if number == 0 else apply(t, step["event"], step["at"])
        where = f"step {number} {step['event']}"
        assert [as_vector(a) for a in t.take_actions()] == step["actions"], where
        expected = step.get("state", {})
        actual = state_of(t, step["at"]) | {"returns": returned}
        assert {k: actual[k] for k in expected} == expected, where
