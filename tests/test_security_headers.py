"""Security headers of the pages and the production settings (swarmweb/security.py,
docs/operations.md "Security headers" and "Production settings")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from swarmweb.security import remote_origins

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent


def csp_of(response: Any) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *values = part.split()
        assert name not in directives, name
        directives[name] = values
    return directives


def test_the_page_allows_only_its_own_scripts(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    csp = csp_of(response)
    nonces = [v for v in csp["script-src"] if v.startswith("'nonce-")]
    assert csp["script-src"] == ["'self'", *nonces]
    assert len(nonces) == 1
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]
    assert csp["default-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["worker-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'", "blob:"]
    # Every inline script that runs carries that nonce: the import map is the only one;
    # the config blob is JSON, which is never run.
    html = response.content.decode()
    nonce = nonces[0].removeprefix("'nonce-").removesuffix("'")
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html)
    assert len(inline) == 2, inline
    for attributes in inline:
        assert f'nonce="{nonce}"' in attributes or 'type="application/json"' in attributes


def test_the_nonce_is_new_for_each_response(client: Client) -> None:
    first = csp_of(client.get("/"))["script-src"]
    second = csp_of(client.get("/"))["script-src"]
    assert first != second


def test_the_other_headers_of_a_page(client: Client) -> None:
    for path in ["/", "/admin/login/"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
        assert response["Referrer-Policy"] == "same-origin"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["X-Frame-Options"] == "DENY"
        permissions = dict(
            item.strip().split("=", 1) for item in response["Permissions-Policy"].split(",")
        )
        # Loopback and host ICE candidates need the camera/microphone permission.
        assert permissions["camera"] == "(self)"
        assert permissions["microphone"] == "(self)"
        assert permissions["geolocation"] == "()"


def test_json_answers_carry_no_page_policy(client: Client) -> None:
    response = client.get("/healthz")
    assert "Content-Security-Policy" not in response
    assert response["X-Content-Type-Options"] == "nosniff"


def test_configured_remote_servers_may_be_reached(client: Client, settings: Any) -> None:
    settings.SWARM_BEACON_URLS = ["https://beacon.example.org/beacon/v1/", "/beacon/v1/"]
    settings.SWARM_CAPSULE_URLS = ["https://mirror.example.net:8443/capsules/{community}.json"]
    settings.SWARM_SIGNAL_URLS = ["wss://Signal.example.org/signal/"]
    settings.SWARM_DOOR_URLS = ["wss://sp1.example.org:9443/"]
    assert csp_of(client.get("/"))["connect-src"] == [
        "'self'",
        "blob:",
        "https://beacon.example.org",
        "wss://beacon.example.org",
        "https://mirror.example.net:8443",
        "wss://mirror.example.net:8443",
        "https://signal.example.org",
        "wss://signal.example.org",
        "https://sp1.example.org:9443",
        "wss://sp1.example.org:9443",
    ]


def test_remote_origins_skip_relative_and_other_urls() -> None:
    assert remote_origins(["/signal/", "data:,x", "javascript:alert(1)", "http://a:80/x"]) == [
        "http://a:80",
        "ws://a:80",
    ]


# The production environment of docs/operations.md "Production settings".
PRODUCTION_ENV = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "k" * 10 + "0123456789abcdefghijklmnopqrstuvwxyz0123456789",
    "DJANGO_ALLOWED_HOSTS": "swarm.example.org",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://swarm.example.org",
    "SWARM_HTTPS": "true",
    "SWARM_PROXY_SSL_HEADER": "X-Forwarded-Proto",
}


def run_deploy_check(tmp_path: Path, overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "SWARM_HTTPS", "SWARM_PROXY_SSL"))
    }
    env.update(overrides, SWARM_VAR_DIR=str(tmp_path / "var"))
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_documented_production_environment_passes_the_deploy_check(tmp_path: Path) -> None:
    result = run_deploy_check(tmp_path, PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_documented_environment_is_the_one_tested() -> None:
    """docs/operations.md shows exactly these variables (but a real secret key)."""
    doc = (ROOT / "docs" / "operations.md").read_text()
    section = doc.split("## Production settings", 1)[1].split("\n## ", 1)[0]
    for name, value in PRODUCTION_ENV.items():
        if name != "DJANGO_SECRET_KEY":
            assert f"{name}={value}" in section, name
    assert "DJANGO_SECRET_KEY=" in section


def test_the_development_defaults_fail_the_deploy_check(tmp_path: Path) -> None:
    """Without the production environment the check says what is missing."""
    result = run_deploy_check(tmp_path, {})
    assert result.returncode != 0
    for code in ["security.W004", "security.W008", "security.W012", "security.W016"]:
        assert code in result.stdout + result.stderr, code
