"""The page carries the browser peer's config (page/views.py, docs/configuration.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from beacon import capsule_keys

pytestmark = pytest.mark.django_db


def page_config(client: Client, query: str = "") -> tuple[dict[str, Any], str]:
    response = client.get("/" + query)
    assert response.status_code == 200
    html = response.content.decode()
    start = html.index('<script id="swarm-config" type="application/json">') + len(
        '<script id="swarm-config" type="application/json">'
    )
    end = html.index("</script>", start)
    return json.loads(html[start:end]), html


def test_defaults_point_at_this_server(client: Client, settings: Any, tmp_path: Path) -> None:
    settings.VAR_DIR = tmp_path
    key = capsule_keys.create(now=1_000)
    config, html = page_config(client)
    assert config["community"] == "main"
    assert config["beacons"] == ["/beacon/v1/"]
    assert config["capsules"] == ["/capsules/{community}.json"]
    assert config["signaling"] == ["/signal/"]
    assert config["doors"] == []
    assert config["ice_servers"] == []
    assert [k["pk"] for k in config["capsule_keys"]] == [key.public_key]
    assert config["mesh"] == {"target": 6, "max": 10, "approval": "auto"}
    assert config["rendezvous"]["retry_ms"] == 15_000
    assert config["repair"] == {
        "tick_ms": 5_000,
        "announce_ms": 60_000,
        "warmup_ms": 75_000,
        "worker_grace_ms": 180_000,
        "fetch_timeout_ms": 600_000,
    }
    assert 'id="swarm-status" data-state="offline"' in html
    assert 'data-community="main"' in html


def test_settings_override_urls_keys_and_ice(client: Client, settings: Any) -> None:
    settings.SWARM_BEACON_URLS = ["https://a.example/beacon/v1/", "https://b.example/beacon/v1/"]
    settings.SWARM_CAPSULE_URLS = ["https://mirror.example/{community}.json"]
    settings.SWARM_CAPSULE_KEYS = ["zJYZ5pEFovHFbYayaUmPyMqkLhKbVmqSuI1c43HifDY"]
    settings.SWARM_SIGNAL_URLS = ["wss://s1.example/signal/", "wss://s2.example/signal/"]
    settings.SWARM_DOOR_URLS = ["wss://sp1.example:9443/"]
    settings.SWARM_ICE_SERVERS = [{"urls": "stun:stun.example:3478"}]
    settings.SWARM_MESH_APPROVAL = "manual"
    settings.SWARM_REPAIR_WARMUP_S = 2
    settings.SWARM_REPAIR_ANNOUNCE_S = 3
    config, _ = page_config(client)
    assert config["repair"]["warmup_ms"] == 2_000
    assert config["repair"]["announce_ms"] == 3_000
    assert config["beacons"] == settings.SWARM_BEACON_URLS
    assert config["capsules"] == settings.SWARM_CAPSULE_URLS
    assert config["capsule_keys"] == [{"pk": settings.SWARM_CAPSULE_KEYS[0]}]
    assert config["signaling"] == settings.SWARM_SIGNAL_URLS
    assert config["doors"] == settings.SWARM_DOOR_URLS
    assert config["ice_servers"] == settings.SWARM_ICE_SERVERS
    assert config["mesh"]["approval"] == "manual"


def test_community_from_the_query_string_only_when_valid(client: Client) -> None:
    config, html = page_config(client, "?community=book-club")
    assert config["community"] == "book-club"
    assert 'data-community="book-club"' in html
    config, html = page_config(client, "?community=%3Cscript%3E")
    assert config["community"] == "main"
    assert "<script>" not in html.split("</head>")[1]


def test_config_json_cannot_break_out_of_its_script_tag(client: Client, settings: Any) -> None:
    settings.SWARM_SEED_PEERS = ["</script><script>alert(1)</script>"]
    config, html = page_config(client)
    assert config["seeds"] == settings.SWARM_SEED_PEERS
    assert "</script><script>alert(1)" not in html
