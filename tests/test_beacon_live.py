"""The beacon over real HTTP: daphne on 127.0.0.1 with real Redis and the test database.

Each test uses its own community and client addresses (the server trusts
X-Forwarded-For here), so they share one server without sharing limits.
"""

from __future__ import annotations

import itertools
import re
import time
import uuid
from typing import Any

import httpx
import pytest

from beacon import services
from beacon.models import PresenceTicket
from ops.models import Block
from shared.clock import now_ms
from tests.support.keys import peer_id, seeded_key, ticket
from tests.support.live import Server

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]
_addresses = itertools.count(1)


def community() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def new_ip() -> str:
    n = next(_addresses)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def announce(server: Server, name: str, envelope: Any, ip: str | None = None) -> httpx.Response:
    return httpx.post(
        f"{server.url}/beacon/v1/{name}/announce",
        json=envelope,
        headers={"X-Forwarded-For": ip or new_ip()},
        timeout=10,
    )


def listed(server: Server, name: str) -> list[str]:
    response = httpx.get(
        f"{server.url}/beacon/v1/{name}/peers", headers={"X-Forwarded-For": new_ip()}, timeout=10
    )
    assert response.status_code == 200
    return [t["body"]["peer_id"] for t in response.json()["peers"]]


def test_short_ttl_ticket_disappears_after_expiry_and_is_pruned(beacon_server: Server) -> None:
    name = community()
    key = seeded_key(f"live-ttl-{name}")
    assert (
        announce(beacon_server, name, ticket(key, name, now_ms(), ttl_ms=1500)).status_code == 200
    )
    assert listed(beacon_server, name) == [peer_id(key)]
    time.sleep(1.6)
    assert listed(beacon_server, name) == []
    assert PresenceTicket.objects.filter(peer_id=peer_id(key)).exists()  # hidden, not yet pruned
    assert services.tickets_prune(now=now_ms()) >= 1
    assert not PresenceTicket.objects.filter(peer_id=peer_id(key)).exists()


def test_201_announces_keep_the_newest_200(beacon_server: Server) -> None:
    name = community()
    base = now_ms()
    for i in range(201):
        key = seeded_key(f"live-cap-{name}-{i}")
        response = announce(beacon_server, name, ticket(key, name, base + i))
        assert response.status_code == 200, response.text
    stored = set(
        PresenceTicket.objects.filter(community__name=name).values_list("peer_id", flat=True)
    )
    assert len(stored) == 200
    assert peer_id(seeded_key(f"live-cap-{name}-0")) not in stored
    assert peer_id(seeded_key(f"live-cap-{name}-200")) in stored
    metrics = httpx.get(f"{beacon_server.url}/metrics", timeout=10).text
    assert re.search(rf'swarm_beacon_live_tickets{{community="{name}"}} 200\b', metrics)


def test_second_announce_within_window_is_429_then_accepted_after(beacon_server: Server) -> None:
    name = community()
    key = seeded_key(f"live-rate-{name}")
    first = announce(beacon_server, name, ticket(key, name, now_ms()))
    assert first.status_code == 200
    second = announce(beacon_server, name, ticket(key, name, now_ms()))
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "rate_limited"
    assert second.headers["Retry-After"] in {"1", "2"}
    time.sleep(float(second.headers["Retry-After"]) + 0.1)
    third = announce(beacon_server, name, ticket(key, name, now_ms()))
    assert third.status_code == 200, third.text


def test_address_over_its_bucket_gets_429_with_retry_after(beacon_server: Server) -> None:
    name = community()
    ip = new_ip()
    statuses = [
        announce(beacon_server, name, ticket(seeded_key(f"live-ip-{name}-{i}"), name, now_ms()), ip)
        for i in range(21)
    ]
    assert [r.status_code for r in statuses[:20]] == [200] * 20
    assert statuses[20].status_code == 429
    assert int(statuses[20].headers["Retry-After"]) >= 1


def test_blocked_key_gets_403(beacon_server: Server) -> None:
    name = community()
    key = seeded_key(f"live-block-{name}")
    env = ticket(key, name, now_ms())
    Block.objects.create(kind=Block.KEY, value=env["pk"], reason="integration test")
    response = announce(beacon_server, name, env)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "blocked"
    assert listed(beacon_server, name) == []


def test_replayed_ticket_is_refused(beacon_server: Server) -> None:
    name = community()
    env = ticket(seeded_key(f"live-replay-{name}"), name, now_ms())
    assert announce(beacon_server, name, env).status_code == 200
    replay = announce(beacon_server, name, env)
    assert replay.status_code == 422
    assert replay.json()["error"]["code"] == "replay"


def test_two_communities_are_isolated(beacon_server: Server) -> None:
    a, b = community(), community()
    key_a, key_b = seeded_key(f"live-iso-{a}"), seeded_key(f"live-iso-{b}")
    in_a = announce(beacon_server, a, ticket(key_a, a, now_ms()))
    in_b = announce(beacon_server, b, ticket(key_b, b, now_ms()))
    assert in_a.json()["peers"] == []
    assert in_b.json()["peers"] == []
    assert listed(beacon_server, a) == [peer_id(key_a)]
    assert listed(beacon_server, b) == [peer_id(key_b)]
    cross = announce(beacon_server, b, ticket(seeded_key(f"live-iso2-{a}"), a, now_ms()))
    assert cross.status_code == 422
    assert cross.json()["error"]["code"] == "wrong_community"


def test_healthz_reports_database_channel_layer_broker_beacon_and_signaling(
    beacon_server: Server,
) -> None:
    payload = httpx.get(f"{beacon_server.url}/healthz", timeout=10).json()
    assert payload["ok"] is True
    assert payload["checks"] == {
        name: {"ok": True}
        for name in ("database", "channel_layer", "broker", "beacon", "signaling")
    }


def test_metrics_count_announces_by_result(beacon_server: Server) -> None:
    name = community()
    announce(beacon_server, name, ticket(seeded_key(f"live-m-{name}"), name, now_ms()))
    announce(beacon_server, name, {"garbage": True})
    time.sleep(2.5)  # one background flush
    text = httpx.get(f"{beacon_server.url}/metrics", timeout=10).text
    assert re.search(r'swarm_beacon_announces_total{result="accepted"} [1-9]', text)
    assert re.search(r'swarm_beacon_announces_total{result="bad_envelope"} [1-9]', text)
