"""Replication at scale: the real planner against a simulated swarm with churn.

The swarm is simulated (browsers that come and go, super-peers with finite bandwidth and
storage, chunk transfers that can fail); the planner is the real one in
``peers.protocol.replication``, fed the same events its adapters will feed it. Ground truth
(who really holds which chunks) is kept beside it, so the run checks that the planner never
counts a copy before every chunk is there and that everything repairable is repaired.

Phases: a cold start (super-peers empty, content only on browsers), a churn burst (a share
of the browsers leaves for good at once), recovery with background churn going on, then a
quiet phase (no more churn) that must end with every manifest that still has a live
complete copy at its target.

    .venv/bin/python bench/replication_sim.py [--manifests 2000] [--browsers 200] [--seed 1]

``tests/test_replication_sim.py`` runs a smaller variant and asserts on the result.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from peers.protocol.replication.model import (
    CHUNK_SIZE,
    Event,
    FetchJob,
    HaveAdvert,
    Health,
    JobReport,
    JobState,
    ManifestInfo,
    PeerGone,
    PeerHealth,
    SuperPeerStatus,
)
from peers.protocol.replication.planner import ReplicationConfig, ReplicationPlanner

MB = 1_000_000
COMMUNITY = "sim"


@dataclass(frozen=True)
class SimConfig:
    manifests: int = 2000
    browsers: int = 200
    super_peers: int = 3
    tick_ms: int = 2_000
    substeps: int = 4
    max_chunks: int = 48  # 1..max_chunks chunks of 64 KiB per manifest
    # Browsers holding a complete copy at the start (the author plus opt-ins).
    initial_holders: tuple[int, int] = (1, 4)
    partial_share: float = 0.1  # manifests that also have a half-fetched browser copy
    super_bandwidth: int = 12 * MB  # bytes/s down and up (aiortc measured 10-18 MB/s)
    browser_upload: int = 1 * MB  # bytes/s
    super_storage_share: float = 1.0  # each super-peer stores this share of all content
    max_jobs: int = 8
    leave_per_tick: float = 0.005  # chance an online browser leaves in a tick
    rejoin_per_tick: float = 0.02  # chance an offline browser comes back in a tick
    permanent_share: float = 0.3  # leavers that never return (replaced by newcomers)
    graceful_share: float = 0.5  # leavers whose departure signaling reports at once
    opt_in_per_tick: float = 0.5  # browsers choosing to keep a copy, per tick
    corrupt_rate: float = 0.002  # chance a chunk from a source fails verification
    readvert_ticks: int = 30
    warmup_ticks: int = 150
    burst_share: float = 0.4
    recovery_ticks: int = 250
    quiet_ticks: int = 200
    seed: int = 1

    def planner_config(self) -> ReplicationConfig:
        tick = self.tick_ms
        return ReplicationConfig(
            holding_ttl_ms=self.readvert_ticks * tick * 2,
            super_peer_ttl_ms=5 * tick,
            job_timeout_ms=15 * tick,
            retry_base_ms=2 * tick,
            retry_max_ms=60 * tick,
            source_backoff_base_ms=5 * tick,
            source_backoff_max_ms=120 * tick,
            alert_after_ms=150 * tick,
            lost_grace_ms=15 * tick,
            max_jobs_per_super_peer=self.max_jobs,
        )


@dataclass
class TickStats:
    tick: int
    phase: str
    online: int
    left: int
    joined: int
    at_target: float  # the planner's view
    truth_at_target: float  # what really is at target (live complete copies)
    repairable_under: int  # really under target yet with a live complete copy
    lost: int  # no live complete copy anywhere
    repaired_share: float  # at target among the manifests with a live complete copy
    jobs: int
    bytes_moved: int
    planner_ms: float


@dataclass
class PhaseResult:
    name: str
    churn: bool
    burst: float
    ticks: int = 0
    # Ticks until 95% / 99% / 100% of the manifests with a live complete copy are at
    # target (100%: and no job in flight); absent = not reached in the phase.
    reached: dict[float, int] = field(default_factory=dict)
    mean_at_target: float = 0.0
    min_at_target: float = 0.0

    def full(self) -> int | None:
        return self.reached.get(1.0)


@dataclass
class SimResult:
    config: SimConfig
    stats: list[TickStats] = field(default_factory=list)
    premature: int = 0  # copies the planner counted before they were complete
    phases: list[PhaseResult] = field(default_factory=list)
    unrepaired: list[str] = field(default_factory=list)
    bytes_moved: int = 0
    content_bytes: int = 0
    super_used: list[int] = field(default_factory=list)
    jobs_issued: int = 0
    jobs_failed: int = 0
    storage_full: int = 0  # jobs that failed for lack of room at the fetcher
    planner_lost_mismatch: int = 0


def pid(name: str) -> str:
    return "p" + base64.b32encode(hashlib.sha256(name.encode()).digest()[:20]).decode().lower()


@dataclass
class _Run:
    job: FetchJob
    usable: list[str]
    source: int = 0
    failed: list[str] = field(default_factory=list)
    progressed: bool = False


class Simulation:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.planner = ReplicationPlanner(cfg.planner_config())
        self.now = 0
        self.tick_no = 0
        self.planner_seconds = 0.0
        self.left = self.joined = 0
        self.manifests = [
            ManifestInfo(f"sim{n:06d}", COMMUNITY, count, count * CHUNK_SIZE)
            for n, count in enumerate(
                self.rng.randint(1, cfg.max_chunks) for _ in range(cfg.manifests)
            )
        ]
        self.by_id = {m.manifest_id: m for m in self.manifests}
        self.content_bytes = sum(m.size for m in self.manifests)
        self.truth: dict[str, dict[str, int]] = {}  # holder -> manifest -> chunks (a prefix)
        self.online: set[str] = set()
        self.offline: set[str] = set()
        self.upload: dict[str, float] = {}  # browser upload bytes/s
        self.next_browser = 0
        self.supers = [pid(f"sim-super-{i}") for i in range(cfg.super_peers)]
        self.super_budget = int(self.content_bytes * cfg.super_storage_share)
        self.runs: dict[str, dict[str, _Run]] = {peer: {} for peer in self.supers}
        self.stored = dict.fromkeys(self.supers, 0)
        self.result = SimResult(cfg, content_bytes=self.content_bytes)
        for peer in self.supers:
            self.truth[peer] = {}
        for _ in range(cfg.browsers):
            self._new_browser()
        browsers = sorted(self.online)
        for m in self.manifests:
            low, high = cfg.initial_holders
            for holder in self.rng.sample(browsers, self.rng.randint(low, high)):
                self.truth[holder][m.manifest_id] = m.chunk_count
            if m.chunk_count > 1 and self.rng.random() < cfg.partial_share:
                holder = self.rng.choice(browsers)
                self.truth[holder].setdefault(m.manifest_id, m.chunk_count // 2)
        self._handle_all(self.manifests)
        for browser in browsers:
            self._join(browser)

    # --- the swarm ----------------------------------------------------------------

    def _new_browser(self) -> str:
        browser = pid(f"sim-browser-{self.next_browser}")
        self.next_browser += 1
        self.truth[browser] = {}
        self.online.add(browser)
        self.upload[browser] = self.cfg.browser_upload * self.rng.uniform(0.3, 2.0)
        return browser

    def _join(self, browser: str) -> None:
        self.online.add(browser)
        self.offline.discard(browser)
        speed = int(self.upload[browser])
        events: list[PeerHealth | HaveAdvert] = [PeerHealth(browser, Health.HEALTHY, 50, speed)]
        events += [HaveAdvert(browser, mid, n) for mid, n in sorted(self.truth[browser].items())]
        self._handle_all(events)

    def _leave(self, browser: str, *, permanent: bool) -> None:
        self.online.discard(browser)
        # A browser gone for good keeps its chunks in ``truth`` (the planner may still count
        # it until its advert expires) but never serves them again.
        if not permanent:
            self.offline.add(browser)
        if self.rng.random() < self.cfg.graceful_share:
            self._handle_all([PeerGone(browser)])

    def _churn(self, burst: float = 0.0) -> tuple[int, int]:
        """Browsers leave and join: at least one of each per tick. Returns (left, joined)."""
        cfg, rng = self.cfg, self.rng
        online = sorted(self.online)
        if burst:
            leavers = [b for b in online if rng.random() < burst]
            for browser in leavers:
                self._leave(browser, permanent=True)
            return len(leavers), 0
        leavers = [b for b in online if rng.random() < cfg.leave_per_tick] or [rng.choice(online)]
        offline = sorted(self.offline)
        joiners = [b for b in offline if rng.random() < cfg.rejoin_per_tick]
        for browser in leavers:
            permanent = rng.random() < cfg.permanent_share
            self._leave(browser, permanent=permanent)
            if permanent:
                joiners.append(self._new_browser())
        if not joiners:
            joiners = [rng.choice(offline) if offline else self._new_browser()]
        for browser in joiners:
            self._join(browser)
        if self.online and self.rng.random() < cfg.opt_in_per_tick:
            browser = self.rng.choice(sorted(self.online))
            m = self.rng.choice(self.manifests)
            if self._live_complete(m.manifest_id):
                self.truth[browser][m.manifest_id] = m.chunk_count
                self._handle_all([HaveAdvert(browser, m.manifest_id, m.chunk_count)])
        return len(leavers), len(joiners)

    def _readvert(self) -> None:
        period = self.cfg.readvert_ticks
        events: list[SuperPeerStatus | HaveAdvert] = []
        for i, browser in enumerate(sorted(self.online)):
            if (self.tick_no + i) % period == 0:
                held = sorted(self.truth[browser].items())
                events += [HaveAdvert(browser, mid, n) for mid, n in held]
        for i, peer in enumerate(self.supers):
            used = self.stored[peer]
            events.append(SuperPeerStatus(peer, self.super_budget, used, self.cfg.max_jobs))
            if (self.tick_no + i * 7) % period == 0:
                events += [HaveAdvert(peer, mid, n) for mid, n in sorted(self.truth[peer].items())]
        self._handle_all(events)

    def _transfer(self, seconds: float) -> None:
        """Each super-peer spends its bandwidth round-robin over its jobs, chunk by chunk."""
        cfg = self.cfg
        upload = {peer: speed * seconds for peer, speed in self.upload.items()}
        for peer in self.supers:
            upload[peer] = cfg.super_bandwidth * seconds
        reports: list[JobReport] = []
        for peer in self.supers:
            budget = cfg.super_bandwidth * seconds
            runs = self.runs[peer]
            for run in runs.values():
                run.progressed = False
                run.failed = []
                self._prune_sources(run)
            active = sorted(runs)
            finished: dict[str, tuple[JobState, str]] = {}
            while active and budget >= CHUNK_SIZE:
                still: list[str] = []
                for job_id in active:
                    if budget < CHUNK_SIZE:
                        still.append(job_id)
                        continue
                    outcome = self._step(runs[job_id], upload)
                    if outcome == "ok":
                        budget -= CHUNK_SIZE
                        still.append(job_id)
                    elif outcome == "stalled":
                        continue
                    elif outcome in ("done", "failed", "storage_full"):
                        state = JobState.DONE if outcome == "done" else JobState.FAILED
                        finished[job_id] = (state, "" if outcome == "done" else outcome)
                active = still
            for job_id, run in sorted(runs.items()):
                job = run.job
                chunks = self.truth[peer].get(job.manifest_id, 0)
                if job_id in finished:
                    state, reason = finished[job_id]
                    if state is JobState.FAILED:
                        self.result.jobs_failed += 1
                        self.result.storage_full += reason == "storage_full"
                    del runs[job_id]
                elif run.progressed or run.failed:
                    state, reason = JobState.PROGRESS, ""
                else:
                    continue
                reports.append(
                    JobReport(
                        job_id, peer, job.manifest_id, state, chunks, tuple(run.failed), reason
                    )
                )
        self._handle_all(reports)

    def _step(self, run: _Run, upload: dict[str, float]) -> str:
        """Fetch the next chunk from the next usable source: sources are used in parallel,
        round-robin, and one that is gone, lacks the chunk or sends a bad one is dropped."""
        job = run.job
        have = self.truth[job.fetcher]
        k = have.get(job.manifest_id, 0)
        if k >= job.chunk_count:
            return "done"
        for _ in range(len(run.usable)):
            source = run.usable[run.source % len(run.usable)]
            run.source += 1
            if upload.get(source, 0) < CHUNK_SIZE:
                continue  # busy this tick, not failed
            if self.stored[job.fetcher] + CHUNK_SIZE > self.super_budget:
                return "storage_full"
            upload[source] -= CHUNK_SIZE
            self.result.bytes_moved += CHUNK_SIZE
            if self.rng.random() < self.cfg.corrupt_rate:
                self._drop_source(run, source)  # chunk id mismatch: discarded
                return "ok" if run.usable else "failed"
            have[job.manifest_id] = k + 1
            self.stored[job.fetcher] += CHUNK_SIZE
            run.progressed = True
            return "done" if k + 1 >= job.chunk_count else "ok"
        return "stalled" if run.usable else "failed"

    def _prune_sources(self, run: _Run) -> None:
        k = self.truth[run.job.fetcher].get(run.job.manifest_id, 0)
        for source in list(run.usable):
            reachable = source in self.online or source in self.supers
            if not reachable or self.truth[source].get(run.job.manifest_id, 0) <= k:
                self._drop_source(run, source)

    @staticmethod
    def _drop_source(run: _Run, source: str) -> None:
        run.usable.remove(source)
        run.failed.append(source)

    # --- the planner --------------------------------------------------------------

    def _handle_all(self, events: Sequence[Event]) -> None:
        start = time.perf_counter()
        for event in events:
            self.planner.handle(event, self.now)
        self.planner_seconds += time.perf_counter() - start

    def _plan(self) -> None:
        start = time.perf_counter()
        plan = self.planner.tick(self.now)
        self.planner_seconds += time.perf_counter() - start
        for cancel in plan.cancels:
            self.runs[cancel.fetcher].pop(cancel.job_id, None)
        for job in plan.jobs:
            self.runs[job.fetcher][job.job_id] = _Run(job, list(job.sources))
            self.truth[job.fetcher].setdefault(job.manifest_id, 0)
            self.result.jobs_issued += 1

    # --- truth and checks ---------------------------------------------------------

    def _live(self, holder: str) -> bool:
        return holder in self.online or holder in self.supers

    def _live_complete(self, manifest_id: str) -> int:
        count = self.by_id[manifest_id].chunk_count
        return sum(
            1
            for holder, held in self.truth.items()
            if held.get(manifest_id, 0) >= count and self._live(holder)
        )

    def _complete_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.by_id, 0)
        for holder, held in self.truth.items():
            if not self._live(holder):
                continue
            for mid, n in held.items():
                if n >= self.by_id[mid].chunk_count:
                    counts[mid] += 1
        return counts

    def _check_counting(self) -> None:
        for holding in self.planner.holdings:
            if holding.complete:
                real = self.truth.get(holding.holder, {}).get(holding.manifest_id, 0)
                if real < self.by_id[holding.manifest_id].chunk_count:
                    self.result.premature += 1

    def _record(self, phase: str) -> TickStats:
        self._check_counting()
        counts = self._complete_counts()
        total = len(self.manifests)
        target = self.planner.config.default_target
        at = sum(1 for c in counts.values() if c >= target)
        repairable = sum(1 for c in counts.values() if 0 < c < target)
        lost = sum(1 for c in counts.values() if c == 0)
        summary = self.planner.summary()
        stats = TickStats(
            tick=self.tick_no,
            phase=phase,
            online=len(self.online),
            left=self.left,
            joined=self.joined,
            at_target=summary.at_target / total,
            truth_at_target=at / total,
            repairable_under=repairable,
            lost=lost,
            repaired_share=1 - repairable / max(1, total - lost),
            jobs=summary.jobs,
            bytes_moved=self.result.bytes_moved,
            planner_ms=self.planner_seconds * 1000,
        )
        self.planner_seconds = 0.0
        self.result.stats.append(stats)
        return stats

    # --- phases -------------------------------------------------------------------

    def step(self, phase: str, *, churn: bool = True, burst: float = 0.0) -> TickStats:
        """One tick: churn and adverts once, then transfers and planning in sub-steps (an
        adapter ticks the planner whenever a job ends, not once per tick)."""
        cfg = self.cfg
        self.tick_no += 1
        start = self.tick_no * cfg.tick_ms
        self.now = start
        self.left = self.joined = 0
        if burst or churn:
            self.left, self.joined = self._churn(burst)
        self._readvert()
        sub_ms = cfg.tick_ms // cfg.substeps
        for i in range(cfg.substeps):
            self.now = start + i * sub_ms
            self._transfer(sub_ms / 1000)
            self._plan()
        return self._record(phase)

    def _phase(self, name: str, ticks: int, *, churn: bool, burst: float = 0.0) -> PhaseResult:
        """Run up to ``ticks`` (after a burst, if any) and time the way back to target.

        Without churn the phase ends once every manifest with a live complete copy is at
        target and no job is left; with churn it runs its full length."""
        phase = PhaseResult(name, churn, burst)
        if burst:
            self.step(f"{name}!", burst=burst)
        shares: list[float] = []
        for i in range(1, ticks + 1):
            stats = self.step(name, churn=churn)
            phase.ticks = i
            shares.append(stats.truth_at_target)
            for threshold in (0.95, 0.99):
                if phase.reached.get(threshold) is None and stats.repaired_share >= threshold:
                    phase.reached[threshold] = i
            if stats.repairable_under == 0 and self.planner.summary().jobs == 0:
                phase.reached.setdefault(1.0, i)
                if not churn:
                    break
        phase.mean_at_target = statistics.fmean(shares)
        phase.min_at_target = min(shares)
        self.result.phases.append(phase)
        return phase

    def run(self) -> SimResult:
        cfg, result = self.cfg, self.result
        self.planner_seconds = 0.0  # registering manifests and first adverts: set-up
        self._plan()
        self._phase("cold", cfg.warmup_ticks, churn=True)
        self._phase("settle", cfg.quiet_ticks, churn=False)
        self._phase("recovery", cfg.recovery_ticks, churn=True, burst=cfg.burst_share)
        self._phase("quiet", cfg.quiet_ticks, churn=False)
        self._phase("calm", cfg.quiet_ticks, churn=False, burst=cfg.burst_share)
        counts = self._complete_counts()
        target = self.planner.config.default_target
        result.unrepaired = sorted(mid for mid, c in counts.items() if 0 < c < target)
        result.planner_lost_mismatch = sum(
            1
            for mid, c in counts.items()
            if (c >= target) != (self.planner.status(mid).replicas >= target)
        )
        result.super_used = [self.stored[peer] for peer in self.supers]
        return result


def simulate(cfg: SimConfig) -> SimResult:
    return Simulation(cfg).run()


def report(result: SimResult, every: int = 25) -> None:
    cfg = result.config
    print(
        f"{cfg.manifests} manifests ({result.content_bytes / 2**30:.2f} GiB), {cfg.browsers} browsers, "
        f"{cfg.super_peers} super-peers ({cfg.super_bandwidth / MB:.0f} MB/s, "
        f"{cfg.max_jobs} jobs, {cfg.super_storage_share:.0%} of the content each), "
        f"tick {cfg.tick_ms / 1000:g} s, {cfg.graceful_share:.0%} of departures signalled, seed {cfg.seed}"
    )
    print(
        f"{'tick':>5} {'phase':<8} {'online':>6} {'planner':>8} {'truth':>7} "
        f"{'repair':>6} {'lost':>5} {'jobs':>5} {'moved MiB':>10} {'plan ms':>8}"
    )
    for s in result.stats:
        if s.tick % every == 0 or s.phase.endswith("!"):
            print(
                f"{s.tick:>5} {s.phase:<8} {s.online:>6} {s.at_target:>8.1%} {s.truth_at_target:>7.1%} "
                f"{s.repairable_under:>6} {s.lost:>5} {s.jobs:>5} {s.bytes_moved / 2**20:>10.0f} "
                f"{s.planner_ms:>8.2f}"
            )
    times = [s.planner_ms for s in result.stats]
    ordered = sorted(times)
    print("phase     churn  burst  ticks   95%   99%  100%  at target (truth): mean / min")
    for ph in result.phases:
        marks = [str(ph.reached.get(t, "-")) for t in (0.95, 0.99, 1.0)]
        print(
            f"{ph.name:<9} {'on' if ph.churn else 'off':<6} {ph.burst:>5.0%} {ph.ticks:>6} "
            f"{marks[0]:>5} {marks[1]:>5} {marks[2]:>5}  {ph.mean_at_target:.1%} / {ph.min_at_target:.1%}"
        )
    print(
        "(95/99/100%: ticks until that share of the manifests with a live complete copy is at "
        "target; 100% also means no job in flight)"
    )
    print(f"unrepaired manifests with a live complete copy: {len(result.unrepaired)}")
    print(f"copies counted before complete: {result.premature}")
    print(f"planner vs truth disagreements at the end: {result.planner_lost_mismatch}")
    print(
        f"bytes moved: {result.bytes_moved / 2**30:.2f} GiB "
        f"({result.bytes_moved / max(1, result.content_bytes):.2f}x the content); "
        f"jobs issued {result.jobs_issued}, failed {result.jobs_failed} "
        f"({result.storage_full} for lack of storage)"
    )
    print(
        "super-peer storage used: " + ", ".join(f"{u / 2**30:.2f} GiB" for u in result.super_used)
    )
    print(
        f"planner time per tick: mean {statistics.fmean(times):.2f} ms, "
        f"p99 {ordered[int(0.99 * (len(ordered) - 1))]:.2f} ms, max {ordered[-1]:.2f} ms"
    )


def main() -> int:
    from bench.common import git_revision, machine

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--manifests", type=int, default=2000)
    parser.add_argument("--browsers", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--storage-share", type=float, default=1.0, help="of all content, per super-peer"
    )
    parser.add_argument(
        "--graceful", type=float, default=0.5, help="share of departures signalled at once"
    )
    args = parser.parse_args()
    cfg = SimConfig(
        manifests=args.manifests,
        browsers=args.browsers,
        seed=args.seed,
        super_storage_share=args.storage_share,
        graceful_share=args.graceful,
    )
    print(f"machine: {machine()}, revision {git_revision()}")
    start = time.perf_counter()
    result = simulate(cfg)
    report(result)
    print(f"wall time: {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
