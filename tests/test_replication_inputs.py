"""Bad replication input gets a stable error code and leaves the planner as it was."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peers.protocol.replication.messages import (
    cancel_message,
    fetch_message,
    parse_cancel,
    parse_fetch,
    parse_report,
    parse_status,
    report_message,
    status_message,
)
from peers.protocol.replication.model import (
    CHUNK_SIZE,
    CancelJob,
    CancelReason,
    CommunityTarget,
    FetchJob,
    HaveAdvert,
    Health,
    JobReport,
    JobState,
    ManifestInfo,
    ManifestTarget,
    PeerGone,
    PeerHealth,
    ReplicationError,
    SuperPeerStatus,
)
from peers.protocol.replication.planner import ReplicationConfig, ReplicationPlanner


def pid(name: str) -> str:
    return "p" + base64.b32encode(hashlib.sha256(name.encode()).digest()[:20]).decode().lower()


B1, B2, S1 = pid("b1"), pid("b2"), pid("s1")
M1 = "manifest-0001"
INFO = ManifestInfo(M1, "main", 4, 4 * CHUNK_SIZE)


def code_of(call: Callable[[], object]) -> str:
    with pytest.raises(ReplicationError) as info:
        call()
    return info.value.code


@pytest.fixture
def planner() -> ReplicationPlanner:
    p = ReplicationPlanner()
    p.handle(INFO, 0)
    p.handle(HaveAdvert(B1, M1, 4), 0)
    p.handle(SuperPeerStatus(S1, 2**30, 0, 4), 0)
    return p


# --- values refuse themselves -----------------------------------------------------

BAD_VALUES: list[tuple[Callable[[], object], str]] = [
    (lambda: ManifestInfo("short", "main", 1, 1), "bad_manifest_info"),
    (lambda: ManifestInfo("has space in it", "main", 1, 1), "bad_manifest_info"),
    (lambda: ManifestInfo(M1, "Main", 1, 1), "bad_manifest_info"),
    (lambda: ManifestInfo(M1, "main", 0, 1), "bad_manifest_info"),
    (lambda: ManifestInfo(M1, "main", True, 1), "bad_manifest_info"),
    (lambda: ManifestInfo(M1, "main", 1 << 25, 1), "bad_manifest_info"),
    (lambda: ManifestInfo(M1, "main", 1, -1), "bad_manifest_info"),
    (lambda: ManifestInfo(M1, "main", 1, 1, target=33), "bad_target"),
    (lambda: ManifestTarget(M1, -1), "bad_target"),
    (lambda: ManifestTarget(M1, "3"), "bad_target"),  # type: ignore[arg-type]
    (lambda: CommunityTarget("no such!", 3), "bad_target"),
    (lambda: HaveAdvert("mallory", M1, 1), "bad_advert"),
    (lambda: HaveAdvert(B1.upper(), M1, 1), "bad_advert"),
    (lambda: HaveAdvert(B1, M1, -1), "bad_advert"),
    (lambda: HaveAdvert(B1, M1, True), "bad_advert"),
    (lambda: HaveAdvert(B1, "../../etc", 1), "bad_advert"),
    (lambda: HaveAdvert(B1, M1, 1, keep=1), "bad_advert"),  # type: ignore[arg-type]
    (lambda: PeerHealth(B1, "healthy", 1, 1), "bad_health"),  # type: ignore[arg-type]
    (lambda: PeerHealth(B1, Health.HEALTHY, -5, 1), "bad_health"),
    (lambda: PeerHealth(B1, Health.HEALTHY, 5, 1.5), "bad_health"),  # type: ignore[arg-type]
    (lambda: PeerGone("p"), "bad_peer"),
    (lambda: SuperPeerStatus(S1, -1, 0, 4), "bad_status"),
    (lambda: SuperPeerStatus(S1, 10, 0, False), "bad_status"),
    (lambda: SuperPeerStatus(S1, 10, 0, 5000), "bad_status"),
    (lambda: JobReport("", S1, M1, JobState.DONE, 1), "bad_report"),
    (lambda: JobReport("j1", S1, M1, "done", 1), "bad_report"),  # type: ignore[arg-type]
    (lambda: JobReport("j1", S1, M1, JobState.DONE, 1, [B1]), "bad_report"),  # type: ignore[arg-type]
    (lambda: JobReport("j1", S1, M1, JobState.DONE, 1, (B1,) * 17), "bad_report"),
    (lambda: JobReport("j1", S1, M1, JobState.FAILED, 1, (), "Disk Full"), "bad_report"),
    (lambda: FetchJob("j1", S1, M1, "main", (), 1, 1, 1, 0, 1), "bad_job"),
    (lambda: FetchJob("j1", S1, M1, "main", (S1,), 1, 1, 1, 0, 1), "bad_job"),
    (lambda: FetchJob("j1", S1, M1, "main", (B1,), 1, 1, 1, 10, 5), "bad_job"),
    (lambda: ReplicationConfig(default_target=33), "bad_config"),
    (lambda: ReplicationConfig(job_timeout_ms=0), "bad_config"),
    (lambda: ReplicationConfig(retry_base_ms=10, retry_max_ms=5), "bad_config"),
    (lambda: ReplicationConfig(max_sources_per_job=0), "bad_config"),
    (lambda: ReplicationConfig(max_holders_per_manifest=8), "bad_config"),
    (lambda: ReplicationConfig(job_id_prefix=""), "bad_config"),
]


@pytest.mark.parametrize(("make", "code"), BAD_VALUES)
def test_invalid_value_is_refused_at_construction(make: Callable[[], object], code: str) -> None:
    assert code_of(make) == code


# --- the planner refuses facts that contradict what it knows ------------------------


def test_advert_for_an_unregistered_manifest_is_unknown(planner: ReplicationPlanner) -> None:
    assert code_of(lambda: planner.handle(HaveAdvert(B2, "manifest-9999", 1), 1)) == (
        "unknown_manifest"
    )
    assert code_of(lambda: planner.handle(ManifestTarget("manifest-9999", 2), 1)) == (
        "unknown_manifest"
    )


def test_advert_with_more_chunks_than_the_manifest_is_refused(planner: ReplicationPlanner) -> None:
    assert code_of(lambda: planner.handle(HaveAdvert(B2, M1, 5), 1)) == "bad_advert"
    assert planner.holdings.get(B2, M1) is None


def test_re_registering_with_another_size_is_a_conflict(planner: ReplicationPlanner) -> None:
    other = ManifestInfo(M1, "main", 5, 5 * CHUNK_SIZE)
    assert code_of(lambda: planner.handle(other, 1)) == "manifest_conflict"
    planner.handle(INFO, 1)  # the same facts again are fine
    assert planner.status(M1).replicas == 1


def test_report_that_does_not_match_its_job_changes_nothing(planner: ReplicationPlanner) -> None:
    (job,) = planner.tick(0).jobs[:1]
    before = planner.status(M1)
    wrong_fetcher = JobReport(job.job_id, B2, M1, JobState.DONE, 4)
    assert code_of(lambda: planner.handle(wrong_fetcher, 1)) == "bad_report"
    too_many = JobReport(job.job_id, S1, M1, JobState.DONE, 5)
    assert code_of(lambda: planner.handle(too_many, 1)) == "bad_report"
    itself = JobReport(job.job_id, S1, M1, JobState.FAILED, 0, (S1,))
    assert code_of(lambda: planner.handle(itself, 1)) == "bad_report"
    assert planner.status(M1) == before
    assert job.job_id in planner.status(M1).jobs
    # Not even the clock moved: a refused fact from the future does not age anything.
    with pytest.raises(ReplicationError):
        planner.handle(HaveAdvert(B2, "manifest-9999", 1), 10**12)
    planner.handle(HaveAdvert(B2, M1, 1), 2)
    assert planner.holdings.get(B2, M1) is not None
    assert planner.holdings.get(B2, M1).last_seen == 2  # type: ignore[union-attr]


def test_non_events_and_bad_clocks_are_programming_errors(planner: ReplicationPlanner) -> None:
    with pytest.raises(TypeError):
        planner.handle("advert", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        planner.tick(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        planner.tick(-1)


# --- channel-layer messages -------------------------------------------------------

JOB = FetchJob("j7", S1, M1, "main", (B1, B2), 4, 4 * CHUNK_SIZE, 2, 1_000, 121_000)
REPORT = JobReport("j7", S1, M1, JobState.FAILED, 2, (B2,), "no_source")
CANCEL = CancelJob("j7", S1, M1, CancelReason.TARGET_MET)
STATUS = SuperPeerStatus(S1, 2**40, 2**30, 8)

ROUND_TRIPS: list[tuple[Any, Callable[[Any], dict[str, Any]], Callable[[object], Any]]] = [
    (JOB, fetch_message, parse_fetch),
    (REPORT, report_message, parse_report),
    (CANCEL, cancel_message, parse_cancel),
    (STATUS, status_message, parse_status),
]


@pytest.mark.parametrize(("value", "encode", "parse"), ROUND_TRIPS)
def test_messages_round_trip(value: Any, encode: Any, parse: Any) -> None:
    message = encode(value)
    assert parse(message) == value
    assert message["type"].startswith("replication.")


def test_fetch_message_has_the_documented_shape() -> None:
    assert fetch_message(JOB) == {
        "type": "replication.fetch",
        "job": "j7",
        "fetcher": S1,
        "manifest": M1,
        "community": "main",
        "sources": [B1, B2],
        "chunks": 4,
        "size": 4 * CHUNK_SIZE,
        "attempt": 2,
        "issued_at": 1_000,
        "deadline": 121_000,
    }


BAD_MESSAGES: list[tuple[Callable[[object], object], object, str]] = [
    (parse_fetch, [], "bad_job"),
    (parse_fetch, {**fetch_message(JOB), "type": "replication.report"}, "bad_job"),
    (parse_fetch, {**fetch_message(JOB), "extra": 1}, "bad_job"),
    (parse_fetch, {k: v for k, v in fetch_message(JOB).items() if k != "sources"}, "bad_job"),
    (parse_fetch, {**fetch_message(JOB), "sources": B1}, "bad_job"),
    (parse_fetch, {**fetch_message(JOB), "sources": [B1] * 17}, "bad_job"),
    (parse_fetch, {**fetch_message(JOB), "chunks": True}, "bad_job"),
    (parse_fetch, {**fetch_message(JOB), "chunks": 4.0}, "bad_job"),
    (parse_report, {**report_message(REPORT), "state": "finished"}, "bad_report"),
    (parse_report, {**report_message(REPORT), "state": ["done"]}, "bad_report"),
    (parse_report, {**report_message(REPORT), "failed_sources": [1]}, "bad_report"),
    (parse_report, {**report_message(REPORT), "reason": None}, "bad_report"),
    (parse_cancel, {**cancel_message(CANCEL), "reason": "because"}, "bad_job"),
    (parse_cancel, {**cancel_message(CANCEL), "job": 7}, "bad_job"),
    (parse_status, {**status_message(STATUS), "max_jobs": -1}, "bad_status"),
    (parse_status, "replication.status", "bad_status"),
]


@pytest.mark.parametrize(("parse", "data", "code"), BAD_MESSAGES)
def test_malformed_message_gets_its_code(
    parse: Callable[[object], object], data: object, code: str
) -> None:
    assert code_of(lambda: parse(data)) == code


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    index=st.integers(0, len(ROUND_TRIPS) - 1),
    field=st.integers(0, 20),
    value=json_values,
    action=st.sampled_from(["replace", "drop", "add"]),
    extra=st.text(max_size=12),
)
def test_any_mutated_message_is_parsed_or_refused_with_a_code(
    index: int, field: int, value: object, action: str, extra: str
) -> None:
    original, encode, parse = ROUND_TRIPS[index]
    message = encode(original)
    name = sorted(message)[field % len(message)]
    if action == "drop":
        del message[name]
    elif action == "add":
        message[extra] = value
    else:
        message[name] = value
    try:
        parsed = parse(message)
    except ReplicationError as error:
        code = error.code
    else:
        code = None
        # Accepted only if it still is a well-formed message of its kind.
        assert encode(parsed) == message
    assert code in {None, "bad_job", "bad_report", "bad_status"}
