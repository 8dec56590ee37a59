"""Repair by peers (docs/replication.md "Repair by peers"): RepairCore and the `repair` gossip
data against tests/vectors/repair.json (which tests/js/repair.test.js checks the same way)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from peers.protocol.errors import ProtocolError
from peers.protocol.repair import (
    REPAIR_TOPIC,
    RepairConfig,
    RepairCore,
    check_repair_gossip,
    parse_announcement,
    rendezvous_score,
)
from tests.support.swarm_network import relay_through_check

VECTORS = json.loads((Path(__file__).parent / "vectors" / "repair.json").read_text())


def run_step(core: RepairCore, step: dict[str, Any]) -> None:
    op = step["op"]
    if op == "set_self":
        core.set_self(opted_in=step["opted_in"], spare=step["spare"], max_active=step["max_active"])
    elif op == "manifest":
        core.manifest(step["id"], step["chunk_count"], step["size"], step["target"])
    elif op == "advert":
        core.advert(step["holder"], step["id"], step["chunks"], step["keep"], step["now"])
    elif op == "announce":
        core.announcement(
            step["origin"],
            step["data"],
            step["issued_at"],
            step["now"],
            superpeer=step["superpeer"],
        )
    elif op == "worker_seen":
        core.worker_seen(step["at"])
    elif op == "holder_gone":
        core.holder_gone(step["holder"])
    elif op == "fetch_ended":
        core.fetch_ended(step["id"], step["ok"], step["now"])
    elif op == "tick":
        decision = core.tick(step["now"])
        got = {
            "fetch": list(decision.fetch),
            "cancel": list(decision.cancel),
            "worker_live": decision.worker_live,
        }
        assert got == step["expect"], f"tick at {step['now']}"
    else:  # pragma: no cover - a vector the harness does not know
        raise AssertionError(op)


@pytest.mark.parametrize("case", VECTORS["scenarios"], ids=lambda c: c["name"])
def test_scenarios(case: dict[str, Any]) -> None:
    core = RepairCore(case["self"], case["start"])
    for step in case["steps"]:
        run_step(core, step)


@pytest.mark.parametrize("step", VECTORS["errors"]["steps"], ids=lambda s: f"{s['op']}-{s['code']}")
def test_bad_inputs_have_codes_and_change_nothing(step: dict[str, Any]) -> None:
    core = RepairCore(VECTORS["errors"]["self"], VECTORS["errors"]["start"])
    before = repr(vars(core))
    with pytest.raises(ProtocolError) as info:
        run_step(core, step)
    assert info.value.code == step["code"]
    assert repr(vars(core)) == before


def test_scores() -> None:
    for case in VECTORS["scores"]:
        assert rendezvous_score(case["manifest"], case["peer"]) == case["score"]


def test_announcements() -> None:
    assert REPAIR_TOPIC == "repair"
    for data in VECTORS["announcements"]["valid"]:
        assert parse_announcement(data).data() == data
        check_repair_gossip(data, 0)
    for case in VECTORS["announcements"]["invalid"]:
        with pytest.raises(ProtocolError) as info:
            check_repair_gossip(case["data"], 0)
        assert info.value.code == case["code"]


def test_config_is_checked() -> None:
    with pytest.raises(ProtocolError) as info:
        RepairConfig(claim_timeout_ms=0)
    assert info.value.code == "bad_repair"


def test_own_announcement_reserves_active_fetches() -> None:
    case = next(c for c in VECTORS["scenarios"] if c["name"] == "spare_is_reserved_by_own_fetches")
    core = RepairCore(case["self"], case["start"])
    for step in case["steps"]:
        run_step(core, step)
    ann = core.own_announcement()
    assert (ann.spare, ann.slots, ann.backfill_at) == (500, 1, 0)
    core.set_self(opted_in=False, spare=2500, max_active=3)
    assert core.own_announcement().data() == {"spare": 0, "slots": 0, "backfill_at": 0}


def test_the_python_node_drops_a_bad_repair_gossip_and_relays_a_good_one() -> None:
    """The super-peer's check (``gossip_checks[REPAIR_TOPIC]``) before delivery and relay."""
    good_data = {"spare": 1 << 30, "slots": 2, "backfill_at": 0}
    relay = relay_through_check(
        REPAIR_TOPIC, check_repair_gossip, [{**good_data, "slots": 65}, good_data]
    )
    assert [m.data for m in relay.delivered] == [good_data]
    assert relay.dropped == {"gossip_repair_bad_body": 1}
    assert relay.forwarder_violations == [], "not held against the forwarder"
    [message] = relay.delivered
    assert relay.relayed == [message.id], "only the good one went on"
