"""The client address behind proxies (shared/clientaddr.py): a proxy header is believed
from trusted peers only, read from the right, and every limit below sees the result."""

from __future__ import annotations

from typing import Any

import pytest

from shared.clientaddr import ClientAddressMiddleware, network_of, policy_for

XFF = "X-Forwarded-For"


def client(policy_args: tuple[str, bool, tuple[str, ...]], peer: str, *values: str) -> str:
    return policy_for(*policy_args).client(peer, [v.encode() for v in values])


TRUSTED = (XFF, False, ("10.9.0.0/16", "192.0.2.7"))


def test_without_any_trust_the_header_is_ignored() -> None:
    assert client((XFF, False, ()), "203.0.113.5", "198.51.100.1") == "203.0.113.5"


def test_a_trusted_proxy_names_the_client_on_its_right() -> None:
    # The client wrote "1.1.1.1" itself; the proxy appended the address it saw.
    assert client(TRUSTED, "192.0.2.7", "1.1.1.1, 198.51.100.1") == "198.51.100.1"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right() -> None:
    header = "1.1.1.1, 198.51.100.1, 10.9.3.3"
    assert client(TRUSTED, "192.0.2.7", header) == "198.51.100.1"
    # Repeated header lines read as one list, in order.
    assert client(TRUSTED, "192.0.2.7", "198.51.100.2", "10.9.3.3") == "198.51.100.2"


def test_an_untrusted_peer_cannot_name_anyone() -> None:
    assert client(TRUSTED, "203.0.113.9", "198.51.100.1") == "203.0.113.9"


def test_garbage_stops_the_walk_at_the_last_trusted_hop() -> None:
    assert client(TRUSTED, "192.0.2.7", "198.51.100.1, unknown") == "192.0.2.7"
    assert client(TRUSTED, "192.0.2.7", "nonsense, 10.9.3.3") == "10.9.3.3"


def test_the_older_switch_trusts_every_peer_as_the_one_proxy() -> None:
    legacy = (XFF, True, ())
    assert client(legacy, "127.0.0.1", "10.250.0.1") == "10.250.0.1"
    assert client(legacy, "127.0.0.1", "1.1.1.1, 10.250.0.1") == "10.250.0.1"


def test_mapped_ipv4_reads_as_ipv4() -> None:
    assert client(TRUSTED, "192.0.2.7", "::ffff:198.51.100.3") == "198.51.100.3"


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("10.1.2.3", "10.1.2.0/24"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:10.1.2.3", "10.1.2.0/24"),
        ("not-an-ip", "not-an-ip"),
    ],
)
def test_network_of(address: str, network: str) -> None:
    assert network_of(address, v4_prefix=24, v6_prefix=64) == network


async def _seen(settings: Any, peer: str, headers: list[tuple[bytes, bytes]]) -> Any:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["client"] = scope["client"]

    scope = {"type": "http", "client": [peer, 5000], "headers": headers}
    await ClientAddressMiddleware(app)(scope, None, None)
    return seen["client"]


async def test_the_middleware_rewrites_the_scope_for_trusted_proxies_only(settings: Any) -> None:
    settings.SWARM_TRUST_X_FORWARDED_FOR = False
    settings.SWARM_TRUSTED_PROXIES = ["127.0.0.9"]
    settings.SWARM_PROXY_CLIENT_HEADER = "X-Real-IP"
    via_proxy = await _seen(settings, "127.0.0.9", [(b"x-real-ip", b"198.51.100.4")])
    assert via_proxy == ["198.51.100.4", 5000]
    direct = await _seen(settings, "127.0.0.1", [(b"x-real-ip", b"198.51.100.4")])
    assert direct == ["127.0.0.1", 5000]
    other_header = await _seen(settings, "127.0.0.9", [(b"x-forwarded-for", b"198.51.100.4")])
    assert other_header == ["127.0.0.9", 5000]
