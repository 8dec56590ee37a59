"""/healthz says what the lean ASGI paths experience (in-process, the real app): a beacon
whose last failed request (503) came after its last good one is unhealthy, and so is a
signaling process whose link to Redis is being set up again."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from beacon import health
from ops import views
from peers.signaling import asgi as signaling_asgi
from shared.fastpath import PerLoop
from tests.support.asgi import ApiClient

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_beacon_record(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "_last_fault", 0.0)
    monkeypatch.setattr(health, "_last_success", 0.0)


async def test_all_checks_pass_on_a_healthy_process(api: ApiClient) -> None:
    response = await api.get("/healthz")
    assert response.status_code == 200, response.text
    assert set(response.json()["checks"]) == {
        "database",
        "channel_layer",
        "broker",
        "beacon",
        "signaling",
    }


async def test_a_beacon_whose_last_request_failed_is_unhealthy_until_one_works(
    api: ApiClient,
) -> None:
    health.record(ok=True)
    health.record(ok=False)
    response = await api.get("/healthz")
    assert response.status_code == 503
    beacon = response.json()["checks"]["beacon"]
    assert beacon["ok"] is False
    assert "the last beacon request failed" in beacon["error"]
    assert response.json()["checks"]["database"] == {"ok": True}
    # An announce that works clears it at once.
    ok = await api.get("/beacon/v1/main/peers")
    assert ok.status_code == 200
    assert (await api.get("/healthz")).status_code == 200


async def test_an_old_beacon_failure_no_longer_counts(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "FAULT_WINDOW_S", 0.05)
    health.record(ok=False)
    await asyncio.sleep(0.1)
    assert (await api.get("/healthz")).status_code == 200


class _Unlinked:
    def health(self) -> str:
        return "not linked to Redis (setting up again)"


async def test_a_signaling_process_without_its_redis_link_is_unhealthy(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    nodes = PerLoop(_Unlinked)
    nodes.get()  # this loop's node, as a socket would have started it
    monkeypatch.setattr(signaling_asgi, "_nodes", nodes)
    response = await api.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["signaling"] == {
        "ok": False,
        "error": "RuntimeError: not linked to Redis (setting up again)",
    }


def test_a_signaling_node_is_unhealthy_only_for_a_recent_relay_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from peers.signaling.config import SignalConfig
    from peers.signaling.node import SignalNode

    node = SignalNode(SignalConfig(), "")
    assert node.health() is None
    node.route_failed_at = time.monotonic()
    assert node.health() == "relaying through Redis failed"
    node.route_worked_at = time.monotonic()
    assert node.health() is None
    node.route_failed_at = time.monotonic()
    monkeypatch.setattr("peers.signaling.node.ROUTE_FAULT_WINDOW_S", 0.0)
    assert node.health() is None  # too old to say anything about now


class _StuckBlocks:
    """The block table read as it went while PostgreSQL was stopped: Django's pool waits
    (up to its own timeout, 10 s) for a connection it cannot make."""

    release = threading.Event()

    class objects:  # stands in for the model's manager
        @staticmethod
        def exists() -> bool:
            _StuckBlocks.release.wait(10)
            return False


async def test_a_check_stuck_in_a_blocking_call_answers_503_at_the_check_timeout(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "Block", _StuckBlocks)
    monkeypatch.setattr(views, "CHECK_TIMEOUT_S", 0.5)
    _StuckBlocks.release.clear()
    started = time.monotonic()
    try:
        response = await api.get("/healthz")
        took = time.monotonic() - started
    finally:
        _StuckBlocks.release.set()
    # The answer goes at the timeout, not when the stuck thread returns: probes saw a
    # hang (10 s, their own timeout) for the whole outage before.
    assert took < 3.0, took
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["beacon"] == {"ok": False, "error": "no answer within 0.5 s"}
    assert checks["database"] == {"ok": True}
