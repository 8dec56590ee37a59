"""Capsule publishing, key rotation, serving and the atomic file write, in-process.

Times are explicit (`now` values, a fake clock); remote beacons here are tiny local
HTTP servers (tests/test_capsule_live.py runs the same with a real worker and daphnes).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from beacon import capsule_files, capsule_keys, capsules
from beacon.models import Capsule, CapsuleRun, Community, RemoteBeacon
from ops.models import Alert, Block
from peers.protocol.capsule import (
    CAPSULE_TTL_MS,
    capsule_tickets,
    parse_trusted_keys,
    verify_capsule,
)
from peers.protocol.errors import ProtocolError
from shared.clock import now_ms
from tests.support.capsules import fake_beacon, store_ticket
from tests.support.keys import peer_id, seeded_key, ticket

pytestmark = pytest.mark.django_db


@pytest.fixture
def var(settings: Any, tmp_path: Path) -> Path:
    """A fresh SWARM_VAR_DIR with one capsule key created at time 0."""
    settings.VAR_DIR = tmp_path / "var"
    settings.SWARM_CAPSULE_DIR = tmp_path / "var" / "capsules"
    settings.SWARM_FEDERATION_BACKOFF_S = 0.01
    capsule_keys.create(now=0)
    return Path(settings.VAR_DIR)


def trusted(now: int) -> list[Any]:
    return parse_trusted_keys(capsule_keys.keys_document(now=now))


def test_publish_signs_live_tickets_and_the_file_holds_the_served_bytes(var: Path) -> None:
    now = now_ms()
    main = Community.objects.create(name="main")
    keys = [seeded_key(f"pub-{i}") for i in range(3)]
    for i, key in enumerate(keys):
        store_ticket(main, ticket(key, "main", now - 1000 * i))
    outcome = capsules.capsule_publish(community_id=main.id, now=now)
    assert outcome.capsule is not None
    envelope = json.loads(outcome.capsule.envelope)
    capsule = verify_capsule(envelope, trusted=trusted(now), now=now + 1, community="main")
    assert [t.peer_id for t in capsule_tickets(capsule, now=now + 1).tickets] == [
        peer_id(k) for k in keys
    ]
    assert capsule.expires_at == now + CAPSULE_TTL_MS
    path = capsule_files.capsule_path("main")
    assert path.read_bytes() == outcome.capsule.envelope.encode()
    assert json.loads((path.parent / "keys.json").read_text()) == capsule_keys.keys_document(
        now=now
    )


def test_blocked_forged_and_expired_tickets_are_dropped_and_counted(var: Path) -> None:
    now = now_ms()
    main = Community.objects.create(name="main")
    good, blocked_peer, blocked_key = (seeded_key(f"drop-{n}") for n in ("a", "b", "c"))
    for key in (good, blocked_peer, blocked_key):
        store_ticket(main, ticket(key, "main", now - 10))
    store_ticket(main, ticket(seeded_key("drop-old"), "main", now - 200_000))  # expired, not pruned
    Block.objects.create(kind=Block.PEER, value=peer_id(blocked_peer))
    Block.objects.create(kind=Block.KEY, value=ticket(blocked_key, "main", now)["pk"])
    forged = ticket(seeded_key("drop-forged"), "main", now)
    forged["body"]["nonce"] = "Zm9yZ2VkLXh4eA"
    remote = fake_beacon(lambda: [forged, ticket(seeded_key("drop-other"), "other", now)])
    try:
        RemoteBeacon.objects.create(name="fake", base_url=remote.url + "/beacon/v1/")
        outcome = capsules.capsule_publish(community_id=main.id, now=now)
    finally:
        remote.close()
    assert outcome.run is not None
    assert outcome.capsule is not None
    assert outcome.capsule.peer_count == 1
    # the expired ticket is not even a candidate: the store lists live tickets only
    assert outcome.run.dropped == {"bad_signature": 1, "excluded": 2, "wrong_community": 1}
    assert (outcome.run.local_count, outcome.run.remote_count) == (3, 2)


def test_capsule_keeps_the_newest_100_peers(var: Path) -> None:
    now = now_ms()
    main = Community.objects.create(name="main")
    for i in range(105):
        store_ticket(main, ticket(seeded_key(f"many-{i}"), "main", now - i))
    outcome = capsules.capsule_publish(community_id=main.id, now=now)
    assert outcome.capsule is not None
    assert outcome.run is not None
    peers = json.loads(outcome.capsule.envelope)["body"]["peers"]
    assert len(peers) == 100
    assert peers[0]["body"]["peer_id"] == peer_id(seeded_key("many-0"))
    assert outcome.run.dropped == {"over_limit": 5}


def test_unreachable_remote_is_recorded_and_publishing_still_succeeds(var: Path) -> None:
    from tests.support.live import free_port

    main = Community.objects.create(name="main")
    RemoteBeacon.objects.create(
        name="down", base_url=f"http://127.0.0.1:{free_port()}/beacon/v1/", timeout_s=1
    )
    outcome = capsules.capsule_publish(community_id=main.id, now=now_ms())
    assert outcome.run is not None
    assert outcome.run.remote_errors == {"down": "connect"}


def test_a_queued_request_already_served_by_a_newer_capsule_is_a_no_op(var: Path) -> None:
    main = Community.objects.create(name="main")
    now = now_ms()
    capsules.capsule_publish(community_id=main.id, now=now)
    again = capsules.capsule_publish(community_id=main.id, now=now + 5, requested_at=now - 10)
    assert again.skipped
    assert Capsule.objects.count() == 1
    later = capsules.capsule_publish(community_id=main.id, now=now + 10, requested_at=now + 5)
    assert not later.skipped
    assert Capsule.objects.count() == 2


def test_failures_raise_one_alert_only_from_the_second_in_a_row_and_success_resolves(
    var: Path, django_capture_on_commit_callbacks: Any
) -> None:
    main = Community.objects.create(name="main")
    key_files = list((var / "keys" / "capsule").iterdir())
    hidden = var / "hidden"
    hidden.mkdir()
    for path in key_files:
        path.rename(hidden / path.name)

    def fail(now: int) -> None:
        with pytest.raises(capsules.PublishError) as err:
            capsules.capsule_publish(community_id=main.id, now=now)
        assert err.value.code == "no_signing_key"

    with django_capture_on_commit_callbacks() as sent:
        fail(1000)
    assert Alert.objects.count() == 0
    assert sent == []
    with django_capture_on_commit_callbacks() as sent:
        fail(2000)
        fail(3000)
    alert = Alert.objects.get()
    assert (alert.kind, alert.subject, alert.resolved_at) == (Alert.PUBLISH_FAILING, "main", None)
    assert "no_signing_key" in alert.message
    assert len(sent) == 1  # one delivery queued, not one per failure
    for path in hidden.iterdir():
        path.rename(var / "keys" / "capsule" / path.name)
    with django_capture_on_commit_callbacks() as sent:
        capsules.capsule_publish(community_id=main.id, now=now_ms())
    alert.refresh_from_db()
    assert alert.resolved_at is not None
    assert len(sent) == 1
    assert list(CapsuleRun.objects.order_by("id").values_list("ok", flat=True)) == [
        False,
        False,
        False,
        True,
    ]


def test_unwritable_capsule_directory_is_a_failure_and_keeps_no_row(
    var: Path, settings: Any
) -> None:
    main = Community.objects.create(name="main")
    blocker = var / "not-a-dir"
    blocker.write_text("x")
    settings.SWARM_CAPSULE_DIR = blocker / "capsules"
    with pytest.raises(capsules.PublishError) as err:
        capsules.capsule_publish(community_id=main.id, now=now_ms())
    assert err.value.code == "write_failed"
    assert Capsule.objects.count() == 0
    assert CapsuleRun.objects.get().error == "write_failed"


def test_reserved_community_name_keys_gets_no_capsule(var: Path) -> None:
    keys = Community.objects.create(name="keys")
    with pytest.raises(capsules.PublishError) as err:
        capsules.capsule_publish(community_id=keys.id, now=now_ms())
    assert err.value.code == "reserved_name"


def test_rotation_old_capsules_verify_until_they_expire_then_only_the_new_key(
    var: Path,
) -> None:
    t0 = 1_900_000_000_000
    main = Community.objects.create(name="main")
    old_kid = capsule_keys.signing_key()
    assert old_kid is not None
    first = capsules.capsule_publish(community_id=main.id, now=t0).capsule
    t1 = t0 + 60_000
    new = capsule_keys.rotate(now=t1)
    second = capsules.capsule_publish(community_id=main.id, now=t1 + 1000).capsule
    assert first is not None
    assert second is not None
    assert first.kid == old_kid[0].kid
    assert second.kid == new.kid
    old_env, new_env = json.loads(first.envelope), json.loads(second.envelope)

    listed = capsule_keys.keys_document(now=t1 + 2000)["keys"]
    assert [k["kid"] for k in listed] == [new.kid, old_kid[0].kid]  # type: ignore[index]
    verify_capsule(old_env, trusted=trusted(t1 + 2000), now=t1 + 2000)
    verify_capsule(new_env, trusted=trusted(t1 + 2000), now=t1 + 2000)
    last_ms = first.expires_at - 1
    verify_capsule(old_env, trusted=trusted(last_ms), now=last_ms)
    with pytest.raises(ProtocolError) as err:
        verify_capsule(old_env, trusted=trusted(first.expires_at), now=first.expires_at)
    assert err.value.code == "expired"
    after = t1 + CAPSULE_TTL_MS  # retired_at + TTL: the old key is no longer listed
    assert [k["kid"] for k in capsule_keys.keys_document(now=after)["keys"]] == [new.kid]  # type: ignore[index]
    with pytest.raises(ProtocolError) as err:
        verify_capsule(old_env, trusted=trusted(after), now=after)
    assert err.value.code == "untrusted_key"
    verify_capsule(new_env, trusted=trusted(after), now=t1 + 2000)


def test_capsule_private_keys_are_mode_0600_and_not_in_the_database(var: Path) -> None:
    meta = capsule_keys.rotate(now=5)
    pem = var / "keys" / "capsule" / f"{meta.kid}.pem"
    assert pem.stat().st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" not in json.dumps(capsule_keys.keys_document(now=6))


def test_writer_killed_midway_leaves_the_previous_capsule_intact(tmp_path: Path) -> None:
    target = tmp_path / "main.json"
    capsule_files.write_atomic(target, b'{"previous":true}')
    pid = os.fork()
    if pid == 0:  # child: write a big capsule and die right before the rename
        real_fsync = os.fsync

        def die_after_data(fd: int) -> None:
            real_fsync(fd)
            os.kill(os.getpid(), signal.SIGKILL)

        os.fsync = die_after_data
        capsule_files.write_atomic(target, b"x" * 5_000_000)
        os._exit(0)  # pragma: no cover - never reached
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status)
    assert os.WTERMSIG(status) == signal.SIGKILL
    assert target.read_bytes() == b'{"previous":true}'
    leftovers = list(tmp_path.glob(".main.json.*.tmp"))
    assert len(leftovers) == 1  # the dead writer's temporary, never under the real name
    os.utime(leftovers[0], (0, 0))  # make it stale: the next write cleans it up
    capsule_files.write_atomic(target, b'{"next":true}')
    assert target.read_bytes() == b'{"next":true}'
    assert list(tmp_path.glob(".main.json.*.tmp")) == []


def test_capsule_is_served_with_cache_headers_that_end_at_its_expiry(var: Path) -> None:
    main = Community.objects.create(name="main")
    now = now_ms()
    capsule = capsules.capsule_publish(community_id=main.id, now=now).capsule
    assert capsule is not None
    client = Client()
    response = client.get("/capsules/main.json", HTTP_ORIGIN="https://mirror.example")
    assert response.status_code == 200
    assert response.content == capsule.envelope.encode()
    assert response["Access-Control-Allow-Origin"] == "*"
    max_age = int(response["Cache-Control"].split("max-age=")[1])
    assert 595 <= max_age <= 600
    assert response["Expires"]
    again = client.get("/capsules/main.json", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    keys = client.get("/capsules/keys.json").json()
    assert keys["keys"][0]["pk"] == json.loads(capsule.envelope)["pk"]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/capsules/nobody.json", 404, "no_capsule"),
        ("/capsules/Bad_Name.json", 404, "bad_community"),
    ],
)
def test_capsule_route_errors(var: Path, path: str, status: int, code: str) -> None:
    response = Client().get(path)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response["Cache-Control"] == "no-store"


def test_expired_newest_capsule_is_not_served(var: Path) -> None:
    main = Community.objects.create(name="main")
    capsules.capsule_publish(community_id=main.id, now=now_ms() - CAPSULE_TTL_MS - 1)
    assert Client().get("/capsules/main.json").json()["error"]["code"] == "no_capsule"


def test_publish_capsules_command_publishes_named_communities(var: Path) -> None:
    from io import StringIO

    from django.core.management import CommandError, call_command

    Community.objects.create(name="alpha")
    out = StringIO()
    call_command("publish_capsules", "alpha", stdout=out)
    assert "alpha: 0 peers" in out.getvalue()
    assert Capsule.objects.filter(community__name="alpha").count() == 1
    with pytest.raises(CommandError, match="unknown communities: ghost"):
        call_command("publish_capsules", "ghost")


def test_metrics_report_capsule_gauges_and_publish_counts(var: Path, settings: Any) -> None:
    main = Community.objects.create(name="main")
    capsules.capsule_publish(community_id=main.id, now=now_ms())
    text = Client().get("/metrics").content.decode()
    assert 'swarm_capsule_peers{community="main"} 0' in text
    assert 'swarm_capsule_publishes_total{result="ok"}' in text
    assert 'swarm_alerts_open{kind="publish_failing"} 0' in text


def test_rotate_command_updates_the_mirrored_keys_file_at_once(var: Path) -> None:
    from io import StringIO

    from django.core.management import call_command

    call_command("capsule_key", "rotate", stdout=StringIO())
    document = json.loads(capsule_files.keys_path().read_text())
    assert len(document["keys"]) == 2
    assert document["keys"][1]["retired_at"] is not None


def test_capsule_route_answers_503_not_500_when_the_database_fails(
    var: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import OperationalError

    from beacon import selectors

    def down(community: str) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(selectors, "newest_capsule", down)
    response = Client().get("/capsules/main.json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
