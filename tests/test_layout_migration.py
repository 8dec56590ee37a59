"""A database of the old layout migrates forward with its rows: blocks, alerts and metric
series were the beacon's and are the operations app's (tables renamed, content types and
permissions moved along), the super-peer's models left the ``peers`` root but keep their
app label and tables. Run on PostgreSQL and on SQLite (the embedded default)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from beacon.models import Community, PresenceTicket
from ops import metrics
from ops.models import Alert, Block, MetricCounter, MetricSample
from peers.superpeer.models import SuperPeer

pytestmark = pytest.mark.django_db(transaction=True)

# The layout before the operations app: the beacon's last migration of that time.
OLD = [("beacon", "0007_community_configured"), ("ops", None)]
OLD_STATE = [
    ("beacon", "0007_community_configured"),
    ("peers", "0001_initial"),
    ("auth", "0012_alter_user_first_name_max_length"),
]
MOVED = ("alert", "block", "metriccounter", "metricsample")


def migrate(targets: list[tuple[str, str | None]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor


def latest() -> list[tuple[str, str | None]]:
    return list(MigrationExecutor(connection).loader.graph.leaf_nodes())


@pytest.fixture
def old_apps() -> Iterator[Any]:
    """The database at the old layout, and the models as they were then."""
    executor = migrate(OLD)
    try:
        yield executor.loader.project_state(OLD_STATE).apps
    finally:
        migrate(latest())  # whatever happened, the next tests get today's schema


def test_an_old_layout_database_migrates_forward_with_its_rows(old_apps: Any) -> None:
    tables = connection.introspection.table_names()
    assert "beacon_block" in tables
    assert "ops_block" not in tables
    old_block = old_apps.get_model("beacon", "Block").objects.create(
        kind="peer", value="pold", reason="kept"
    )
    old_apps.get_model("beacon", "Alert").objects.create(
        kind="publish_failing", subject="main", message="still open", opened_at=1
    )
    old_apps.get_model("beacon", "MetricCounter").objects.create(
        name="swarm_beacon_announces_total", labels='{result="accepted"}', value=41
    )
    old_apps.get_model("beacon", "MetricSample").objects.create(
        name="swarm_beacon_live_tickets", labels='{community="main"}', at=5, value=3.0
    )
    community = old_apps.get_model("beacon", "Community").objects.create(name="main")
    old_apps.get_model("beacon", "PresenceTicket").objects.create(
        community=community,
        peer_id="p" + "a" * 32,
        public_key="k" * 43,
        issued_at=1,
        expires_at=2,
        nonce="n",
        envelope="{}",
    )
    old_apps.get_model("peers", "SuperPeer").objects.create(
        peer_id="p" + "b" * 32, community="main"
    )
    content_type = old_apps.get_model("contenttypes", "ContentType")
    block_type = content_type.objects.get_or_create(app_label="beacon", model="block")[0]
    old_apps.get_model("auth", "Permission").objects.get_or_create(
        content_type=block_type, codename="add_block", defaults={"name": "Can add block"}
    )

    migrate(latest())

    tables = connection.introspection.table_names()
    assert {f"ops_{model}" for model in MOVED} <= set(tables)
    assert not {f"beacon_{model}" for model in MOVED} & set(tables)
    block = Block.objects.get(value="pold")
    assert (block.id, block.kind, block.reason) == (old_block.id, Block.PEER, "kept")
    assert Alert.objects.get(subject="main").is_open
    assert MetricCounter.objects.get(name="swarm_beacon_announces_total").value == 41
    assert MetricSample.objects.get(name="swarm_beacon_live_tickets").value == 3.0
    assert PresenceTicket.objects.get(community=Community.objects.get(name="main")).nonce == "n"
    assert SuperPeer.objects.get().peer_id == "p" + "b" * 32
    # The same content type row, now the operations app's: permissions keep their object.
    moved = content_type.objects.get(id=block_type.id)
    assert (moved.app_label, moved.model) == ("ops", "block")
    from django.contrib.auth.models import Permission

    assert Permission.objects.get(codename="add_block").content_type.app_label == "ops"


def test_the_moved_tables_work_as_before_after_the_move(old_apps: Any) -> None:
    old_apps.get_model("beacon", "Block").objects.create(kind="peer", value="pfirst")
    old_apps.get_model("beacon", "MetricCounter").objects.create(
        name="swarm_moved_total", labels="", value=1
    )
    migrate(latest())

    # New ids continue after the old rows (the identity or sequence moved with the table).
    first = Block.objects.get(value="pfirst")
    assert Block.objects.create(kind=Block.PEER, value="psecond").id > first.id
    # The counters' upsert (raw SQL on the table) adds to the old row.
    metrics.incr("swarm_moved_total", 2)
    metrics.flush()
    assert MetricCounter.objects.get(name="swarm_moved_total").value == 3
    # At most one open alert per (kind, subject): the partial unique index came along.
    Alert.objects.create(kind=Alert.BEACON_UNHEALTHY, subject="east", message="m", opened_at=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(kind=Alert.BEACON_UNHEALTHY, subject="east", message="n", opened_at=2)
