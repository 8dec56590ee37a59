"""ICE configuration of the Python peer: which servers, which local addresses.

Two aiortc/aioice defaults are wrong for a server-side peer, so both are explicit here:

- aiortc uses a public STUN server when ``iceServers`` is None. :meth:`IceConfig.rtc_configuration`
  always passes a list (empty by default), so no traffic goes anywhere not configured.
- aioice gathers host candidates on every interface except 127.0.0.1. With
  ``host_addresses`` set, :func:`gather_on_configured_addresses` gathers on exactly those
  addresses (127.0.0.1 allowed, which loopback tests need) before aiortc would gather itself.

With a :class:`~peers.protocol.turn.TurnSecret` (``SWARM_TURN_*``), every new connection gets
TURN credentials computed at that moment from the shared secret, so they never run out.

``transport_policy="relay"`` is the browsers' ``iceTransportPolicy: "relay"``: aiortc passes it
to aioice (``RTCConfiguration.iceTransportPolicy``), which then gathers only relay candidates;
host addresses are then not gathered on either (they would be host candidates).
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnection

from peers.protocol.errors import ProtocolError
from peers.protocol.turn import TurnSecret, turn_secret_from

from .errors import PeerJSError

BAD_ICE_CONFIG = "bad_ice_config"
ICE_COMPONENT_RTP = 1
TRANSPORT_POLICIES = ("all", "relay")


@dataclass(frozen=True)
class IceServer:
    """One RTCIceServer: ``stun:``/``turn:``/``turns:`` URLs and TURN credentials."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def to_rtc(self) -> RTCIceServer:
        return RTCIceServer(
            urls=list(self.urls), username=self.username, credential=self.credential
        )


@dataclass(frozen=True)
class IceConfig:
    """``servers``: ICE servers (default none); ``host_addresses``: local IPs to gather on
    (default: aioice's choice, every interface but loopback); ``turn``: TURN URLs and the
    shared secret, credentials made per connection for ``turn_user`` (default a random id);
    ``transport_policy``: ``"all"`` or ``"relay"`` (only TURN candidates; needs a TURN server)."""

    servers: tuple[IceServer, ...] = ()
    host_addresses: tuple[str, ...] = field(default=())
    turn: TurnSecret | None = None
    turn_user: str | None = None
    transport_policy: str = "all"

    def __post_init__(self) -> None:
        for address in self.host_addresses:
            try:
                ipaddress.ip_address(address)
            except ValueError as exc:
                raise PeerJSError(BAD_ICE_CONFIG, f"{address!r} is not an IP address") from exc
        if self.transport_policy not in TRANSPORT_POLICIES:
            raise PeerJSError(
                BAD_ICE_CONFIG, f"transport policy {self.transport_policy!r} is not all or relay"
            )
        if self.transport_policy == "relay" and not self.has_turn:
            raise PeerJSError(BAD_ICE_CONFIG, "the relay transport policy needs a TURN server")

    @property
    def has_turn(self) -> bool:
        return self.turn is not None or any(
            url.startswith(("turn:", "turns:")) for server in self.servers for url in server.urls
        )

    @property
    def gather_addresses(self) -> tuple[str, ...]:
        """The addresses :func:`gather_on_configured_addresses` binds host candidates on:
        none with the relay policy (aioice then gathers the relay candidates itself)."""
        return self.host_addresses if self.transport_policy == "all" else ()

    def ice_servers(self, now_s: float | None = None) -> tuple[IceServer, ...]:
        """The configured servers and, with TURN, an entry with credentials fresh at ``now_s``."""
        if self.turn is None:
            return self.servers
        issued = self.turn.issue(time.time() if now_s is None else now_s, self.turn_user)
        return (*self.servers, IceServer(issued.urls, issued.username, issued.credential))

    def rtc_configuration(self, now_s: float | None = None) -> RTCConfiguration:
        return RTCConfiguration(
            iceServers=[server.to_rtc() for server in self.ice_servers(now_s)],
            iceTransportPolicy=RTCIceTransportPolicy(self.transport_policy),
        )

    @classmethod
    def from_settings(
        cls,
        servers: Any,
        host_addresses: Iterable[str],
        turn_urls: Iterable[str] = (),
        turn_secret: str = "",
        turn_ttl_s: int = 3600,
        transport_policy: str = "all",
    ) -> IceConfig:
        """Build from settings values: ``servers`` is JSON text or a parsed list of
        ``{"urls": str | [str], "username"?: str, "credential"?: str}``; the TURN values are
        ``SWARM_TURN_URLS``, ``SWARM_TURN_SECRET`` and ``SWARM_TURN_TTL_S``; the policy is
        ``SWARM_SUPERPEER_ICE_TRANSPORT_POLICY``."""
        try:
            turn = turn_secret_from(list(turn_urls), turn_secret, turn_ttl_s)
        except ProtocolError as exc:
            raise PeerJSError(BAD_ICE_CONFIG, exc.message) from exc
        return cls(
            parse_ice_servers(servers),
            tuple(a.strip() for a in host_addresses if a.strip()),
            turn=turn,
            transport_policy=transport_policy,
        )


def parse_ice_servers(value: Any) -> tuple[IceServer, ...]:
    """Parse an RTCIceServer list as browsers take it (``urls`` a string or a list)."""
    if isinstance(value, str):
        if not value.strip():
            return ()
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise PeerJSError(BAD_ICE_CONFIG, "ICE servers are not JSON") from exc
    if not isinstance(value, list):
        raise PeerJSError(BAD_ICE_CONFIG, "ICE servers are not a list")
    servers = []
    for item in value:
        if not isinstance(item, dict):
            raise PeerJSError(BAD_ICE_CONFIG, "an ICE server is not an object")
        urls = item.get("urls")
        urls = [urls] if isinstance(urls, str) else urls
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
            raise PeerJSError(BAD_ICE_CONFIG, "an ICE server has no urls")
        for url in urls:
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise PeerJSError(BAD_ICE_CONFIG, f"{url!r} is not a stun: or turn: URL")
        username, credential = item.get("username"), item.get("credential")
        if not isinstance(username, str | None) or not isinstance(credential, str | None):
            raise PeerJSError(BAD_ICE_CONFIG, "ICE server username/credential are not strings")
        servers.append(IceServer(tuple(urls), username, credential))
    return tuple(servers)


async def gather_on_configured_addresses(pc: RTCPeerConnection, addresses: Sequence[str]) -> None:
    """Gather the data channel's host candidates on ``addresses`` only.

    Call after the SCTP transport exists (``createDataChannel`` on the offering side,
    ``setRemoteDescription`` on the answering side) and before ``setLocalDescription``.
    aioice exposes no option for the addresses, so this runs its own per-component gathering
    (``get_component_candidates``, which also asks the configured STUN/TURN servers) and
    marks gathering done, which makes aiortc's later ``gather()`` keep these candidates.
    """
    if not addresses or pc.sctp is None:
        return
    gatherer = pc.sctp.transport.transport.iceGatherer
    connection = gatherer._connection
    if gatherer.state != "new" or connection._local_candidates_start:
        return
    connection._local_candidates_start = True
    candidates = await connection.get_component_candidates(
        component=ICE_COMPONENT_RTP, addresses=list(addresses)
    )
    if not candidates:
        raise PeerJSError(BAD_ICE_CONFIG, f"could not bind any of {', '.join(addresses)}")
    connection._local_candidates += candidates
    connection._local_candidates_end = True
