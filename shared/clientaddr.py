"""Who the client is: its address, behind trusted proxies only, and its network.

Every per-address rule (beacon buckets, signaling and community limits, blocks, the
admin login throttle) needs the client's address. :class:`ClientAddressMiddleware`
resolves it once, at the top of the ASGI application, and writes it into
``scope["client"]``; everything below (Django's ``REMOTE_ADDR`` included) reads that.

A proxy header is believed only from a trusted peer (docs/configuration.md
"Clients behind proxies"):

- ``SWARM_TRUSTED_PROXIES`` (addresses or networks): the header is read only on
  connections from those peers, and the client is the rightmost header entry that is
  not itself a trusted proxy (entries on its left were written by the client and prove
  nothing);
- ``SWARM_TRUST_X_FORWARDED_FOR`` alone (the older switch): every peer counts as the one
  proxy in front, and the client is the rightmost entry, the one that proxy wrote.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ProxyPolicy:
    """Which peers may name the client, and in which header (lower-case bytes)."""

    header: bytes
    trust_all: bool
    proxies: tuple[Network, ...]

    @property
    def enabled(self) -> bool:
        return self.trust_all or bool(self.proxies)

    def is_proxy(self, address: str) -> bool:
        """Whether ``address`` is a peer whose header is believed."""
        if self.proxies:
            ip = parse_ip(address)
            return ip is not None and any(ip in net for net in self.proxies)
        return self.trust_all

    def client(self, peer: str, values: Iterable[bytes]) -> str:
        """The client address for a request from ``peer`` carrying header ``values``."""
        if not self.is_proxy(peer):
            return peer
        entries = [e.strip() for v in values for e in v.decode("latin-1").split(",")]
        client = peer
        for entry in reversed(entries):
            ip = parse_ip(entry)
            if ip is None:
                break  # a hop that wrote garbage: trust nothing further left
            client = str(ip)
            if not (self.proxies and any(ip in net for net in self.proxies)):
                break
        return client


@lru_cache(maxsize=8)
def policy_for(header: str, trust_all: bool, proxies: tuple[str, ...]) -> ProxyPolicy:
    """The policy of a header name, the older trust-every-peer switch and proxy networks."""
    networks = tuple(ipaddress.ip_network(p, strict=False) for p in proxies if p.strip())
    return ProxyPolicy(header.strip().lower().encode("latin-1"), trust_all, networks)


def proxy_policy() -> ProxyPolicy:
    """The policy the settings describe now (tests change settings at run time)."""
    return policy_for(
        settings.SWARM_PROXY_CLIENT_HEADER,
        settings.SWARM_TRUST_X_FORWARDED_FOR,
        tuple(settings.SWARM_TRUSTED_PROXIES),
    )


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:a.b.c.d is the IPv4 client a dual-stack socket saw
    return ip


def network_of(address: str, *, v4_prefix: int, v6_prefix: int) -> str:
    """The network an address counts under for per-network limits ("10.1.2.0/24")."""
    ip = parse_ip(address)
    if ip is None:
        return address
    prefix = v4_prefix if ip.version == 4 else v6_prefix
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def scope_client(scope: Scope) -> str | None:
    """The client address of an ASGI scope (after :class:`ClientAddressMiddleware`)."""
    client = scope.get("client")
    return str(client[0]) if client else None


class ClientAddressMiddleware:
    """Rewrite ``scope["client"]`` to the real client when a trusted proxy names it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            policy = proxy_policy()
            client = scope.get("client")
            if policy.enabled and client:
                values = [v for k, v in scope.get("headers", ()) if k == policy.header]
                if values:
                    resolved = policy.client(str(client[0]), values)
                    if resolved != client[0]:
                        scope = {**scope, "client": [resolved, client[1]]}
        await self.app(scope, receive, send)
