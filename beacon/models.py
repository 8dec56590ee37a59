"""Rendezvous store: communities, live presence tickets, blocks, remote beacons."""

from __future__ import annotations

import ipaddress

from django.db import models

from peers.protocol.ticket import COMMUNITY_RE


class Community(models.Model):
    name = models.CharField(max_length=63, unique=True)
    is_open = models.BooleanField(
        default=True, help_text="Closed communities refuse new announces (403 community_closed)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "communities"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def is_valid_name(name: str) -> bool:
        return bool(COMMUNITY_RE.match(name))


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
            models.Index(fields=["community", "-issued_at"], name="ticket_newest"),
            models.Index(fields=["expires_at"], name="ticket_expiry"),
        ]

    def __str__(self) -> str:
        return f"{self.peer_id} in {self.community_id}"


class Block(models.Model):
    KEY = "key"
    PEER = "peer"
    IP = "ip"
    KINDS = [(KEY, "public key"), (PEER, "peer id"), (IP, "IP address or CIDR")]

    kind = models.CharField(max_length=8, choices=KINDS)
    value = models.CharField(max_length=64, help_text="b64url key, peer id, or IP/CIDR")
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="empty = permanent")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["kind", "value"], name="block_lookup")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.value}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.kind == self.IP:
            try:
                ipaddress.ip_network(self.value, strict=False)
            except ValueError as exc:
                raise ValidationError({"value": "not an IP address or CIDR"}) from exc


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


class MetricCounter(models.Model):
    """A Prometheus counter series summed over every process (swarmweb.metrics)."""

    name = models.CharField(max_length=100)
    labels = models.CharField(max_length=300, blank=True)
    value = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "labels"], name="one_counter_series")
        ]

    def __str__(self) -> str:
        return f"{self.name}{self.labels}"
