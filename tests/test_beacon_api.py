"""Beacon API contract through the real ASGI application: every bad input gets its
stable error. (tests/test_beacon_live.py runs the same API in a daphne process.)"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from beacon.models import Community, PresenceTicket
from ops.models import Block
from shared.clock import now_ms
from tests.support.asgi import ApiClient
from tests.support.keys import peer_id, seeded_key, ticket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _generous_limits(settings: Any) -> None:
    settings.SWARM_BEACON_IP_BURST = 1_000_000
    settings.SWARM_BEACON_READ_IP_BURST = 1_000_000
    settings.SWARM_BEACON_PEER_INTERVAL_S = 0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def announce(client: ApiClient, community: str, body: Any, ip: str | None = None) -> Any:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return await client.post(f"/beacon/v1/{community}/announce", data, ip=ip)


def error_code(response: Any) -> str:
    payload = response.json()
    assert payload["ok"] is False
    assert set(payload["error"]) == {"code", "message"}
    return str(payload["error"]["code"])


async def test_announce_returns_other_live_peers_newest_first_never_self(api: ApiClient) -> None:
    name = unique("order")
    now = now_ms()
    keys = [seeded_key(f"{name}-{i}") for i in range(3)]
    for i, key in enumerate(keys):
        assert (await announce(api, name, ticket(key, name, now + i))).status_code == 200
    me = seeded_key(f"{name}-me")
    response = await announce(api, name, ticket(me, name, now + 10))
    assert response.status_code == 200
    peers = response.json()["peers"]
    assert [p["body"]["peer_id"] for p in peers] == [peer_id(k) for k in reversed(keys)]
    listed = (await api.get(f"/beacon/v1/{name}/peers?limit=2")).json()["peers"]
    assert [p["body"]["peer_id"] for p in listed] == [peer_id(me), peer_id(keys[2])]


async def test_peers_response_is_capped_at_50(api: ApiClient) -> None:
    name = unique("cap50")
    now = now_ms()
    for i in range(55):
        await announce(api, name, ticket(seeded_key(f"{name}-{i}"), name, now))
    assert len((await api.get(f"/beacon/v1/{name}/peers")).json()["peers"]) == 50
    assert len((await api.get(f"/beacon/v1/{name}/peers?limit=500")).json()["peers"]) == 50


async def test_served_ticket_is_the_signed_object_as_received(api: ApiClient) -> None:
    name = unique("verbatim")
    env = ticket(seeded_key(name), name, now_ms(), caps=["relay"])
    await announce(api, name, env)
    assert (await api.get(f"/beacon/v1/{name}/peers")).json()["peers"] == [env]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "bad_json"),
        (b"\xff\xfe", 400, "bad_json"),
        (b"[" * 100_000, 413, "too_large"),
        ("[]", 400, "bad_envelope"),
        ('{"v":1}', 400, "bad_envelope"),
        ("null", 400, "bad_envelope"),
        ('"text"', 400, "bad_envelope"),
    ],
)
async def test_malformed_bodies_get_stable_errors(
    api: ApiClient, body: str | bytes, status: int, code: str
) -> None:
    response = await announce(api, "main", body)
    assert response.status_code == status
    assert error_code(response) == code


async def test_deeply_nested_json_within_size_is_bad_json_not_500(api: ApiClient) -> None:
    response = await announce(api, "main", "[" * 4000)
    assert response.status_code == 400
    assert error_code(response) == "bad_json"


async def test_body_over_4_kib_is_413(api: ApiClient) -> None:
    env = ticket(seeded_key("api-big"), "main", now_ms())
    env["body"]["caps"] = ["x" * 30] * 200  # far over the size limit
    response = await announce(api, "main", env)
    assert response.status_code == 413
    assert error_code(response) == "too_large"


@pytest.mark.parametrize(
    ("make", "status", "code"),
    [
        (lambda k, n: ticket(k, "other", n), 422, "wrong_community"),
        (lambda k, n: ticket(k, "main", n - 200_000), 422, "expired"),
        (lambda k, n: ticket(k, "main", n + 60_000), 422, "not_yet_valid"),
        (lambda k, n: ticket(k, "main", n, ttl_ms=3_600_000), 422, "ttl_too_long"),
        (
            lambda k, n: ticket(k, "main", n, peer_id=peer_id(seeded_key("someone"))),
            422,
            "peer_mismatch",
        ),
        (lambda k, n: {**ticket(k, "main", n), "sig": "A" * 86}, 422, "bad_signature"),
        (lambda k, n: {**ticket(k, "main", n), "pk": "A" * 10}, 400, "bad_envelope"),
    ],
)
async def test_invalid_tickets_get_422_or_400_with_code(
    api: ApiClient, make: Any, status: int, code: str
) -> None:
    key = seeded_key(unique("api-invalid"))
    response = await announce(api, "main", make(key, now_ms()))
    assert response.status_code == status
    assert error_code(response) == code
    assert not await PresenceTicket.objects.filter(peer_id=peer_id(key)).aexists()


async def test_replayed_ticket_and_older_ticket_are_refused(api: ApiClient) -> None:
    key = seeded_key(unique("api-replay"))
    now = now_ms()
    newer = ticket(key, "main", now)
    older = ticket(key, "main", now - 5000)
    assert (await announce(api, "main", newer)).status_code == 200
    replay = await announce(api, "main", newer)
    assert (replay.status_code, error_code(replay)) == (422, "replay")
    stale = await announce(api, "main", older)
    assert (stale.status_code, error_code(stale)) == (422, "replay")
    same_nonce = ticket(key, "main", now + 1, nonce=newer["body"]["nonce"])
    reused = await announce(api, "main", same_nonce)
    assert (reused.status_code, error_code(reused)) == (422, "replay")
    assert (await announce(api, "main", ticket(key, "main", now + 2))).status_code == 200
    stored = await PresenceTicket.objects.aget(peer_id=peer_id(key))
    assert stored.issued_at == now + 2


async def test_replay_within_the_peer_interval_is_still_422(api: ApiClient, settings: Any) -> None:
    settings.SWARM_BEACON_PEER_INTERVAL_S = 15
    key = seeded_key(unique("api-replay-window"))
    env = ticket(key, "main", now_ms())
    assert (await announce(api, "main", env)).status_code == 200
    replay = await announce(api, "main", env)
    assert (replay.status_code, error_code(replay)) == (422, "replay")


@pytest.mark.parametrize("kind", ["key", "peer", "ip"])
async def test_blocked_key_peer_or_ip_gets_403(api: ApiClient, kind: str, settings: Any) -> None:
    settings.SWARM_TRUST_X_FORWARDED_FOR = True
    key = seeded_key(unique(f"api-block-{kind}"))
    env = ticket(key, "main", now_ms())
    value = {"key": env["pk"], "peer": peer_id(key), "ip": "10.66.0.0/16"}[kind]
    await Block.objects.acreate(kind=kind, value=value, reason="test")
    response = await announce(api, "main", env, ip="10.66.1.2")
    assert (response.status_code, error_code(response)) == (403, "blocked")


async def test_expired_block_no_longer_applies(api: ApiClient) -> None:
    from datetime import timedelta

    from django.utils import timezone

    key = seeded_key(unique("api-block-expired"))
    await Block.objects.acreate(
        kind="peer", value=peer_id(key), expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert (await announce(api, "main", ticket(key, "main", now_ms()))).status_code == 200


async def test_unblocking_takes_effect_at_once(api: ApiClient) -> None:
    key = seeded_key(unique("api-unblock"))
    block = await Block.objects.acreate(kind="peer", value=peer_id(key))
    now = now_ms()
    assert (await announce(api, "main", ticket(key, "main", now))).status_code == 403
    await block.adelete()
    assert (await announce(api, "main", ticket(key, "main", now + 1))).status_code == 200


async def test_per_peer_interval_gives_429_with_retry_after(api: ApiClient, settings: Any) -> None:
    settings.SWARM_BEACON_PEER_INTERVAL_S = 15
    key = seeded_key(unique("api-peer-rate"))
    now = now_ms()
    assert (await announce(api, "main", ticket(key, "main", now))).status_code == 200
    response = await announce(api, "main", ticket(key, "main", now + 1))
    assert (response.status_code, error_code(response)) == (429, "rate_limited")
    assert 1 <= int(response.headers["Retry-After"]) <= 15


async def test_per_ip_bucket_gives_429_then_refills(api: ApiClient, settings: Any) -> None:
    settings.SWARM_TRUST_X_FORWARDED_FOR = True
    settings.SWARM_BEACON_IP_BURST = 3
    settings.SWARM_BEACON_IP_RATE = 10
    ip = f"10.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    name = unique("api-ip")
    now = now_ms()
    responses = [
        await announce(api, "main", ticket(seeded_key(f"{name}-{i}"), "main", now), ip=ip)
        for i in range(4)
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert responses[3].headers["Retry-After"] == "1"
    time.sleep(0.15)
    again = await announce(api, "main", ticket(seeded_key(f"{name}-x"), "main", now), ip=ip)
    assert again.status_code == 200


async def test_bad_community_name_and_limit(api: ApiClient) -> None:
    assert error_code(await announce(api, "Bad_Name", {})) == "bad_community"
    assert (await api.get("/beacon/v1/Bad_Name/peers")).status_code == 404
    assert error_code(await api.get("/beacon/v1/main/peers?limit=abc")) == "bad_limit"
    assert error_code(await api.get("/beacon/v1/main/peers?limit=0")) == "bad_limit"


async def test_unknown_community_lists_no_peers_and_is_not_created(api: ApiClient) -> None:
    name = unique("nobody")
    assert (await api.get(f"/beacon/v1/{name}/peers")).json() == {"ok": True, "peers": []}
    assert not await Community.objects.filter(name=name).aexists()


async def test_closed_community_refuses_announces(api: ApiClient) -> None:
    name = unique("closed")
    await Community.objects.acreate(name=name, is_open=False)
    response = await announce(api, name, ticket(seeded_key(name), name, now_ms()))
    assert (response.status_code, error_code(response)) == (403, "community_closed")


async def test_wrong_methods_are_405_with_allow(api: ApiClient) -> None:
    response = await api.get("/beacon/v1/main/announce")
    assert (response.status_code, error_code(response)) == (405, "method_not_allowed")
    assert response.headers["Allow"] == "POST, OPTIONS"
    assert (await api.post("/beacon/v1/main/peers", "{}")).status_code == 405


async def test_cors_allows_other_origins(api: ApiClient) -> None:
    preflight = await api.request(
        "OPTIONS",
        "/beacon/v1/main/announce",
        Origin="https://mirror.example",
        **{"Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    listed = await api.get("/beacon/v1/main/peers", Origin="https://mirror.example")
    assert listed.headers["Access-Control-Allow-Origin"] == "*"


async def test_openapi_document_names_both_operations(api: ApiClient) -> None:
    doc = (await api.get("/beacon/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    assert {"/beacon/v1/{community}/announce", "/beacon/v1/{community}/peers"} <= set(doc["paths"])


async def test_database_fault_is_503_unavailable_not_500(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from beacon import store

    async def broken() -> None:
        raise OSError("database unreachable")

    monkeypatch.setattr(store, "get_database", broken)
    response = await announce(api, "main", ticket(seeded_key(unique("api-503")), "main", now_ms()))
    assert (response.status_code, error_code(response)) == (503, "unavailable")


async def test_cap_keeps_the_newest_others_and_never_evicts_the_caller(
    api: ApiClient, settings: Any
) -> None:
    settings.SWARM_BEACON_MAX_LIVE = 3
    name = unique("cap3")
    now = now_ms()
    others = [seeded_key(f"{name}-{i}") for i in range(3)]
    for i, key in enumerate(others):
        assert (await announce(api, name, ticket(key, name, now + 10 + i))).status_code == 200
    late = seeded_key(f"{name}-late")  # accepted now, though issued before the others
    response = await announce(api, name, ticket(late, name, now))
    assert response.status_code == 200
    # The list is what stays live: the oldest other was evicted by this very announce.
    assert [p["body"]["peer_id"] for p in response.json()["peers"]] == [
        peer_id(others[2]),
        peer_id(others[1]),
    ]
    stored = {
        pid
        async for pid in PresenceTicket.objects.filter(community__name=name).values_list(
            "peer_id", flat=True
        )
    }
    assert stored == {peer_id(late), peer_id(others[2]), peer_id(others[1])}


async def test_ticket_with_integral_float_times_is_accepted_as_js_would(api: ApiClient) -> None:
    name = unique("float")
    env = ticket(seeded_key(name), name, now_ms())
    text = json.dumps(env).replace(
        f'"issued_at": {env["body"]["issued_at"]}', f'"issued_at": {env["body"]["issued_at"]}.0'
    )
    assert ".0," in text
    assert (await announce(api, name, text)).status_code == 200


async def test_first_announce_racing_the_communitys_creation_is_not_a_replay(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two first announces to a new community: the upsert of one runs before the other
    has created the community, and its own create then finds the row already there."""
    from contextlib import asynccontextmanager

    from beacon import store

    calls: list[str] = []

    class RacingSession:
        async def announce(self, row: Any, **kw: Any) -> list[str] | None:
            calls.append("announce")
            return None if calls.count("announce") == 1 else []

        async def one(self, sql: str, params: Any) -> tuple[Any, ...] | None:
            if sql == store.CREATE_COMMUNITY:
                calls.append("create")
                return None  # the concurrent request created it first
            calls.append("is_open")
            # Missing when first looked up; there (and open) once the create lost the race.
            return None if calls.count("is_open") == 1 else (True,)

    class RacingDatabase:
        @asynccontextmanager
        async def session(self) -> Any:
            yield RacingSession()

    async def racing() -> RacingDatabase:
        return RacingDatabase()

    monkeypatch.setattr(store, "get_database", racing)
    name = unique("race")
    response = await announce(api, name, ticket(seeded_key(name), name, now_ms()))
    assert response.status_code == 200, response.text
    assert calls == ["announce", "is_open", "create", "is_open", "announce"]
