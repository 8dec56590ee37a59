"""The admin in Chromium: a staff member blocks a peer from the ticket list (its next
announce gets 403) and the operations dashboard draws its charts, with no violation of the
pages' Content-Security-Policy."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, expect

from beacon.models import BeaconProbe, CapsuleRun, Community, RemoteBeacon
from ops.models import Alert, MetricSample
from shared.clock import now_ms
from tests.browser.conftest import RECORD_VIOLATIONS, new_context
from tests.support.keys import peer_id, seeded_key, ticket
from tests.support.live import Server

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"


def announce(server: Server, community: str, label: str, ip: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/beacon/v1/{community}/announce",
        json=ticket(seeded_key(label), community, now_ms()),
        headers={"X-Forwarded-For": ip},
        timeout=10,
    )


def log_in(page: Page, server: Server) -> None:
    User.objects.create_superuser("operator", "operator@example.invalid", PASSWORD)
    page.goto(server.url + "/admin/login/?next=/admin/")
    page.fill("input[name=username]", "operator")
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#swarm-dashboard-link")).to_be_visible()


def test_staff_blocks_a_peer_from_the_ticket_list_and_its_next_announce_is_403(
    beacon_server: Server, browser: Browser, screenshots: Path
) -> None:
    community = f"b-{uuid.uuid4().hex[:8]}"
    label = f"browser-block-{community}"
    assert announce(beacon_server, community, label, "10.200.0.1").status_code == 200
    announce(beacon_server, community, f"{label}-bystander", "10.200.0.2")
    target = peer_id(seeded_key(label))

    context = new_context(browser, beacon_server.url)
    page = context.new_page()
    log_in(page, beacon_server)
    page.goto(f"{beacon_server.url}/admin/beacon/presenceticket/?q={target}")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    rows.first.locator("input.action-select").check()
    page.select_option("select[name=action]", "block_peers")
    page.click("button[name=index]")
    expect(page.locator(".messagelist")).to_contain_text("Blocked 1")
    page.screenshot(path=str(screenshots / "admin-block-peer.png"))
    context.close()

    refused = announce(beacon_server, community, label, "10.200.0.3")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "blocked"
    assert announce(beacon_server, community, f"{label}-other", "10.200.0.4").status_code == 200


def seed_history(now: int) -> None:
    """Six hours of the history the worker would have recorded."""
    communities = [Community.objects.create(name=f"dash-{n}") for n in ("main", "art", "dev")]
    beacons = [
        RemoteBeacon.objects.create(name=n, base_url=f"https://{n}.example/beacon/v1/")
        for n in ("eu-west", "us-east")
    ]
    counters = {"rate_limited": 0.0, "bad_signature": 0.0, "expired": 0.0, "accepted": 0.0}
    for minute in range(360, 0, -1):
        at = now - minute * 60_000
        for i, beacon in enumerate(beacons):
            ok = not (i == 1 and 40 < minute < 70) and (minute + i) % 17 != 0
            latency = 35 + 25 * i + (minute * 7 + i * 13) % 30
            BeaconProbe.objects.create(beacon=beacon, at=at, ok=ok, latency_ms=latency)
        for i, community in enumerate(communities):
            live = (60 - 20 * i) + (minute * (i + 3)) % 25
            MetricSample.objects.create(
                name="swarm_beacon_live_tickets",
                labels=f'{{community="{community.name}"}}',
                at=at,
                value=live,
            )
            if minute % 5 == 0:
                CapsuleRun.objects.create(
                    community=community,
                    started_at=at,
                    finished_at=at,
                    ok=True,
                    peer_count=min(100, live),
                )
        counters["accepted"] += 40 + minute % 9
        counters["rate_limited"] += (minute * 3) % 7
        counters["bad_signature"] += 1 if minute % 11 == 0 else 0
        counters["expired"] += (minute % 4) // 3
        for result, value in counters.items():
            MetricSample.objects.create(
                name="swarm_beacon_announces_total",
                labels=f'{{result="{result}"}}',
                at=at,
                value=value,
            )
    Alert.objects.create(
        kind=Alert.BEACON_UNHEALTHY,
        subject="us-east",
        message="success 62% over the last 15 min (10/16 probes), under 80%",
        opened_at=now - 600_000,
    )


def test_dashboard_draws_its_charts(
    beacon_server: Server, browser: Browser, screenshots: Path
) -> None:
    seed_history(now_ms())
    context = new_context(browser, beacon_server.url)
    # The admin and the dashboard (its import map by nonce) under the pages' CSP.
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, beacon_server)
    assert page.evaluate("() => window.__cspViolations") == []
    page.screenshot(path=str(screenshots / "admin-index.png"))
    page.click("#swarm-dashboard-link")
    expect(page.locator("#swarm-dashboard[data-ready='1']")).to_have_count(1)
    expect(page.locator(".sd-chart .uplot")).to_have_count(5)
    expect(page.locator("#sd-alerts")).to_contain_text("us-east")
    expect(page.locator("#sd-communities")).to_contain_text("dash-main")
    page.screenshot(path=str(screenshots / "admin-dashboard.png"), full_page=True)
    assert errors == []
    assert page.evaluate("() => window.__cspViolations") == []
    context.close()
