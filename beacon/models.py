"""Rendezvous and capsules: communities, live presence tickets, remote beacons, capsules,
publishing runs and remote beacon probes (blocks and alerts are ``ops.models``)."""

from __future__ import annotations

from django.db import models

from peers.protocol.ticket import COMMUNITY_RE


class Community(models.Model):
    name = models.CharField(max_length=63, unique=True)
    is_open = models.BooleanField(
        default=True, help_text="Closed communities refuse new announces (403 community_closed)."
    )
    # Made in the admin (or kept there): published and reported even with no live
    # ticket. A community first named by an announce costs nothing until it has live
    # tickets, so made-up names cannot grow the capsule runs or /metrics.
    configured = models.BooleanField(
        default=True,
        help_text="Publish capsules and report metrics even while no peer is live "
        "(communities created by an announce start without it).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "communities"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def is_valid_name(name: str) -> bool:
        return bool(COMMUNITY_RE.fullmatch(name))


class PresenceTicket(models.Model):
    """The newest verified ticket of one peer in one community."""

    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="tickets")
    peer_id = models.CharField(max_length=33)
    public_key = models.CharField(max_length=43, help_text="base64url raw Ed25519 key")
    issued_at = models.BigIntegerField(help_text="ms since the epoch")
    expires_at = models.BigIntegerField(help_text="ms since the epoch")
    nonce = models.CharField(max_length=64)
    envelope = models.TextField(help_text="the signed ticket as JSON, served verbatim")
    ip = models.GenericIPAddressField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["community", "peer_id"], name="one_ticket_per_peer")
        ]
        indexes = [
            # Matches the ORDER BY of every list and of the cap, ties on issued_at included.
            models.Index(fields=["community", "-issued_at", "-id"], name="ticket_newest_first"),
            models.Index(fields=["expires_at"], name="ticket_expiry"),
        ]

    def __str__(self) -> str:
        return f"{self.peer_id} in {self.community_id}"


class RemoteBeacon(models.Model):
    """Another beacon whose /peers feed this server's capsules (federation)."""

    name = models.CharField(max_length=100, unique=True)
    base_url = models.URLField(help_text="e.g. https://beacon.example/beacon/v1/")
    enabled = models.BooleanField(default=True)
    timeout_s = models.FloatField(default=5.0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Capsule(models.Model):
    """A signed capsule as published (the newest per community is served)."""

    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="capsules")
    kid = models.CharField(max_length=16, help_text="id of the signing key")
    issued_at = models.BigIntegerField(help_text="ms since the epoch")
    expires_at = models.BigIntegerField(help_text="ms since the epoch")
    peer_count = models.PositiveIntegerField()
    envelope = models.TextField(help_text="the signed capsule as served, byte for byte")

    class Meta:
        indexes = [models.Index(fields=["community", "-issued_at"], name="capsule_newest")]

    def __str__(self) -> str:
        return f"capsule {self.community_id}@{self.issued_at}"


class CapsuleRun(models.Model):
    """One finished publishing attempt for a community (history for alerts and charts)."""

    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="capsule_runs")
    started_at = models.BigIntegerField(help_text="ms since the epoch")
    finished_at = models.BigIntegerField(help_text="ms since the epoch")
    ok = models.BooleanField()
    error = models.CharField(max_length=40, blank=True, help_text="stable failure code")
    message = models.CharField(max_length=500, blank=True)
    capsule = models.ForeignKey(Capsule, null=True, blank=True, on_delete=models.SET_NULL)
    peer_count = models.PositiveIntegerField(default=0)
    local_count = models.PositiveIntegerField(default=0, help_text="live tickets of this server")
    remote_count = models.PositiveIntegerField(default=0, help_text="tickets from remote beacons")
    dropped = models.JSONField(default=dict, help_text="candidates dropped, by reason")
    remote_errors = models.JSONField(default=dict, help_text="remote beacon -> error")

    class Meta:
        indexes = [models.Index(fields=["community", "-finished_at"], name="capsule_run_newest")]

    def __str__(self) -> str:
        return f"{'ok' if self.ok else self.error} {self.community_id}@{self.finished_at}"


class BeaconProbe(models.Model):
    """One health probe of a remote beacon (bounded history, pruned by age)."""

    beacon = models.ForeignKey(RemoteBeacon, on_delete=models.CASCADE, related_name="probes")
    at = models.BigIntegerField(help_text="ms since the epoch")
    ok = models.BooleanField()
    latency_ms = models.FloatField(null=True, blank=True)
    status = models.PositiveSmallIntegerField(null=True, blank=True, help_text="HTTP status")
    error = models.CharField(max_length=200, blank=True)

    class Meta:
        indexes = [models.Index(fields=["beacon", "-at"], name="probe_newest")]

    def __str__(self) -> str:
        return f"probe {self.beacon_id}@{self.at}"
