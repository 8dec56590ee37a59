"""New communities cost a budget, and made-up ones cost nothing once their tickets are gone:
capsule publishing and /metrics cover configured communities and those with live tickets."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from beacon import limits, selectors
from beacon.models import Community
from shared.clock import now_ms
from tests.support.asgi import ApiClient
from tests.support.keys import seeded_key, ticket

pytestmark = pytest.mark.django_db(transaction=True)


def _clear_redis_budgets() -> None:
    from django.conf import settings

    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter("swarm:rl:newcomm:*"):
            client.delete(key)


@pytest.fixture(autouse=True)
def _own_addresses(settings: Any) -> None:
    """Announces come from the X-Forwarded-For addresses below, never 127.0.0.1 (whose
    beacon bucket in Redis other test files count on)."""
    settings.SWARM_TRUST_X_FORWARDED_FOR = True


@pytest.fixture
def budgets(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Small budgets, spent by nobody before (the buckets are shared in Redis)."""
    settings.SWARM_COMMUNITY_NEW_PER_IP_HOUR = 2
    settings.SWARM_COMMUNITY_NEW_PER_HOUR = 3
    monkeypatch.setattr(limits, "_memory_state", limits.MemoryState())
    _clear_redis_budgets()
    yield
    _clear_redis_budgets()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def announce(api: ApiClient, name: str, ip: str, ttl_ms: int = 60_000) -> Any:
    body = json.dumps(ticket(seeded_key(unique(name)), name, now_ms(), ttl_ms=ttl_ms))
    return await api.post(f"/beacon/v1/{name}/announce", body, ip=ip)


async def test_an_address_over_its_hourly_budget_gets_429_community_limit(
    api: ApiClient, budgets: None
) -> None:
    made = [unique("mine") for _ in range(3)]
    assert [(await announce(api, n, "10.60.0.1")).status_code for n in made[:2]] == [200, 200]
    refused = await announce(api, made[2], "10.60.0.1")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "community_limit"
    assert "per address" in refused.json()["error"]["message"]
    assert int(refused.headers["Retry-After"]) > 1000  # one new community per 30 minutes
    assert not await Community.objects.filter(name=made[2]).aexists()
    # Communities that exist cost nothing: the same address goes on announcing to them.
    assert (await announce(api, made[0], "10.60.0.1")).status_code == 200
    # Another address has its own budget, until the server's is spent.
    assert (await announce(api, unique("theirs"), "10.60.0.2")).status_code == 200
    last = await announce(api, unique("late"), "10.60.0.3")
    assert (last.status_code, last.json()["error"]["code"]) == (429, "community_limit")
    assert "per server" in last.json()["error"]["message"]


async def test_zero_turns_the_budgets_off(api: ApiClient, budgets: None, settings: Any) -> None:
    settings.SWARM_COMMUNITY_NEW_PER_IP_HOUR = 0
    settings.SWARM_COMMUNITY_NEW_PER_HOUR = 0
    statuses = [(await announce(api, unique("free"), "10.60.1.1")).status_code for _ in range(6)]
    assert statuses == [200] * 6


async def test_made_up_communities_stop_costing_once_their_tickets_expire(api: ApiClient) -> None:
    junk, live = unique("junk"), unique("live")
    assert (await announce(api, junk, "10.60.2.1", ttl_ms=300)).status_code == 200
    assert (await announce(api, live, "10.60.2.2")).status_code == 200
    kept = await Community.objects.acreate(name=unique("kept"))  # made in the admin
    junk_row = await Community.objects.aget(name=junk)
    assert not junk_row.configured  # an announce made it
    await asyncio.sleep(0.4)  # the junk community's only ticket expires
    now = now_ms()
    active = await _sync(selectors.active_community_ids, now=now)
    assert junk_row.id not in active
    assert kept.id in active
    assert (await Community.objects.aget(name=live)).id in active
    reported = dict(await _sync(selectors.live_counts, now=now))
    assert junk not in reported
    assert reported[live] == 1
    assert reported[kept.name] == 0
    metrics = await _sync(lambda: Client().get("/metrics").content.decode())
    assert f'community="{junk}"' not in metrics
    assert f'swarm_beacon_live_tickets{{community="{live}"}} 1' in metrics


async def _sync(fn: Any, **kwargs: Any) -> Any:
    from asgiref.sync import sync_to_async

    return await sync_to_async(fn)(**kwargs)
