"""How the server controls super-peers: the services (pin, unpin, replication jobs) write the
database and tell the super-peers through the channel layer (Redis); control messages are
parsed strictly; the super-peer's database helpers (blocks, posts)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.utils import timezone

from ops.models import Block
from peers.protocol.encoding import b64url_encode, peer_id_for_key
from peers.protocol.posts import make_post, verify_post
from peers.protocol.replication.messages import cancel_message, fetch_message
from peers.protocol.replication.model import CancelJob, CancelReason
from peers.protocol.replication.model import FetchJob as PlannedJob
from peers.superpeer import db, services
from peers.superpeer.control import Sync, group_for, parse_control, sync_message
from peers.superpeer.errors import SuperPeerError
from peers.superpeer.models import FetchJob, Pin, Post

ME = "p" + "a" * 32
OTHER = "p" + "b" * 32
THIRD = "p" + "c" * 32
MANIFEST = "M" * 42 + "A"
T0 = 1_700_000_000_000


@pytest.fixture(scope="module", autouse=True)
async def _close_thread_connections() -> Any:
    """ORM calls of the async tests ran in asgiref's thread: close its connection at the end
    so the test database can be dropped."""
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


def planned(job_id: str = "j1", fetcher: str = ME) -> PlannedJob:
    return PlannedJob(
        job_id=job_id,
        fetcher=fetcher,
        manifest_id=MANIFEST,
        community="main",
        sources=(THIRD,),
        chunk_count=4,
        size=4 * 65552,
        attempt=1,
        issued_at=T0,
        deadline=T0 + 120_000,
    )


CANCEL = CancelJob("j1", ME, MANIFEST, CancelReason.TIMEOUT)

# --- control messages ---


def test_control_messages_are_parsed_for_this_super_peer_only() -> None:
    assert parse_control(sync_message(), me=ME) == Sync()
    assert parse_control(fetch_message(planned()), me=ME) == planned()
    cancel = CancelJob("j1", ME, MANIFEST, CancelReason.TARGET_MET)
    assert parse_control(cancel_message(cancel), me=ME) == cancel


@pytest.mark.parametrize(
    ("message", "why"),
    [
        ("not a map", "a control message is a map"),
        ({"type": "superpeer.sync", "extra": 1}, "has no fields"),
        ({"type": "superpeer.explode"}, "unknown control message type"),
        (fetch_message(planned(fetcher=OTHER)), "is for " + OTHER),
        ({**fetch_message(planned()), "chunks": True}, "bad_job"),
        ({**fetch_message(planned()), "sources": [ME]}, "bad_job"),
        ({k: v for k, v in fetch_message(planned()).items() if k != "deadline"}, "bad_job"),
        (cancel_message(CancelJob("j1", OTHER, MANIFEST, CancelReason.TIMEOUT)), "is for"),
        ({**cancel_message(CANCEL), "reason": "x"}, "reason must be one of"),
    ],
)
def test_bad_control_messages_are_refused_with_bad_control(message: Any, why: str) -> None:
    with pytest.raises(SuperPeerError) as err:
        parse_control(message, me=ME)
    assert err.value.code == "bad_control"
    assert why in err.value.message


def test_group_names() -> None:
    assert group_for("") == "superpeer"
    assert group_for(ME) == f"superpeer.{ME}"
    with pytest.raises(SuperPeerError):
        group_for("../../x")


# --- services ---


@pytest.mark.django_db
def test_pin_checks_its_input() -> None:
    with pytest.raises(SuperPeerError) as err:
        services.superpeer_pin("not-a-manifest-id")
    assert err.value.code == "bad_manifest_id"
    with pytest.raises(SuperPeerError) as err:
        services.superpeer_pin(MANIFEST, peer_id="someone")
    assert err.value.code == "bad_peer_id"
    assert Pin.objects.count() == 0


async def listen(group: str) -> tuple[Any, str]:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    await asyncio.sleep(0.2)  # the subscription is in place on the Redis side
    return layer, channel


async def next_message(layer: Any, channel: str) -> dict[str, Any]:
    message: dict[str, Any] = await asyncio.wait_for(layer.receive(channel), 5)
    return message


@pytest.mark.django_db(transaction=True)
async def test_pin_and_unpin_write_the_database_then_tell_the_super_peers() -> None:
    layer, everyone = await listen("superpeer")
    _, mine = await listen(group_for(ME))
    pin = await sync_to_async(services.superpeer_pin)(MANIFEST)
    assert (pin.manifest_id, pin.peer_id, pin.source) == (MANIFEST, "", Pin.ADMIN)
    assert await next_message(layer, everyone) == {"type": "superpeer.sync"}
    await sync_to_async(services.superpeer_pin)(MANIFEST, peer_id=ME)
    assert await next_message(layer, mine) == {"type": "superpeer.sync"}
    again = await sync_to_async(services.superpeer_pin)(MANIFEST)  # idempotent
    assert again.pk == pin.pk
    assert await sync_to_async(db.pinned_manifests)(ME) == {MANIFEST}
    assert await sync_to_async(db.pinned_manifests)(OTHER) == {MANIFEST}

    await sync_to_async(db.ensure_pin_job)(ME, MANIFEST, "pin-x")
    removed = await sync_to_async(services.superpeer_unpin)(MANIFEST, peer_id=ME)
    assert removed == 1
    assert await next_message(layer, mine) == {"type": "superpeer.sync"}
    job = await FetchJob.objects.aget(job_id="pin-x")
    assert (job.state, job.reason) == (FetchJob.CANCELLED, "unpinned")
    assert await sync_to_async(db.pinned_manifests)(ME) == {MANIFEST}  # still pinned for all
    assert await sync_to_async(services.superpeer_unpin)(MANIFEST) == 1
    assert await sync_to_async(db.pinned_manifests)(ME) == set()
    for channel, group in ((everyone, "superpeer"), (mine, group_for(ME))):
        await layer.group_discard(group, channel)


@pytest.mark.django_db(transaction=True)
async def test_a_replication_job_is_recorded_pinned_and_sent_to_its_fetcher() -> None:
    layer, mine = await listen(group_for(ME))
    row = await sync_to_async(services.superpeer_dispatch_fetch)(planned())
    assert (row.kind, row.state, row.chunks_total, row.sources) == (
        FetchJob.REPLICATION,
        FetchJob.QUEUED,
        4,
        [THIRD],
    )
    message = await next_message(layer, mine)
    assert parse_control(message, me=ME) == planned()
    assert await Pin.objects.filter(peer_id=ME, source=Pin.REPLICATION).acount() == 1

    cancel = CancelJob("j1", ME, MANIFEST, CancelReason.TARGET_MET)
    await sync_to_async(services.superpeer_cancel_fetch)(cancel)
    assert parse_control(await next_message(layer, mine), me=ME) == cancel
    row = await FetchJob.objects.aget(job_id="j1")
    assert (row.state, row.reason) == (FetchJob.CANCELLED, "target_met")
    assert await Pin.objects.filter(peer_id=ME).acount() == 0
    await layer.group_discard(group_for(ME), mine)


# --- database helpers of the super-peer ---


@pytest.mark.django_db
def test_blocks_by_peer_id_and_by_key_apply_until_they_expire() -> None:
    key = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    Block.objects.create(kind=Block.PEER, value=OTHER)
    Block.objects.create(kind=Block.KEY, value=b64url_encode(key))
    Block.objects.create(kind=Block.KEY, value="not base64url!")
    Block.objects.create(
        kind=Block.PEER, value=ME, expires_at=timezone.now() - timezone.timedelta(seconds=1)
    )
    Block.objects.create(kind=Block.IP, value="10.0.0.0/8")
    assert db.blocked_peers() == {OTHER, peer_id_for_key(key)}


@pytest.mark.django_db
def test_posts_are_kept_once_and_a_second_entry_for_a_seq_is_a_fork() -> None:
    author = Ed25519PrivateKey.generate()
    first = verify_post(make_post(author, seq=0, prev=None, created_at=T0, text="hello"))
    other = verify_post(make_post(author, seq=0, prev=None, created_at=T0, text="hello?"))
    assert db.store_post(first) == "stored"
    assert db.store_post(first) == "duplicate"
    assert db.store_post(other) == "fork"
    assert list(Post.objects.values_list("entry_hash", flat=True)) == [first.hash]
