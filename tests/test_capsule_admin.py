"""The admin as operators use it: dashboard, bulk actions, capsule and alert lists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from beacon import capsule_keys
from beacon.models import BeaconProbe, Capsule, CapsuleRun, Community, PresenceTicket, RemoteBeacon
from ops import history
from ops.models import Alert, Block, MetricCounter
from shared.clock import now_ms
from tests.support.capsules import store_ticket
from tests.support.keys import peer_id, seeded_key, ticket

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client) -> Client:
    user = User.objects.create_superuser("ops", "ops@example.invalid", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def var(settings: Any, tmp_path: Path) -> Path:
    settings.VAR_DIR = tmp_path / "var"
    settings.SWARM_CAPSULE_DIR = tmp_path / "var" / "capsules"
    capsule_keys.create(now=0)
    return Path(settings.VAR_DIR)


def store(community: Community, key_label: str, now: int) -> PresenceTicket:
    stored: PresenceTicket = store_ticket(
        community, ticket(seeded_key(key_label), community.name, now)
    )
    return stored


def test_dashboard_is_for_staff_only() -> None:
    response = Client().get("/admin/dashboard/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_admin_index_links_the_dashboard(staff: Client) -> None:
    assert 'id="swarm-dashboard-link"' in staff.get("/admin/").content.decode()


def test_dashboard_shows_communities_capsules_beacons_alerts_and_refusals(
    staff: Client, var: Path
) -> None:
    now = now_ms()
    main = Community.objects.create(name="main")
    store(main, "dash-a", now)
    staff.post(f"/admin/dashboard/publish/{main.id}/")
    beacon = RemoteBeacon.objects.create(name="east", base_url="http://127.0.0.1:9/beacon/v1/")
    for i in range(5):
        BeaconProbe.objects.create(beacon=beacon, at=now - i * 60_000, ok=i != 2, latency_ms=20.0)
    Alert.objects.create(kind=Alert.PUBLISH_FAILING, subject="other", message="x", opened_at=now)
    counter = MetricCounter.objects.create(
        name="swarm_beacon_announces_total", labels='{result="rate_limited"}', value=10
    )
    history.metrics_sample(now=now - 120_000)
    counter.value = 17
    counter.save()
    history.metrics_sample(now=now - 60_000)

    page = staff.get("/admin/dashboard/?hours=1").content.decode()
    assert 'data-community="main"' in page
    assert "1 &lt; 20" in page  # capsule under the minimum of peers is flagged
    assert "east" in page
    assert "80%" in page
    assert "publishing failing" in page
    charts = json.loads(
        page.split('id="sd-data" type="application/json">')[1].split("</script>")[0]
    )
    assert charts["refusals"]["series"][0]["label"] == "rate_limited"
    assert charts["refusals"]["series"][0]["values"][-1] == 7
    assert [s["label"] for s in charts["beacon_latency"]["series"]] == ["east"]
    assert charts["live_tickets"]["series"][0]["label"] == "main"
    assert charts["capsule_peers"]["series"][0]["values"] == [1.0]
    assert '<td><code>rate_limited</code></td><td class="num">7</td>' in page


def test_publish_now_from_the_dashboard_reports_the_result(staff: Client, var: Path) -> None:
    main = Community.objects.create(name="main")
    response = staff.post(f"/admin/dashboard/publish/{main.id}/", follow=True)
    assert "capsule published with 0 peers (under the minimum of 20)" in response.content.decode()
    assert Capsule.objects.filter(community=main).count() == 1


def test_bulk_publish_action_on_communities(staff: Client, var: Path) -> None:
    a = Community.objects.create(name="a")
    b = Community.objects.create(name="b")
    staff.post(
        "/admin/beacon/community/",
        {"action": "publish_now", "_selected_action": [a.id, b.id]},
    )
    assert set(Capsule.objects.values_list("community__name", flat=True)) == {"a", "b"}
    assert CapsuleRun.objects.filter(ok=True).count() == 2


def test_block_selected_peers_from_the_ticket_list_then_unblock(staff: Client) -> None:
    main = Community.objects.create(name="main")
    t1 = store(main, "blk-1", now_ms())
    t2 = store(main, "blk-2", now_ms())
    response = staff.post(
        "/admin/beacon/presenceticket/",
        {"action": "block_peers", "_selected_action": [t1.id, t2.id]},
        follow=True,
    )
    assert "Blocked 2" in response.content.decode()
    blocked = set(Block.objects.filter(kind=Block.PEER).values_list("value", flat=True))
    assert blocked == {peer_id(seeded_key("blk-1")), peer_id(seeded_key("blk-2"))}
    again = staff.post(
        "/admin/beacon/presenceticket/",
        {"action": "block_peers", "_selected_action": [t1.id]},
        follow=True,
    )
    assert "Blocked 0 (already blocked: 1)" in again.content.decode()
    staff.post(
        "/admin/ops/block/",
        {"action": "unblock", "_selected_action": list(Block.objects.values_list("id", flat=True))},
    )
    assert Block.objects.count() == 0


def test_capsule_list_flags_capsules_under_the_minimum(staff: Client, var: Path) -> None:
    main = Community.objects.create(name="main")
    staff.post(f"/admin/dashboard/publish/{main.id}/")
    page = staff.get("/admin/beacon/capsule/").content.decode()
    assert "0 (under 20)" in page
    capsule = Capsule.objects.get()
    detail = staff.get(f"/admin/beacon/capsule/{capsule.id}/change/").content.decode()
    assert "&quot;community&quot;: &quot;main&quot;" in detail


@pytest.mark.parametrize(
    "path",
    [
        "/admin/ops/alert/",
        "/admin/beacon/capsulerun/",
        "/admin/beacon/remotebeacon/",
        "/admin/django_celery_beat/periodictask/",
    ],
)
def test_operations_lists_render(staff: Client, path: str) -> None:
    RemoteBeacon.objects.create(name="r", base_url="http://127.0.0.1:9/beacon/v1/")
    Alert.objects.create(kind=Alert.BEACON_UNHEALTHY, subject="r", message="m", opened_at=1)
    assert staff.get(path).status_code == 200


def test_default_schedule_has_capsules_probes_and_sampling() -> None:
    from django_celery_beat.models import PeriodicTask

    tasks = dict(PeriodicTask.objects.values_list("task", "interval__every"))
    assert tasks["beacon.publish_all_capsules"] == 300
    assert tasks["beacon.probe_beacons"] == 60
    assert tasks["beacon.sample_metrics"] == 60
