"""The admin pages of super-peers render what operators look at (stored bytes, pinned bytes,
connections, job progress), and pin / unpin from the admin go through the services."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.test import Client
from django.urls import reverse

from peers.protocol.chunks import encrypt_file
from peers.protocol.manifest import make_manifest, verify_manifest
from peers.superpeer import db
from peers.superpeer.models import FetchJob, FileManifest, Pin, SuperPeer

pytestmark = pytest.mark.django_db

PEER = "p" + "q" * 32
OTHER = "p" + "r" * 32


@pytest.fixture
def admin_client(client: Client, django_user_model: type) -> Client:
    user = django_user_model.objects.create_superuser("root", "root@example.org", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def manifest_id() -> str:
    encrypted = encrypt_file(b"x" * 70_000)
    envelope = make_manifest(
        Ed25519PrivateKey.generate(), encrypted, name="notes.txt", mime="text/plain", created_at=1
    )
    manifest = verify_manifest(envelope)
    db.save_manifest(manifest)
    return manifest.id


def test_super_peer_page_shows_storage_connections_and_holdings(
    admin_client: Client, manifest_id: str
) -> None:
    SuperPeer.objects.create(
        peer_id=PEER,
        community="main",
        state=SuperPeer.RUNNING,
        storage_budget=10 * 2**30,
        storage_used=3 * 2**20,
        pinned_bytes=2**20,
        chunk_count=48,
        connections=[
            {
                "peer_id": OTHER,
                "outbound": False,
                "health": "ok",
                "rtt_ms": 3.5,
                "bytes_in": 1000,
                "bytes_out": 5 * 2**20,
            }
        ],
        stats={"chunks_served": 80},
        last_scan={"chunks": 48, "corrupt": [], "temp_removed": 1},
    )
    db.save_holdings(PEER, [(manifest_id, 2, 70_032, True, True)])
    listing = admin_client.get(reverse("admin:peers_superpeer_changelist")).content.decode()
    assert "3.0\xa0MB / 10.0\xa0GB" in listing
    assert "1.0\xa0MB" in listing  # pinned bytes
    page = admin_client.get(
        reverse("admin:peers_superpeer_change", args=[SuperPeer.objects.get().pk])
    ).content.decode()
    assert OTHER in page
    assert "5.0\xa0MB" in page  # bytes sent on that connection
    assert "chunks_served" in page
    assert "temp_removed" in page
    assert "notes.txt" in page  # the holding, inline


def test_job_progress_is_listed(admin_client: Client) -> None:
    FetchJob.objects.create(
        job_id="pin-x", kind=FetchJob.PIN, peer_id=PEER, manifest_id="M" * 43,
        state=FetchJob.FETCHING, chunks_total=40, chunks_done=10,
    )  # fmt: skip
    page = admin_client.get(reverse("admin:peers_fetchjob_changelist")).content.decode()
    assert "10/40 (25%)" in page


def test_pin_and_unpin_actions_and_the_pin_form_use_the_services(
    admin_client: Client, manifest_id: str
) -> None:
    url = reverse("admin:peers_filemanifest_changelist")
    pk = FileManifest.objects.get().pk
    admin_client.post(url, {"action": "pin_everywhere", "_selected_action": [pk]})
    assert list(Pin.objects.values_list("manifest_id", "peer_id", "source")) == [
        (manifest_id, "", Pin.ADMIN)
    ]
    admin_client.post(url, {"action": "unpin_everywhere", "_selected_action": [pk]})
    assert Pin.objects.count() == 0

    add = reverse("admin:peers_pin_add")
    admin_client.post(add, {"manifest_id": manifest_id, "peer_id": PEER})
    assert Pin.objects.get().peer_id == PEER
    response = admin_client.post(add, {"manifest_id": "short", "peer_id": ""}, follow=True)
    assert "bad_manifest_id" in response.content.decode()
    assert Pin.objects.count() == 1
