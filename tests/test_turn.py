"""Short-lived TURN credentials (peers/protocol/turn.py, page/turn.py): the TURN REST format,
expiry, the page config and GET /turn/credentials (docs/operations.md "TURN")."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

import pytest
from django.test import Client

from page.views import page_config
from peers.peerjs.errors import PeerJSError
from peers.peerjs.ice import IceConfig
from peers.protocol.errors import ProtocolError
from peers.protocol.turn import TurnSecret, turn_password, turn_secret_from

SECRET = "coturn-shared-secret"
PEER = "pabcdefghijklmnopqrstuvwxyz234567"
URLS = ["turn:127.0.0.1:3478?transport=udp"]


def test_password_matches_a_known_vector() -> None:
    # openssl: printf '1700003600:<peer>' | openssl dgst -sha1 -hmac <secret> -binary | base64
    assert turn_password(SECRET, f"1700003600:{PEER}") == "miKN6HdYpsXmwl6zDRhdwV9sqWg="


def test_issue_names_expiry_and_user_and_signs_the_username() -> None:
    turn = TurnSecret(tuple(URLS), SECRET, ttl_s=3600)
    issued = turn.issue(1_700_000_000.9, PEER)
    assert issued.username == f"1700003600:{PEER}"
    assert issued.expires == 1_700_003_600
    assert issued.credential == "miKN6HdYpsXmwl6zDRhdwV9sqWg="
    assert issued.ice_server() == {
        "urls": URLS,
        "username": issued.username,
        "credential": issued.credential,
    }


def test_random_user_when_none_and_the_credential_verifies() -> None:
    issued = TurnSecret(tuple(URLS), SECRET, ttl_s=60).issue(1000)
    expires, user = issued.username.split(":")
    assert expires == "1060"
    assert user.startswith("r")
    assert len(user) == 17
    mac = hmac.new(SECRET.encode(), issued.username.encode(), hashlib.sha1).digest()
    assert base64.b64decode(issued.credential) == mac


@pytest.mark.parametrize("user", ["", "a:b", "x" * 65, "é"])
def test_bad_user_is_refused_with_a_stable_code(user: str) -> None:
    with pytest.raises(ProtocolError) as info:
        TurnSecret(tuple(URLS), SECRET).issue(0, user)
    assert info.value.code == "bad_turn_user"


@pytest.mark.parametrize(
    ("urls", "secret", "ttl"),
    [([], SECRET, 60), (["stun:x:3478"], SECRET, 60), (URLS, "", 60), (URLS, SECRET, 0)],
)
def test_bad_turn_settings(urls: list[str], secret: str, ttl: int) -> None:
    with pytest.raises(ProtocolError) as info:
        turn_secret_from(urls, secret, ttl)
    assert info.value.code == "bad_turn_config"


def test_turn_off_when_nothing_is_set() -> None:
    assert turn_secret_from([" "], "", 3600) is None


def test_superpeer_ice_gets_fresh_credentials_per_connection() -> None:
    ice = IceConfig.from_settings('[{"urls": "stun:127.0.0.1:3478"}]', [], URLS, SECRET, 600)
    first = ice.ice_servers(now_s=1000)
    later = ice.ice_servers(now_s=5000)
    assert first[0].urls == ("stun:127.0.0.1:3478",)
    assert first[1].username is not None
    assert first[1].username.startswith("1600:")
    assert later[1].username is not None
    assert later[1].username.startswith("5600:")
    assert first[1].credential == turn_password(SECRET, first[1].username)
    assert len(ice.rtc_configuration().iceServers) == 2
    with pytest.raises(PeerJSError) as info:
        IceConfig.from_settings([], [], URLS, "", 600)
    assert info.value.code == "bad_ice_config"


@pytest.fixture
def turn_on(settings: Any) -> Any:
    settings.SWARM_TURN_URLS = URLS
    settings.SWARM_TURN_SECRET = SECRET
    settings.SWARM_TURN_TTL_S = 600
    settings.SWARM_TURN_RATE = 3
    settings.SWARM_ICE_SERVERS = [{"urls": "stun:127.0.0.1:3478"}]
    return settings


def _client() -> tuple[Client, str]:
    # Each test its own address: the rate window lives in the shared cache.
    ip = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
    return Client(REMOTE_ADDR=ip), ip


def test_page_config_carries_credentials_but_never_the_secret(turn_on: Any) -> None:
    config = page_config("default")
    assert SECRET not in json.dumps(config)
    stun, entry = config["ice_servers"]
    assert stun == {"urls": "stun:127.0.0.1:3478"}
    assert entry["urls"] == URLS
    assert entry["credential"] == turn_password(SECRET, entry["username"])
    assert config["turn"] == {
        "url": "/turn/credentials",
        "expires": int(entry["username"].split(":")[0]),
        "ttl_s": 600,
    }
    assert config["ice_transport_policy"] == "all"


def test_page_config_without_turn(settings: Any) -> None:
    settings.SWARM_TURN_URLS = []
    settings.SWARM_TURN_SECRET = ""
    settings.SWARM_ICE_SERVERS = []
    config = page_config("default")
    assert config["ice_servers"] == []
    assert config["turn"] is None


@pytest.mark.django_db
def test_endpoint_issues_for_the_peer(turn_on: Any) -> None:
    client, _ = _client()
    response = client.get("/turn/credentials", {"peer": PEER})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert SECRET not in response.content.decode()
    _stun, entry = body["ice_servers"]
    expires, user = entry["username"].split(":")
    assert user == PEER
    assert int(expires) == body["expires"]
    assert body["ttl_s"] == 600
    assert entry["credential"] == turn_password(SECRET, entry["username"])


@pytest.mark.django_db
@pytest.mark.parametrize("peer", ["", "p" * 34, "nobody", "a:b", PEER.upper()])
def test_endpoint_bad_peer_id(turn_on: Any, peer: str) -> None:
    client, _ = _client()
    response = client.get("/turn/credentials", {"peer": peer})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_peer_id"


@pytest.mark.django_db
def test_endpoint_disabled_and_wrong_method(settings: Any) -> None:
    settings.SWARM_TURN_URLS = []
    settings.SWARM_TURN_SECRET = ""
    client, _ = _client()
    response = client.get("/turn/credentials")
    assert response.status_code == 404
    assert response.json()["error"] == "turn_disabled"
    response = client.post("/turn/credentials")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


@pytest.mark.django_db
def test_endpoint_rate_limited_per_address(turn_on: Any) -> None:
    client, _ = _client()
    for _ in range(3):
        assert client.get("/turn/credentials").status_code == 200
    response = client.get("/turn/credentials")
    assert response.status_code == 429
    assert response.json()["error"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60
    other, _ = _client()
    assert other.get("/turn/credentials").status_code == 200
