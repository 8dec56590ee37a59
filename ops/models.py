"""Operations data every app writes: blocks, alerts, metric counters and their samples.

The tables were the beacon's until the operations app took them over (migrations
``beacon.0008_operations_to_ops`` and ``ops.0001_initial`` moved them, rows and all).
"""

from __future__ import annotations

import ipaddress

from django.db import models


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


class MetricCounter(models.Model):
    """A Prometheus counter series summed over every process (ops.metrics)."""

    name = models.CharField(max_length=100)
    labels = models.CharField(max_length=300, blank=True)
    value = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "labels"], name="one_counter_series")
        ]

    def __str__(self) -> str:
        return f"{self.name}{self.labels}"


class Alert(models.Model):
    """An operator alert; at most one open per (kind, subject), resolved on recovery."""

    PUBLISH_FAILING = "publish_failing"
    BEACON_UNHEALTHY = "beacon_unhealthy"
    REPLICA_UNDER_TARGET = "replica_under_target"
    REPLICA_LOST = "replica_lost"
    KINDS = [
        (PUBLISH_FAILING, "capsule publishing failing"),
        (BEACON_UNHEALTHY, "remote beacon unhealthy"),
        (REPLICA_UNDER_TARGET, "manifest under its replica target"),
        (REPLICA_LOST, "manifest lost (no holder left)"),
    ]

    kind = models.CharField(max_length=32, choices=KINDS)
    subject = models.CharField(max_length=100, help_text="community or remote beacon name")
    message = models.CharField(max_length=500)
    opened_at = models.BigIntegerField(help_text="ms since the epoch")
    resolved_at = models.BigIntegerField(null=True, blank=True)
    raised_sent_at = models.BigIntegerField(null=True, blank=True, help_text="webhook delivered")
    resolved_sent_at = models.BigIntegerField(null=True, blank=True)
    delivery_attempts = models.PositiveIntegerField(default=0)
    last_delivery_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "subject"],
                condition=models.Q(resolved_at__isnull=True),
                name="one_open_alert",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class MetricSample(models.Model):
    """A counter or gauge value at one time, so the dashboard can show recent changes."""

    name = models.CharField(max_length=100)
    labels = models.CharField(max_length=300, blank=True)
    at = models.BigIntegerField(help_text="ms since the epoch")
    value = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["name", "at"], name="sample_series")]

    def __str__(self) -> str:
        return f"{self.name}{self.labels}@{self.at}"
