"""Withdrawals (``POST /beacon/v1/<community>/withdraw``): a leaving page takes back its
ticket so others stop dialing it. Through the real ASGI application; every bad input gets
its stable error and leaves the stored ticket alone."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from peers.protocol.envelope import DOMAIN_TICKET, sign
from peers.protocol.ticket import make_withdrawal
from shared.clock import now_ms
from tests.support.asgi import ApiClient
from tests.support.keys import peer_id, seeded_key, ticket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _limits(settings: Any) -> None:
    settings.SWARM_BEACON_IP_BURST = 1_000_000
    settings.SWARM_BEACON_READ_IP_BURST = 1_000_000
    settings.SWARM_BEACON_PEER_INTERVAL_S = 15  # the default: a refresh within it is 429


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def post(client: ApiClient, community: str, action: str, body: Any) -> Any:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return await client.post(f"/beacon/v1/{community}/{action}", data)


async def listed(client: ApiClient, community: str) -> list[str]:
    peers = (await client.get(f"/beacon/v1/{community}/peers")).json()["peers"]
    return [p["body"]["peer_id"] for p in peers]


def error_code(response: Any) -> str:
    payload = response.json()
    assert payload["ok"] is False
    return str(payload["error"]["code"])


async def test_a_withdrawn_ticket_is_no_longer_listed_and_a_second_withdrawal_is_a_no_op(
    api: ApiClient,
) -> None:
    name = unique("wd")
    alice, bob = seeded_key(f"{name}-a"), seeded_key(f"{name}-b")
    env = ticket(alice, name, now_ms())
    assert (await post(api, name, "announce", env)).status_code == 200
    assert (await post(api, name, "announce", ticket(bob, name, now_ms()))).status_code == 200
    assert set(await listed(api, name)) == {peer_id(alice), peer_id(bob)}
    withdrawal = make_withdrawal(alice, community=name, nonce=env["body"]["nonce"])
    first = await post(api, name, "withdraw", withdrawal)
    assert (first.status_code, first.json()) == (200, {"ok": True, "withdrawn": True})
    assert await listed(api, name) == [peer_id(bob)]
    again = await post(api, name, "withdraw", withdrawal)
    assert (again.status_code, again.json()) == (200, {"ok": True, "withdrawn": False})


async def test_after_a_withdrawal_a_newer_ticket_is_accepted_at_once_and_replays_are_refused(
    api: ApiClient,
) -> None:
    name = unique("wd-reload")
    alice = seeded_key(name)
    now = now_ms()
    old = ticket(alice, name, now)
    assert (await post(api, name, "announce", old)).status_code == 200
    # Within the per-peer interval a refresh is 429 ...
    soon = await post(api, name, "announce", ticket(alice, name, now + 1))
    assert (soon.status_code, error_code(soon)) == (429, "rate_limited")
    # ... but after the page withdrew (it is reloading) the new page's ticket goes in at once.
    withdrawal = make_withdrawal(alice, community=name, nonce=old["body"]["nonce"])
    assert (await post(api, name, "withdraw", withdrawal)).json()["withdrawn"] is True
    replay = await post(api, name, "announce", old)
    assert (replay.status_code, error_code(replay)) == (422, "replay")
    assert await listed(api, name) == []
    fresh = ticket(alice, name, now + 2)
    assert (await post(api, name, "announce", fresh)).status_code == 200
    assert await listed(api, name) == [peer_id(alice)]


async def test_a_withdrawal_of_an_older_ticket_leaves_the_newer_one(api: ApiClient) -> None:
    name = unique("wd-old")
    alice = seeded_key(name)
    now = now_ms()
    first = ticket(alice, name, now)
    assert (await post(api, name, "announce", first)).status_code == 200
    old = make_withdrawal(alice, community=name, nonce=first["body"]["nonce"])
    assert (await post(api, name, "withdraw", old)).json()["withdrawn"] is True
    assert (await post(api, name, "announce", ticket(alice, name, now + 5))).status_code == 200
    # The old withdrawal, replayed by anyone, cannot take the new ticket down.
    replayed = await post(api, name, "withdraw", old)
    assert (replayed.status_code, replayed.json()["withdrawn"]) == (200, False)
    assert await listed(api, name) == [peer_id(alice)]


@pytest.mark.parametrize(
    ("make", "status", "code"),
    [
        (lambda k, name, nonce: b"not json", 400, "bad_json"),
        (lambda k, name, nonce: "[]", 400, "bad_envelope"),
        (lambda k, name, nonce: "x" * 5000, 413, "too_large"),
        (
            # Someone else signs a withdrawal naming the peer: refused.
            lambda k, name, nonce: sign(
                "swarm/withdraw/v1",
                {"peer_id": peer_id(k), "community": name, "nonce": nonce},
                seeded_key("mallory"),
            ),
            422,
            "peer_mismatch",
        ),
        (
            # The peer's signature, but over a ticket's domain: never a withdrawal.
            lambda k, name, nonce: sign(
                DOMAIN_TICKET, {"peer_id": peer_id(k), "community": name, "nonce": nonce}, k
            ),
            422,
            "bad_signature",
        ),
        (
            lambda k, name, nonce: make_withdrawal(k, community="elsewhere", nonce=nonce),
            422,
            "wrong_community",
        ),
        (lambda k, name, nonce: make_withdrawal(k, community=name, nonce="x"), 400, "bad_body"),
    ],
)
async def test_bad_withdrawals_get_stable_errors_and_leave_the_ticket(
    api: ApiClient, make: Any, status: int, code: str
) -> None:
    name = unique("wd-bad")
    alice = seeded_key(name)
    env = ticket(alice, name, now_ms())
    assert (await post(api, name, "announce", env)).status_code == 200
    response = await post(api, name, "withdraw", make(alice, name, env["body"]["nonce"]))
    assert (response.status_code, error_code(response)) == (status, code)
    assert await listed(api, name) == [peer_id(alice)]


async def test_withdraw_answers_405_with_allow_to_get(api: ApiClient) -> None:
    response = await api.get("/beacon/v1/main/withdraw")
    assert (response.status_code, error_code(response)) == (405, "method_not_allowed")
    assert response.headers["Allow"] == "POST, OPTIONS"
