"""ICE configuration of the Python peer: settings, parsing, and gathering on chosen addresses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCIceTransportPolicy, RTCPeerConnection
from django.conf import settings

from peers.peerjs.errors import PeerJSError
from peers.peerjs.ice import IceConfig, IceServer, gather_on_configured_addresses, parse_ice_servers
from peers.superpeer.config import SuperPeerConfig


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
        await gather_on_configured_addresses(pc, config.gather_addresses)
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


TURN = IceServer(("turn:127.0.0.1:3478",), "u", "c")


def test_the_relay_policy_reaches_aiortc_and_gathers_on_no_host_address() -> None:
    ice = IceConfig((TURN,), host_addresses=("127.0.0.1",), transport_policy="relay")
    assert ice.rtc_configuration().iceTransportPolicy is RTCIceTransportPolicy.RELAY
    assert ice.gather_addresses == ()
    ice = IceConfig((TURN,), host_addresses=("127.0.0.1",))
    assert ice.rtc_configuration().iceTransportPolicy is RTCIceTransportPolicy.ALL
    assert ice.gather_addresses == ("127.0.0.1",)
    relay = IceConfig.from_settings([], [], ["turn:127.0.0.1:3478"], "s", 600, "relay")
    assert relay.transport_policy == "relay"


@pytest.mark.parametrize(
    ("servers", "policy"),
    [((), "relay"), ((IceServer(("stun:127.0.0.1:3478",)),), "relay"), ((TURN,), "any")],
)
def test_a_policy_that_cannot_work_is_refused(servers: tuple[IceServer, ...], policy: str) -> None:
    with pytest.raises(PeerJSError) as info:
        IceConfig(servers, transport_policy=policy)
    assert info.value.code == "bad_ice_config"


async def test_the_relay_policy_offers_no_host_candidate() -> None:
    # A TURN server that does not answer: no relay candidate either, and still no host one.
    sdp = await offer_sdp(
        IceConfig(
            (IceServer(("turn:127.0.0.1:9?transport=udp",), "u", "c"),),
            host_addresses=("127.0.0.1",),
            transport_policy="relay",
        )
    )
    assert [line for line in sdp.splitlines() if line.startswith("a=candidate:")] == []


def test_superpeer_settings_carry_the_policy(settings: Any, tmp_path: Path) -> None:
    settings.SWARM_TURN_URLS = ["turn:127.0.0.1:3478"]
    settings.SWARM_TURN_SECRET = "s"
    settings.SWARM_SUPERPEER_ICE_TRANSPORT_POLICY = "relay"
    settings.SWARM_SUPERPEER_STORE_DIR = str(tmp_path)
    config = SuperPeerConfig.from_settings(settings)
    assert config.ice.transport_policy == "relay"
    assert config.ice.rtc_configuration().iceTransportPolicy is RTCIceTransportPolicy.RELAY


@pytest.mark.parametrize(
    ("policy", "turn", "error"),
    [
        ("relay", "", "SWARM_SUPERPEER_ICE_TRANSPORT_POLICY=relay needs a TURN server"),
        ("any", "", "SWARM_SUPERPEER_ICE_TRANSPORT_POLICY must be all or relay"),
        ("relay", "turn:127.0.0.1:3478", None),
    ],
)
def test_the_settings_refuse_a_policy_that_cannot_work(
    policy: str, turn: str, error: str | None
) -> None:
    env = {
        **os.environ,
        "SWARM_SUPERPEER_ICE_TRANSPORT_POLICY": policy,
        "SWARM_TURN_URLS": turn,
        "SWARM_TURN_SECRET": "s" if turn else "",
        "DJANGO_SETTINGS_MODULE": "swarmweb.settings",
    }
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if error is None:
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode != 0
        assert error in done.stderr
