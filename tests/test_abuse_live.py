"""One abusive address against two real daphne processes (PostgreSQL, Redis), while a
legitimate client from another address keeps being served (docs/operations.md "Abuse
limits"; the longer version with figures is bench/abuse.py).

The abuser is 127.0.0.1; the legitimate client binds to 127.0.0.2 (both in 127.0.0.0/24,
the same network for the per-network limits, which the limits here leave room for).
Each test says what the abusive input gets and asserts the legitimate client's success;
figures are printed (pytest -s shows them).
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from beacon.models import PresenceTicket
from shared.clock import now_ms
from tests.support import abuse
from tests.support.abuse import ATTACKER, LEGIT
from tests.support.keys import seeded_key, ticket
from tests.support.live import Server, start_daphne
from tests.support.signal import SignalClient, new_id

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

PER_IP_CONNECTIONS = 40
HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
PROXY = "127.0.0.9"
LIMITS = {
    "SWARM_HTTP_MAX_CONNECTIONS_PER_IP": str(PER_IP_CONNECTIONS),
    "SWARM_HTTP_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
    "SWARM_HTTP_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
    "SWARM_HTTP_MAX_BODY_BYTES": str(1024 * 1024),
    "SWARM_SIGNAL_IDS_PER_IP": "5",
    "SWARM_SIGNAL_SOCKETS_PER_IP": "3",
    "SWARM_SIGNAL_IDS_PER_NETWORK": "8",
    "SWARM_SIGNAL_SOCKETS_PER_NETWORK": "6",
    "SWARM_COMMUNITY_NEW_PER_IP_HOUR": "3",
    "SWARM_COMMUNITY_NEW_PER_HOUR": "6",
    "SWARM_ADMIN_LOGIN_FAILURES": "5",
    "SWARM_TRUSTED_PROXIES": PROXY,
    "SWARM_LOG_LEVEL": "WARNING",
}


@pytest.fixture(scope="module")
def web(
    live_db: None, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[tuple[Server, Server]]:
    """Two web processes on one PostgreSQL and one Redis, as the operator ran them."""
    if not os.environ.get("REDIS_URL"):
        pytest.skip("two web processes need REDIS_URL")
    servers = [
        start_daphne(tmp_path_factory.mktemp(f"abuse-{n}"), artifacts_dir, LIMITS, name=f"abuse{n}")
        for n in "ab"
    ]
    yield servers[0], servers[1]
    for server in servers:
        server.stop()


@pytest.fixture
def fresh_buckets() -> Iterator[None]:
    """Community budgets and loopback announce buckets as new, before and after: other
    tests (in-process ones too) share this Redis and announce from 127.0.0.1."""

    def reset() -> None:
        client = redis.Redis.from_url(os.environ["REDIS_URL"])
        for pattern in ("swarm:rl:newcomm:*", "swarm:rl:ip:127.*"):
            for key in client.scan_iter(pattern):
                client.delete(key)

    reset()
    yield
    reset()


def report(title: str, **figures: object) -> None:
    print(f"\n[abuse] {title}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def legit_client() -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=LEGIT), timeout=10)


# --- connections: slowloris and the per-address cap -------------------------------------


async def test_slowloris_is_cut_at_the_header_deadline_and_capped_per_address(
    web: tuple[Server, Server],
) -> None:
    server, _ = web
    # Warm (the first /healthz of a process opens its connections): the probe measures the
    # service during the attack, not a cold start.
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(f"{server.url}/healthz")).status_code == 200
    stop = asyncio.Event()
    probe_task = asyncio.ensure_future(abuse.probe_until(server.url, "/healthz", stop))
    attack = [
        abuse.trickle(server.port, ATTACKER, every_s=0.5, give_up_s=HEADER_TIMEOUT_S + 3)
        for _ in range(PER_IP_CONNECTIONS + 20)
    ]
    answers = await asyncio.gather(*attack)
    stop.set()
    probe = await probe_task
    outcomes = Counter((a.status, a.code) for a in answers)
    cut = sorted(a.ended_after_s for a in answers if a.code == "header_timeout")
    report(
        "slowloris",
        connections=len(answers),
        outcomes=dict(outcomes),
        cut_after_s=f"{cut[0]:.2f}..{cut[-1]:.2f}",
        legit=probe.summary(),
    )
    # The first 40 are held until the header deadline, then get 408; the rest 429 at once.
    assert outcomes[(408, "header_timeout")] == PER_IP_CONNECTIONS
    assert outcomes[(429, "too_many_connections")] == 20
    assert cut[0] >= HEADER_TIMEOUT_S - 0.1
    assert cut[-1] < HEADER_TIMEOUT_S + 1.0
    assert probe.total >= 8  # a fresh connection every 0.1 s while the attack lasted
    assert probe.rate == 1.0, probe.failed


async def test_a_body_trickled_past_its_deadline_gets_408_body_timeout(
    web: tuple[Server, Server],
) -> None:
    server, _ = web
    answer = await abuse.streamed_body(
        server.port, ATTACKER, "/healthz", total=100_000, chunk=100, every_s=0.5
    )
    after = f"{answer.ended_after_s:.2f}s"
    report("slow body", status=answer.status, code=answer.code, cut_after=after)
    assert (answer.status, answer.code) == (408, "body_timeout")
    assert answer.ended_after_s is not None
    assert BODY_TIMEOUT_S - 0.1 <= answer.ended_after_s < BODY_TIMEOUT_S + 1.5
    with legit_client() as client:
        assert client.get(server.url + "/healthz").status_code == 200


def test_a_trusted_proxy_names_the_client_others_cannot(web: tuple[Server, Server]) -> None:
    server, _ = web
    name = f"proxied-{uuid.uuid4().hex[:8]}"
    for source, forwarded in ((PROXY, "198.51.100.7"), (LEGIT, "6.6.6.6")):
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(transport=transport, timeout=10) as client:
            response = client.post(
                f"{server.url}/beacon/v1/{name}/announce",
                json=ticket(seeded_key(f"{name}-{source}"), name, now_ms()),
                headers={"X-Forwarded-For": forwarded},
            )
        assert response.status_code == 200, response.text
    stored = PresenceTicket.objects.filter(community__name=name).values_list("ip", flat=True)
    assert set(stored) == {"198.51.100.7", LEGIT}


async def test_a_trusted_proxy_is_not_capped_per_address(web: tuple[Server, Server]) -> None:
    server, _ = web
    # The proxy carries many clients: the per-address cap does not apply to it.
    held = [await abuse.open_from(server.port, PROXY) for _ in range(PER_IP_CONNECTIONS + 5)]
    try:
        for source in (PROXY, LEGIT):
            transport = httpx.AsyncHTTPTransport(local_address=source)
            async with httpx.AsyncClient(transport=transport, timeout=10) as client:
                assert (await client.get(server.url + "/healthz")).status_code == 200
    finally:
        for _, writer in held:
            writer.close()


# --- request bodies -----------------------------------------------------------------------


async def test_huge_bodies_are_refused_unread_and_memory_stays_bounded(
    web: tuple[Server, Server],
) -> None:
    server, _ = web
    pid = server.proc.pid
    rss_before, _ = abuse.rss_mib(pid)
    stop = asyncio.Event()
    probe_task = asyncio.ensure_future(abuse.probe_until(server.url, "/healthz", stop))
    half_gib = 500 * 1024 * 1024
    declared = await asyncio.gather(
        abuse.declared_body(server.port, ATTACKER, "/beacon/v1/main/announce", half_gib),
        abuse.declared_body(server.port, ATTACKER, "/beacon/v1/main/withdraw", half_gib),
        *(abuse.declared_body(server.port, ATTACKER, "/admin/login/", half_gib) for _ in range(2)),
    )
    streamed = await asyncio.gather(
        *(abuse.streamed_body(server.port, ATTACKER, "/admin/login/", half_gib) for _ in range(4))
    )
    await asyncio.sleep(0.5)  # and while the refused connections drain
    stop.set()
    probe = await probe_task
    rss_after, peak = abuse.rss_mib(pid)
    report(
        "huge bodies",
        declared=[(a.status, a.code, f"{a.ended_after_s:.2f}s") for a in declared],
        streamed_mib_before_413=[round(a.sent / 2**20, 1) for a in streamed],
        rss_mib=f"{rss_before:.0f} -> {rss_after:.0f} (peak {peak:.0f})",
        legit=probe.summary(),
    )
    assert [(a.status, a.code) for a in declared] == [(413, "too_large")] * 4
    assert all(a.ended_after_s is not None and a.ended_after_s < 2 for a in declared)
    assert [(a.status, a.code) for a in streamed] == [(413, "too_large")] * 4
    assert all(a.sent < half_gib for a in streamed)
    assert rss_after < rss_before + 40
    assert peak < rss_before + 80  # four half-GiB bodies were never buffered
    assert probe.rate == 1.0, probe.failed


# --- signaling ------------------------------------------------------------------------------


async def _outcome(base: str, source: str) -> tuple[str, SignalClient]:
    """OPEN, or the code of the ERROR the server refused the socket with (once it closed)."""
    client = await SignalClient.connect(base, new_id(), source=source)
    frame = await client.recv()
    if frame == {"type": "OPEN"}:
        return "open", client
    assert frame is not None, "closed without a frame"
    assert frame["type"] == "ERROR", frame
    assert await client.closed()
    return str(frame["payload"].get("code")), client


async def test_one_address_cannot_take_the_signaling_ids_or_sockets(
    web: tuple[Server, Server],
) -> None:
    a, b = web
    clients: list[SignalClient] = []
    outcomes: dict[str, list[str]] = {}
    try:
        for label, base, source, count in (
            ("127.0.0.1 on A", a.ws_url, ATTACKER, 10),
            ("127.0.0.1 on B", b.ws_url, ATTACKER, 10),
            ("127.0.5.1 on A", a.ws_url, "127.0.5.1", 3),
            ("127.0.5.2 on A", a.ws_url, "127.0.5.2", 3),
            ("127.0.5.3 on A", a.ws_url, "127.0.5.3", 3),
            ("127.0.5.3 on B", b.ws_url, "127.0.5.3", 3),
        ):
            outcomes[label] = []
            for _ in range(count):
                outcome, client = await _outcome(base, source)
                outcomes[label].append(outcome)
                clients.append(client)
        # The legitimate client shares 127.0.0.0/24 with the abuser: the network limits
        # leave it room. Two of its pages on different processes reach each other.
        alice = await (await SignalClient.connect(a.ws_url, new_id(), source=LEGIT)).opened()
        clients.append(alice)
        bob = await (await SignalClient.connect(b.ws_url, new_id(), source=LEGIT)).opened()
        clients.append(bob)
        await alice.send({"type": "OFFER", "dst": bob.peer_id, "payload": {"sdp": "x"}})
        offer = await bob.recv()
        report("signaling", **{k: dict(Counter(v)) for k, v in outcomes.items()}, legit="open")
        assert offer is not None
        assert offer["type"] == "OFFER"
        assert offer["src"] == alice.peer_id
        # Sockets are counted per process: 3 on A, the others refused before any claim.
        assert outcomes["127.0.0.1 on A"] == ["open"] * 3 + ["ip_socket_limit"] * 7
        # Ids across both processes: 5 in all, so B opens 2 and refuses the rest (a refused
        # socket may still count on B for a moment: then its socket limit answers first).
        on_b = outcomes["127.0.0.1 on B"]
        assert on_b[:3] == ["open", "open", "ip_id_limit"]
        assert set(on_b[3:]) <= {"ip_id_limit", "ip_socket_limit"}
        # Several addresses of one /24 share its limits: 6 sockets on A, 8 ids in all.
        assert outcomes["127.0.5.1 on A"] == outcomes["127.0.5.2 on A"] == ["open"] * 3
        assert outcomes["127.0.5.3 on A"] == ["network_socket_limit"] * 3
        assert outcomes["127.0.5.3 on B"] == ["open", "open", "network_id_limit"]
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


# --- communities ----------------------------------------------------------------------------


async def test_new_communities_per_address_and_in_all_are_budgeted(
    web: tuple[Server, Server], fresh_buckets: None
) -> None:
    a, b = web

    def announce(server: Server, source: str, name: str) -> httpx.Response:
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(transport=transport, timeout=10) as client:
            body = ticket(seeded_key(f"{name}-{uuid.uuid4().hex}"), name, now_ms())
            return client.post(f"{server.url}/beacon/v1/{name}/announce", json=body)

    names = [f"junk-{uuid.uuid4().hex[:8]}" for _ in range(5)]
    attack = [announce((a, b)[i % 2], ATTACKER, name) for i, name in enumerate(names)]
    mine = announce(a, LEGIT, f"mine-{uuid.uuid4().hex[:8]}")
    others = [announce(b, "127.0.0.3", f"more-{uuid.uuid4().hex[:8]}") for _ in range(2)]
    late = announce(a, "127.0.0.4", f"late-{uuid.uuid4().hex[:8]}")
    existing = announce(b, LEGIT, names[0])
    report(
        "communities",
        attacker=[r.status_code for r in attack],
        legit_new=mine.status_code,
        after_the_server_budget=late.status_code,
        legit_existing=existing.status_code,
    )
    assert [r.status_code for r in attack] == [200, 200, 200, 429, 429]
    refused = attack[3].json()["error"]
    assert refused["code"] == "community_limit"
    assert "per address" in refused["message"]
    assert int(attack[3].headers["Retry-After"]) > 600
    assert mine.status_code == 200
    assert [r.status_code for r in others] == [200, 200]
    assert (late.status_code, late.json()["error"]["code"]) == (429, "community_limit")
    assert "per server" in late.json()["error"]["message"]
    assert existing.status_code == 200  # existing communities cost nothing


# --- admin login and static paths -------------------------------------------------------


def _login(server: Server, source: str, password: str) -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=10) as client:
        form = client.get(f"{server.url}/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token is not None
        return client.post(
            f"{server.url}/admin/login/?next=/admin/",
            data={"username": "root", "password": password, "csrfmiddlewaretoken": token[1]},
            headers={"Referer": f"{server.url}/admin/login/"},
        )


def test_admin_login_locks_out_the_guessing_address_only(
    web: tuple[Server, Server], django_user_model: Any
) -> None:
    a, b = web
    django_user_model.objects.create_superuser("root", "root@example.com", "right-horse")
    guesses = [_login((a, b)[i % 2], ATTACKER, f"wrong-{i}").status_code for i in range(6)]
    locked = _login(a, ATTACKER, "right-horse")
    admin = _login(b, LEGIT, "right-horse")
    report(
        "admin login",
        guesses=guesses,
        right_password_from_guesser=locked.status_code,
        admin_elsewhere=admin.status_code,
    )
    # Four wrong passwords get the form again; the fifth locks the address (on both
    # processes: failures are counted in the database), the right password included.
    assert guesses == [200] * 4 + [429] * 2
    assert locked.status_code == 429
    assert "too many login attempts" in locked.text
    # The real admin, from another address, is not locked out.
    assert admin.status_code == 302
    assert admin.headers["Location"] == "/admin/"


@pytest.mark.parametrize(
    "path", ["/static/../manage.py", "/static/%2e%2e/manage.py", "/static/swarm/../../x"]
)
async def test_paths_out_of_static_are_404(web: tuple[Server, Server], path: str) -> None:
    server, _ = web
    reader, writer = await abuse.open_from(server.port, ATTACKER)
    # A host the server accepts: the answer is about the path (a disallowed Host is a 400).
    host = f"127.0.0.1:{server.port}"
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    raw = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    assert raw.startswith(b"HTTP/1.1 404 "), raw[:200]
    assert b"DJANGO_SETTINGS_MODULE" not in raw  # manage.py's text never leaks
