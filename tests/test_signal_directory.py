"""The directory's rules hold alike in memory and in Redis (same scenarios, explicit clock).

The Redis scripts get ``now`` and deadlines as arguments, so the same fake-clock scenarios
run against the real Redis at REDIS_URL; process liveness is the ``alive:<proc>`` key.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol

import pytest

from peers.signaling import directory as d
from peers.signaling.redis_directory import RedisDirectory

T0 = 1_800_000_000_000
REDIS_URL = os.environ.get("REDIS_URL", "")


class Dir(Protocol):
    async def claim(
        self, peer_id: str, claim: d.Holder, *, limit: int, quota: d.Quota | None = None
    ) -> d.ClaimResult: ...
    async def release(self, peer_id: str, proc: str, conn: int) -> bool: ...
    async def route(
        self, dst: str, src: str, frame: str, *, queueable: bool, limit: int, deadline: int
    ) -> str: ...
    async def expire_due(self, now: int) -> list[str]: ...
    async def count(self) -> int: ...


class MemoryDir:
    def __init__(self) -> None:
        self.d = d.MemoryDirectory()

    async def claim(
        self, peer_id: str, claim: d.Holder, *, limit: int, quota: d.Quota | None = None
    ) -> d.ClaimResult:
        return self.d.claim(peer_id, claim, limit=limit, quota=quota)

    async def release(self, peer_id: str, proc: str, conn: int) -> bool:
        return self.d.release(peer_id, proc, conn)

    async def route(
        self, dst: str, src: str, frame: str, *, queueable: bool, limit: int, deadline: int
    ) -> str:
        return self.d.route(dst, frame, queueable=queueable, queue_limit=limit, deadline=deadline)

    async def expire_due(self, now: int) -> list[str]:
        return self.d.expire_due(now)

    async def count(self) -> int:
        return self.d.count()


class RedisDir:
    def __init__(self, directory: RedisDirectory) -> None:
        self.r = directory

    async def claim(
        self, peer_id: str, claim: d.Holder, *, limit: int, quota: d.Quota | None = None
    ) -> d.ClaimResult:
        return await self.r.claim(peer_id, claim, limit=limit, quota=quota)

    async def release(self, peer_id: str, proc: str, conn: int) -> bool:
        return await self.r.release(peer_id, proc, conn)

    async def route(
        self, dst: str, src: str, frame: str, *, queueable: bool, limit: int, deadline: int
    ) -> str:
        self.r.queue_limit = limit
        return await self.r.route_now(dst, src, frame, queueable=queueable, deadline=deadline)

    async def expire_due(self, now: int) -> list[str]:
        return await self.r.expire_due(now)

    async def count(self) -> int:
        return await self.r.count()


def _prefix() -> str:
    return f"swarm:sigtest:{uuid.uuid4().hex[:8]}:"


@pytest.fixture(params=["memory", "redis"])
async def directory(request: pytest.FixtureRequest) -> AsyncIterator[Dir]:
    if request.param == "memory":
        yield MemoryDir()
        return
    if not REDIS_URL:
        pytest.skip("needs REDIS_URL")
    redis_dir = RedisDirectory(REDIS_URL, "pa", prefix=_prefix())
    await redis_dir.stay_alive()
    # The claims in these scenarios come from two live processes, "pa" and "pb".
    other = RedisDirectory(REDIS_URL, "pb", prefix=redis_dir.prefix)
    await other.stay_alive()
    # A holder counts as reachable only while its process listens on its channel.
    subscriptions = [redis_dir.redis.pubsub(), other.redis.pubsub()]
    await subscriptions[0].subscribe(redis_dir.channel)
    await subscriptions[1].subscribe(other.channel)
    for sub in subscriptions:
        await sub.get_message(timeout=2)  # the subscription is confirmed
    yield RedisDir(redis_dir)
    for sub in subscriptions:
        await sub.aclose()
    await other.close()
    await redis_dir.close()


def plain(conn: int, token: str = "tok", proc: str = "pa") -> d.Holder:
    return d.Holder(proc, conn, token, False, 0)


def proven(conn: int, rank: int, token: str, proc: str = "pa") -> d.Holder:
    return d.Holder(proc, conn, token, True, rank)


async def test_claim_rules(directory: Dir) -> None:
    assert (await directory.claim("alice", plain(1, "t1"), limit=10)).status == d.OPENED
    assert (await directory.claim("alice", plain(2, "t2"), limit=10)).status == d.TAKEN
    again = await directory.claim("alice", plain(3, "t1", proc="pb"), limit=10)
    assert (again.status, again.previous) == (d.REPLACED, ("pa", 1))
    key_id = "pkeybound"
    assert (await directory.claim(key_id, proven(4, 100, "k100"), limit=10)).status == d.OPENED
    assert (await directory.claim(key_id, proven(5, 99, "k99"), limit=10)).status == d.TAKEN
    newer = await directory.claim(key_id, proven(6, 101, "k101"), limit=10)
    assert (newer.status, newer.previous) == (d.REPLACED, ("pa", 4))
    same_rank = await directory.claim(key_id, proven(7, 101, "k101b"), limit=10)
    assert same_rank.status == d.REPLACED
    # A proof beats a plain holder (the id was held before key-bound rules applied).
    assert (await directory.claim("bob", plain(8), limit=10)).status == d.OPENED
    assert (await directory.claim("bob", proven(9, 1, "k1"), limit=10)).status == d.REPLACED
    assert await directory.count() == 3


async def test_limit_counts_new_ids_only(directory: Dir) -> None:
    assert (await directory.claim("a", plain(1), limit=2)).status == d.OPENED
    assert (await directory.claim("b", plain(2), limit=2)).status == d.OPENED
    assert (await directory.claim("c", plain(3), limit=2)).status == d.FULL
    assert (await directory.claim("a", plain(4), limit=2)).status == d.REPLACED


async def test_release_only_by_the_holder(directory: Dir) -> None:
    await directory.claim("alice", plain(1), limit=10)
    await directory.claim("alice", plain(2), limit=10)
    assert not await directory.release("alice", "pa", 1)
    assert not await directory.release("alice", "pb", 2)
    assert await directory.release("alice", "pa", 2)
    assert await directory.count() == 0


async def test_queue_until_claimed_in_order(directory: Dir) -> None:
    kw: dict[str, Any] = {"limit": 3, "deadline": T0 + 5000}
    assert await directory.route("carol", "alice", "F1", queueable=True, **kw) == d.QUEUED
    assert await directory.route("carol", "alice", "L", queueable=False, **kw) == d.DROPPED
    assert await directory.route("carol", "bob", "F2", queueable=True, **kw) == d.QUEUED
    assert await directory.route("carol", "bob", "F3", queueable=True, **kw) == d.QUEUED
    assert await directory.route("carol", "bob", "F4", queueable=True, **kw) == d.QUEUE_FULL
    result = await directory.claim("carol", plain(1), limit=10)
    assert result.queued == ("F1", "F2", "F3")
    assert await directory.expire_due(T0 + 10_000) == []
    assert await directory.route("carol", "alice", "F5", queueable=True, **kw) == d.SENT


async def test_expiry_from_the_first_message(directory: Dir) -> None:
    await directory.route("carol", "a", "F1", queueable=True, limit=9, deadline=T0 + 5000)
    await directory.route("carol", "a", "F2", queueable=True, limit=9, deadline=T0 + 8000)
    await directory.route("dave", "a", "F3", queueable=True, limit=9, deadline=T0 + 6000)
    assert await directory.expire_due(T0 + 4999) == []
    assert await directory.expire_due(T0 + 5000) == ["F1", "F2"]
    assert await directory.expire_due(T0 + 5999) == []
    assert await directory.expire_due(T0 + 6000) == ["F3"]
    # A new queue starts a new deadline.
    await directory.route("carol", "a", "F4", queueable=True, limit=9, deadline=T0 + 9000)
    assert await directory.expire_due(T0 + 8999) == []
    assert await directory.expire_due(T0 + 9000) == ["F4"]


# --- Redis only: several processes --------------------------------------------------------


def quota(ip: str, ip_limit: int = 2, network_limit: int = 3) -> d.Quota:
    return d.Quota(ip, ip.rsplit(".", 1)[0] + ".0/24", ip_limit, network_limit)


async def test_quotas_count_the_ids_an_address_and_its_network_hold(directory: Dir) -> None:
    one, two = quota("10.0.0.1"), quota("10.0.0.2")
    assert (await directory.claim("a", plain(1), limit=99, quota=one)).status == d.OPENED
    assert (await directory.claim("b", plain(2), limit=99, quota=one)).status == d.OPENED
    assert (await directory.claim("c", plain(3), limit=99, quota=one)).status == d.IP_FULL
    assert (await directory.claim("d", plain(4), limit=99, quota=two)).status == d.OPENED
    assert (await directory.claim("e", plain(5), limit=99, quota=two)).status == d.NETWORK_FULL
    elsewhere = quota("10.0.1.1")
    assert (await directory.claim("f", plain(6), limit=99, quota=elsewhere)).status == d.OPENED
    assert await directory.count() == 4  # refused claims registered nothing
    assert await directory.release("a", "pa", 1)
    assert (await directory.claim("c", plain(7), limit=99, quota=one)).status == d.OPENED


async def test_a_reconnect_at_the_quota_takes_its_id_back(directory: Dir) -> None:
    one = quota("10.0.0.1", ip_limit=1)
    assert (await directory.claim("a", plain(1, "t"), limit=99, quota=one)).status == d.OPENED
    again = await directory.claim("a", plain(2, "t"), limit=99, quota=one)
    assert (again.status, again.previous) == (d.REPLACED, ("pa", 1))
    assert (await directory.claim("b", plain(3), limit=99, quota=one)).status == d.IP_FULL
    assert await directory.release("a", "pa", 2)
    assert (await directory.claim("b", plain(4), limit=99, quota=one)).status == d.OPENED


async def test_a_claim_over_quota_leaves_the_current_holder_alone(directory: Dir) -> None:
    assert (await directory.claim("x", plain(1, "t"), limit=99)).status == d.OPENED
    full = quota("10.0.0.1", ip_limit=1)
    assert (await directory.claim("a", plain(2), limit=99, quota=full)).status == d.OPENED
    refused = await directory.claim("x", plain(3, "t", proc="pb"), limit=99, quota=full)
    assert refused.status == d.IP_FULL
    assert await directory.release("x", "pa", 1)  # still the first holder's


async def test_ids_of_a_dead_process_leave_its_clients_quota(
    pair: tuple[RedisDirectory, RedisDirectory],
) -> None:
    a, b = pair
    one = quota("10.0.0.1", ip_limit=2)
    await b.claim("b1", plain(1, proc="pb"), limit=99, quota=one)
    await b.claim("b2", plain(2, proc="pb"), limit=99, quota=one)
    assert (await a.claim("a1", plain(3), limit=99, quota=one)).status == d.IP_FULL
    await b.redis.delete(b.prefix + "alive:pb")
    assert (await a.claim("a1", plain(3), limit=99, quota=one)).status == d.OPENED
    assert await a.redis.scard(a.prefix + "grp:ip:10.0.0.1") == 1  # stale members pruned


@pytest.fixture
async def pair() -> AsyncIterator[tuple[RedisDirectory, RedisDirectory]]:
    if not REDIS_URL:
        pytest.skip("needs REDIS_URL")
    prefix = _prefix()
    a = RedisDirectory(REDIS_URL, "pa", prefix=prefix)
    b = RedisDirectory(REDIS_URL, "pb", prefix=prefix)
    await a.stay_alive()
    await b.stay_alive()
    yield a, b
    await a.close()
    await b.close()


async def _next_message(pubsub: Any) -> str:
    while True:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
        if message is not None:
            return str(message["data"].decode())


async def test_route_publishes_to_the_holders_process(
    pair: tuple[RedisDirectory, RedisDirectory],
) -> None:
    a, b = pair
    sub = b.redis.pubsub()
    await sub.subscribe(b.channel)
    await sub.get_message(timeout=2)
    await b.claim("bob", plain(7, proc="pb"), limit=10)
    status = await a.route_now("bob", "alice", '{"type":"OFFER"}', queueable=True, deadline=T0)
    assert status == d.SENT
    assert await _next_message(sub) == 'bob\nalice\n{"type":"OFFER"}'
    # Replacing a holder on another process tells that process to close the old socket.
    await a.claim("bob", plain(8, proc="pa"), limit=10)
    assert await _next_message(sub) == "!kick 7"
    await sub.aclose()


async def test_one_call_routes_many_frames_in_order(
    pair: tuple[RedisDirectory, RedisDirectory],
) -> None:
    a, b = pair
    sub_a, sub_b = a.redis.pubsub(), b.redis.pubsub()
    await sub_a.subscribe(a.channel)
    await sub_b.subscribe(b.channel)
    await sub_a.get_message(timeout=2)
    await sub_b.get_message(timeout=2)
    await a.claim("ann", plain(1, proc="pa"), limit=10)
    await b.claim("bob", plain(2, proc="pb"), limit=10)
    await b.claim("ben", plain(3, proc="pb"), limit=10)
    frames = [
        ("bob", "x", "F1", 1, T0),
        ("ann", "x", "F2", 1, T0),
        ("nobody", "x", "F3", 1, T0 + 5000),
        ("ben", "x", "F4", 1, T0),
        ("nobody", "x", "L", 0, T0),
        ("bob", "y", "F5", 1, T0),
    ]
    a.queue_limit = 10
    statuses = await a.route_many(frames * 50)  # 300 frames: more than one script call
    assert statuses[:6] == ["sent", "sent", "queued", "sent", "dropped", "sent"]
    assert statuses.count("queued") == 10
    assert statuses.count("queue_full") == 40
    lines: list[str] = []
    while len(lines) < 3 * 150:
        lines += (await _next_message(sub_b)).split("\n")
    triples = [tuple(lines[i : i + 3]) for i in range(0, len(lines), 3)]
    assert triples == [("bob", "x", "F1"), ("ben", "x", "F4"), ("bob", "y", "F5")] * 50
    got_a: list[str] = []
    while len(got_a) < 3 * 50:
        got_a += (await _next_message(sub_a)).split("\n")
    assert got_a == ["ann", "x", "F2"] * 50
    await sub_a.aclose()
    await sub_b.aclose()


async def test_ids_of_a_dead_process_are_free_and_unreachable(
    pair: tuple[RedisDirectory, RedisDirectory],
) -> None:
    a, b = pair
    await b.claim("bob", plain(1, "t-b", proc="pb"), limit=10)
    await b.claim("ben", plain(2, "t-b", proc="pb"), limit=10)
    # pb is "alive" but does not listen: a frame for its id cannot be delivered.
    status = await a.route_now("bob", "alice", "F", queueable=True, deadline=T0)
    assert status == d.DEAD
    await b.redis.delete(b.prefix + "alive:pb")
    taken_over = await a.claim("ben", plain(3, "t-a", proc="pa"), limit=10)
    assert (taken_over.status, taken_over.previous) == (d.OPENED, None)
    await b.claim("bea", plain(4, proc="pb"), limit=10)
    assert await a.sweep() == 1  # bea; bob was dropped by the failed route, ben was retaken
    assert sorted(await a.ids()) == ["ben"]


async def test_stay_alive_reports_a_lapse(pair: tuple[RedisDirectory, RedisDirectory]) -> None:
    a, _ = pair
    assert await a.stay_alive(ttl_ms=50)
    await asyncio.sleep(0.1)
    assert not await a.stay_alive()


# --- Redis only: what the reconciler and the sweeper use ---------------------------------


async def test_release_many_frees_only_what_this_process_and_connection_hold(
    pair: tuple[RedisDirectory, RedisDirectory],
) -> None:
    a, b = pair
    await a.claim("ann", plain(1, proc="pa"), limit=10)
    await a.claim("amy", plain(2, proc="pa"), limit=10)
    await b.claim("bob", plain(3, proc="pb"), limit=10)
    # ann by its connection; amy by a connection that no longer holds it; bob is pb's
    assert await a.release_many([("ann", 1), ("amy", 9), ("bob", 3)]) == 1
    assert sorted(await a.ids()) == ["amy", "bob"]
    assert await a.owned([]) == {"amy": ("pa", 2)}
    assert await a.release_many([]) == 0


async def test_owned_names_the_holders_of_our_ids_and_of_those_asked_about(
    pair: tuple[RedisDirectory, RedisDirectory],
) -> None:
    a, b = pair
    await a.claim("ann", plain(1, "t1", proc="pa"), limit=10)
    await b.claim("ann", plain(5, "t1", proc="pb"), limit=10)  # the same client, moved
    await a.claim("amy", plain(2, proc="pa"), limit=10)
    assert await a.owned(["ann", "zed"]) == {"amy": ("pa", 2), "ann": ("pb", 5), "zed": None}


async def test_sweep_frees_entries_of_dead_holders_even_unlisted_ones(
    pair: tuple[RedisDirectory, RedisDirectory],
) -> None:
    a, b = pair
    await b.claim("bob", plain(1, proc="pb"), limit=10)
    await a.claim("ann", plain(2, proc="pa"), limit=10)
    # pb's alive key lapsed and it is missing from the list of processes too
    await b.redis.delete(b.prefix + "alive:pb", b.prefix + "procs")
    await a.stay_alive()
    assert await a.sweep() == 1
    assert await a.ids() == ["ann"]


async def test_a_subscription_is_confirmed_before_it_is_returned(
    pair: tuple[RedisDirectory, RedisDirectory],
) -> None:
    a, b = pair
    subscription = await b.subscribe()
    await b.claim("bob", plain(7, proc="pb"), limit=10)
    assert await a.route_now("bob", "x", "F", queueable=True, deadline=T0) == d.SENT
    message = await asyncio.wait_for(subscription.next_message(), 2)
    assert message["data"] == b"bob\nx\nF"
    await subscription.close()
