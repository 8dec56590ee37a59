"""ICE configuration of the Python peer: settings, parsing, and gathering on chosen addresses."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection
from django.conf import settings

from peers.peerjs.errors import PeerJSError
from peers.peerjs.ice import IceConfig, IceServer, gather_on_configured_addresses, parse_ice_servers


def test_settings_default_to_no_ice_servers() -> None:
    config = IceConfig.from_settings(
        settings.SWARM_SUPERPEER_ICE_SERVERS, settings.SWARM_SUPERPEER_HOST_ADDRESSES
    )
    assert config.rtc_configuration().iceServers == []


def test_ice_servers_parse_like_rtc_ice_server_lists() -> None:
    servers = parse_ice_servers(
        '[{"urls": "stun:stun.example:3478"},'
        ' {"urls": ["turn:t.example:3478", "turns:t.example:5349"], "username": "u",'
        ' "credential": "c"}]'
    )
    assert servers == (
        IceServer(("stun:stun.example:3478",)),
        IceServer(("turn:t.example:3478", "turns:t.example:5349"), "u", "c"),
    )
    rtc = IceConfig(servers).rtc_configuration().iceServers
    assert [s.urls for s in rtc] == [
        ["stun:stun.example:3478"],
        ["turn:t.example:3478", "turns:t.example:5349"],
    ]
    assert parse_ice_servers("") == ()
    assert parse_ice_servers([]) == ()


@pytest.mark.parametrize(
    "value",
    [
        "{not json",
        '{"urls": "stun:x"}',
        "[1]",
        '[{"urls": []}]',
        '[{"urls": "http://x"}]',
        '[{"urls": "turn:x", "username": 5}]',
    ],
)
def test_bad_ice_servers_are_refused(value: str) -> None:
    with pytest.raises(PeerJSError) as info:
        parse_ice_servers(value)
    assert info.value.code == "bad_ice_config"


def test_host_addresses_must_be_ip_addresses() -> None:
    assert IceConfig.from_settings([], [" 127.0.0.1 ", ""]).host_addresses == ("127.0.0.1",)
    with pytest.raises(PeerJSError) as info:
        IceConfig(host_addresses=("localhost",))
    assert info.value.code == "bad_ice_config"


async def offer_sdp(config: IceConfig) -> str:
    pc = RTCPeerConnection(config.rtc_configuration())
    try:
        pc.createDataChannel("probe")
        await gather_on_configured_addresses(pc, config.host_addresses)
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


async def test_loopback_is_gathered_when_configured() -> None:
    # aioice on its own skips 127.0.0.1; configured, it is the only host candidate.
    sdp = await offer_sdp(IceConfig(host_addresses=("127.0.0.1",)))
    candidates = [line.split() for line in sdp.splitlines() if line.startswith("a=candidate:")]
    assert [(c[4], c[7]) for c in candidates] == [("127.0.0.1", "host")]


async def test_an_address_that_cannot_be_bound_is_an_error() -> None:
    with pytest.raises(PeerJSError) as info:
        await offer_sdp(IceConfig(host_addresses=("192.0.2.254",)))
    assert info.value.code == "bad_ice_config"
