"""The real planner against the simulated swarm of bench/replication_sim.py, checked."""

from __future__ import annotations

import pytest

from bench.replication_sim import SimConfig, SimResult, report, simulate


@pytest.fixture(scope="module")
def churned() -> SimResult:
    # The benchmark's scenario at full size with fewer ticks of churn: a few seconds.
    cfg = SimConfig(seed=7, warmup_ticks=100, recovery_ticks=100, quiet_ticks=200)
    result = simulate(cfg)
    report(result, every=50)
    return result


def test_no_copy_is_counted_before_every_chunk_is_there(churned: SimResult) -> None:
    assert churned.premature == 0


def test_every_manifest_with_a_live_complete_copy_returns_to_target(churned: SimResult) -> None:
    phases = {phase.name: phase for phase in churned.phases}
    # Without churn, each phase ends only once everything repairable is at target.
    for name in ("settle", "quiet", "calm"):
        assert phases[name].full() is not None, name
    assert churned.unrepaired == []
    assert churned.planner_lost_mismatch == 0
    final = churned.stats[-1]
    assert final.repairable_under == 0
    assert final.jobs == 0


def test_the_scenario_really_churns_and_really_repairs(churned: SimResult) -> None:
    burst = next(s for s in churned.stats if s.phase == "recovery!")
    before = churned.stats[churned.stats.index(burst) - 1]
    assert burst.online < 0.75 * before.online
    assert burst.truth_at_target < before.truth_at_target - 0.1
    assert churned.stats[-1].truth_at_target > burst.truth_at_target + 0.1
    assert churned.bytes_moved > churned.content_bytes // 2
    churn = [s for s in churned.stats if s.phase in ("cold", "recovery")]
    assert len(churn) == 200
    assert all(s.left >= 1 and s.joined >= 1 for s in churn)
    assert all(s.left == s.joined == 0 for s in churned.stats if s.phase == "quiet")


def test_super_peers_never_exceed_their_storage_and_are_never_sent_a_job_that_cannot_fit() -> None:
    cfg = SimConfig(
        manifests=600,
        browsers=80,
        super_storage_share=0.3,
        warmup_ticks=60,
        recovery_ticks=60,
        quiet_ticks=60,
        seed=3,
    )
    result = simulate(cfg)
    budget = int(result.content_bytes * cfg.super_storage_share)
    assert max(result.super_used) <= budget
    assert min(result.super_used) > 0.9 * budget  # the room was used
    assert result.storage_full == 0
    assert result.premature == 0
    assert result.unrepaired  # not everything fits: some manifests stay under target
