"""The lean ASGI paths' shared plumbing (shared/fastpath.py), and what the beacon's and the
signaling's paths answer with it, header for header: the wire their clients see."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.fastpath import PerLoop
from tests.support.asgi import ApiClient

pytestmark = pytest.mark.django_db(transaction=True)

NO_STORE_ANY_ORIGIN = [
    ("cache-control", "no-store"),
    ("access-control-allow-origin", "*"),
]


def raw(response: Any) -> list[tuple[str, str]]:
    return [(name.decode(), value.decode()) for name, value in response.headers.raw]


async def test_beacon_answers_carry_type_length_no_store_cors_then_their_own(
    api: ApiClient,
) -> None:
    listed = await api.get("/beacon/v1/fastpath-headers/peers")
    assert listed.status_code == 200
    assert raw(listed) == [
        ("content-type", "application/json"),
        ("content-length", str(len(listed.content))),
        *NO_STORE_ANY_ORIGIN,
        ("access-control-expose-headers", "Retry-After"),
    ]
    wrong = await api.request("PUT", "/beacon/v1/fastpath-headers/announce")
    assert wrong.status_code == 405
    assert raw(wrong)[-1] == ("allow", "POST, OPTIONS")
    preflight = await api.request(
        "OPTIONS",
        "/beacon/v1/fastpath-headers/announce",
        Origin="https://mirror.example",
        **{"Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert raw(preflight) == [
        ("content-type", "application/json"),
        ("content-length", "0"),
        *NO_STORE_ANY_ORIGIN,
        ("access-control-expose-headers", "Retry-After"),
        ("access-control-allow-methods", "POST, OPTIONS"),
        ("access-control-allow-headers", "content-type"),
        ("access-control-max-age", "86400"),
    ]


async def test_beacon_head_keeps_the_length_and_leaves_the_body_out(api: ApiClient) -> None:
    got = await api.get("/beacon/v1/fastpath-head/peers")
    head = await api.request("HEAD", "/beacon/v1/fastpath-head/peers")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(got.content))


async def test_signaling_answers_carry_type_length_no_store_cors_then_their_own(
    api: ApiClient,
) -> None:
    issued = await api.get("/signal/peerjs/id")
    assert issued.status_code == 200
    assert raw(issued) == [
        ("content-type", "text/plain; charset=utf-8"),
        ("content-length", str(len(issued.content))),
        *NO_STORE_ANY_ORIGIN,
    ]
    root = await api.get("/signal/")
    assert raw(root)[0] == ("content-type", "application/json; charset=utf-8")
    assert root.json()["name"] == "PeerJS Server"
    wrong = await api.post("/signal/peerjs/id", "")
    assert (wrong.status_code, raw(wrong)[-1]) == (405, ("allow", "GET"))
    preflight = await api.request("OPTIONS", "/signal/peerjs/id")
    assert preflight.status_code == 204
    assert raw(preflight) == [
        ("content-type", "text/plain; charset=utf-8"),
        ("content-length", "0"),
        *NO_STORE_ANY_ORIGIN,
        ("access-control-allow-methods", "GET, HEAD, OPTIONS"),
        ("access-control-max-age", "86400"),
    ]


def test_per_loop_makes_one_instance_per_event_loop() -> None:
    per_loop = PerLoop(object)
    loops = [asyncio.new_event_loop() for _ in range(2)]
    try:
        assert loops[0].run_until_complete(_current(per_loop)) is None  # asking makes none
        first = loops[0].run_until_complete(_get(per_loop))
        second = loops[1].run_until_complete(_get(per_loop))
        assert first is not second
        assert loops[0].run_until_complete(_get(per_loop)) is first
        assert loops[0].run_until_complete(_current(per_loop)) is first
        assert loops[1].run_until_complete(_get(per_loop)) is second
    finally:
        for loop in loops:
            loop.close()


async def _current(per_loop: PerLoop[object]) -> object | None:
    return per_loop.current()


def test_per_loop_forgets_past_its_bound_and_never_without_one() -> None:
    bounded = PerLoop(object, keep=2)
    kept = PerLoop(object, keep=None)
    loops = [asyncio.new_event_loop() for _ in range(4)]
    try:
        firsts = [loop.run_until_complete(_get(bounded)) for loop in loops]
        kept_firsts = [loop.run_until_complete(_get(kept)) for loop in loops]
        # The fourth loop found three instances, more than two: they were forgotten.
        assert loops[0].run_until_complete(_get(bounded)) is not firsts[0]
        assert loops[3].run_until_complete(_get(bounded)) is firsts[3]
        assert [loop.run_until_complete(_get(kept)) for loop in loops] == kept_firsts
    finally:
        for loop in loops:
            loop.close()


async def _get(per_loop: PerLoop[object]) -> object:
    return per_loop.get()


def test_per_loop_pop_hands_the_instance_back_once() -> None:
    per_loop = PerLoop(object)

    async def pop_twice() -> tuple[object, object | None, object | None]:
        made = per_loop.get()
        return made, per_loop.pop(), per_loop.pop()

    made, popped, again = asyncio.run(pop_twice())
    assert popped is made
    assert again is None
