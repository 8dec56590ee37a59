"""Serving many peers at once: round robin across connections, backpressure on each
channel's bufferedAmount, bounded queues (fake channels, no network)."""

from __future__ import annotations

import asyncio

import pytest

from peers.superpeer.scheduler import ChunkRequest, FairQueue, Sent, Uploader

FRAME = 1000


def req(i: int) -> ChunkRequest:
    return ChunkRequest("m", i, f"c{i}")


def always(_: str) -> bool:
    return True


# --- the pure queue ---


def test_connections_are_served_in_turn_whatever_the_order_of_arrival() -> None:
    queue = FairQueue()
    for i in range(4):
        queue.push("a", req(i))
    for i in range(2):
        queue.push("b", req(10 + i))
    queue.push("c", req(20))
    order = []
    while (picked := queue.pick(always)) is not None:
        order.append((picked[0], picked[1].index))
    assert order == [("a", 0), ("b", 10), ("c", 20), ("a", 1), ("b", 11), ("a", 2), ("a", 3)]


def test_a_connection_that_is_not_ready_is_skipped_not_waited_for() -> None:
    queue = FairQueue()
    for i in range(3):
        queue.push("slow", req(i))
        queue.push("fast", req(10 + i))
    served = [queue.pick(lambda c: c == "fast") for _ in range(4)]
    assert [(p[0], p[1].index) if p else None for p in served] == [
        ("fast", 10),
        ("fast", 11),
        ("fast", 12),
        None,
    ]
    assert queue.pending("slow") == 3
    picked = queue.pick(always)
    assert picked is not None
    assert picked[0] == "slow"


def test_queue_per_connection_is_bounded_and_drops_are_counted() -> None:
    queue = FairQueue(max_pending=3)
    assert [queue.push("a", req(i)) for i in range(5)] == [True, True, True, False, False]
    assert queue.dropped == 2
    assert queue.pending("a") == 3
    assert queue.push("b", req(9)) is True  # another connection is not affected


def test_forgetting_a_connection_drops_its_requests() -> None:
    queue = FairQueue()
    queue.push("a", req(1))
    queue.push("b", req(2))
    assert queue.forget("a") == 1
    assert queue.forget("a") == 0
    picked = queue.pick(always)
    assert picked is not None
    assert picked[0] == "b"
    assert queue.pick(always) is None
    assert len(queue) == 0


# --- the asyncio uploader with fake channels ---


class FakeChannel:
    """A DataChannel stand-in: sending adds to bufferedAmount until the test drains it."""

    def __init__(self, name: str, log: list[tuple[str, int]]) -> None:
        self.name = name
        self.log = log
        self.buffered_amount = 0
        self.open = True
        self.max_buffered = 0

    async def send(self, value: bytes) -> None:
        self.buffered_amount += len(value)
        self.max_buffered = max(self.max_buffered, self.buffered_amount)
        self.log.append((self.name, int(value.decode().lstrip("0") or "0")))

    def drain(self) -> None:
        self.buffered_amount = 0


def make_uploader(low_water: int, on_sent: Sent | None = None) -> Uploader:
    def read(request: ChunkRequest) -> bytes | None:
        return None if request.index < 0 else b"x"

    def encode(request: ChunkRequest, data: bytes | None) -> bytes:
        return str(request.index).encode().rjust(FRAME, b"0")

    return Uploader(read, encode, on_sent=on_sent, low_water=low_water, poll_s=0.001)


async def wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.001)


async def test_uploader_interleaves_connections_round_robin() -> None:
    log: list[tuple[str, int]] = []
    uploader = make_uploader(low_water=10**9)
    channels = {name: FakeChannel(name, log) for name in "abc"}
    for name, channel in channels.items():
        uploader.attach(name, channel)
    for i in range(6):
        uploader.request("a", req(i))
    for i in range(3):
        uploader.request("b", req(100 + i))
        uploader.request("c", req(200 + i))
    task = asyncio.create_task(uploader.run())
    await wait_for(lambda: len(log) == 12)
    task.cancel()
    assert log[:9] == [
        ("a", 0),
        ("b", 100),
        ("c", 200),
        ("a", 1),
        ("b", 101),
        ("c", 201),
        ("a", 2),
        ("b", 102),
        ("c", 202),
    ]
    assert log[9:] == [("a", 3), ("a", 4), ("a", 5)]


async def test_a_full_channel_waits_for_its_buffer_while_others_keep_going() -> None:
    log: list[tuple[str, int]] = []
    uploader = make_uploader(low_water=3 * FRAME)
    slow, fast = FakeChannel("slow", log), FakeChannel("fast", log)
    uploader.attach("slow", slow)
    uploader.attach("fast", fast)
    for i in range(10):
        uploader.request("slow", req(i))
        uploader.request("fast", req(100 + i))
    task = asyncio.create_task(uploader.run())

    async def drain_fast() -> None:
        while True:
            fast.drain()
            await asyncio.sleep(0.001)

    drainer = asyncio.create_task(drain_fast())
    await wait_for(lambda: sum(1 for name, _ in log if name == "fast") == 10)
    # The slow peer never read: it got what fits under the low-water mark, no more.
    assert sum(1 for name, _ in log if name == "slow") == 3
    assert slow.max_buffered == 3 * FRAME
    assert uploader.queue.pending("slow") == 7
    slow.drain()
    await wait_for(lambda: sum(1 for name, _ in log if name == "slow") == 6)
    assert slow.max_buffered == 3 * FRAME  # never more than low water (plus nothing)
    slow.drain()
    slow.drain()
    await wait_for(lambda: uploader.queue.pending("slow") <= 1)
    drainer.cancel()
    task.cancel()


async def test_missing_chunks_are_answered_and_closed_connections_forgotten() -> None:
    log: list[tuple[str, int]] = []
    seen: list[tuple[str, int, bool]] = []
    uploader = make_uploader(
        10**9, lambda conn, request, size, found: seen.append((conn, request.index, found))
    )
    a = FakeChannel("a", log)
    uploader.attach("a", a)
    assert uploader.request("nobody", req(1)) is False
    uploader.request("a", req(-1))
    task = asyncio.create_task(uploader.run())
    await wait_for(lambda: len(seen) == 1)
    assert seen == [("a", -1, False)]
    a.open = False
    uploader.request("a", req(2))
    await asyncio.sleep(0.01)
    assert uploader.queue.pending("a") == 1  # not ready while closed
    uploader.detach("a")
    assert len(uploader.queue) == 0
    task.cancel()


@pytest.mark.parametrize("connections", [8, 16])
async def test_every_connection_finishes_when_many_share_the_uploader(connections: int) -> None:
    log: list[tuple[str, int]] = []
    uploader = make_uploader(low_water=4 * FRAME)
    channels = [FakeChannel(f"c{i}", log) for i in range(connections)]
    for channel in channels:
        uploader.attach(channel.name, channel)
        for i in range(50):
            uploader.request(channel.name, req(i))
    task = asyncio.create_task(uploader.run())

    async def drain_all() -> None:
        # Each peer drains at its own pace: peer k every k+1 rounds.
        rounds = 0
        while True:
            rounds += 1
            for k, channel in enumerate(channels):
                if rounds % (k + 1) == 0:
                    channel.drain()
            await asyncio.sleep(0.001)

    drainer = asyncio.create_task(drain_all())
    await wait_for(lambda: len(log) == 50 * connections, timeout=20)
    drainer.cancel()
    task.cancel()
    for channel in channels:
        assert [i for name, i in log if name == channel.name] == list(range(50))
        assert channel.max_buffered <= 4 * FRAME
    # Fairness: in the first round every connection was served before any got a second.
    assert sorted(name for name, _ in log[:connections]) == sorted(c.name for c in channels)
