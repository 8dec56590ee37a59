"""The operations app takes over blocks, alerts, metric counters and samples from the
beacon: state only, their tables (renamed by ``beacon.0008_operations_to_ops``) hold the
rows already. Content types follow, so admin history and permissions keep their objects.
"""

from django.db import migrations, models

MODELS = ("alert", "block", "metriccounter", "metricsample")


def _relabel(apps, from_label: str, to_label: str) -> None:  # type: ignore[no-untyped-def]
    content_type = apps.get_model("contenttypes", "ContentType")
    for model in MODELS:
        if content_type.objects.filter(app_label=to_label, model=model).exists():
            continue  # already there (made after the move): the old one is just stale
        content_type.objects.filter(app_label=from_label, model=model).update(app_label=to_label)


def content_types_to_ops(apps, schema_editor):  # type: ignore[no-untyped-def]
    _relabel(apps, "beacon", "ops")


def content_types_to_beacon(apps, schema_editor):  # type: ignore[no-untyped-def]
    _relabel(apps, "ops", "beacon")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("beacon", "0008_operations_to_ops"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Alert",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "kind",
                            models.CharField(
                                choices=[
                                    ("publish_failing", "capsule publishing failing"),
                                    ("beacon_unhealthy", "remote beacon unhealthy"),
                                    ("replica_under_target", "manifest under its replica target"),
                                    ("replica_lost", "manifest lost (no holder left)"),
                                ],
                                max_length=32,
                            ),
                        ),
                        (
                            "subject",
                            models.CharField(
                                help_text="community or remote beacon name", max_length=100
                            ),
                        ),
                        ("message", models.CharField(max_length=500)),
                        ("opened_at", models.BigIntegerField(help_text="ms since the epoch")),
                        ("resolved_at", models.BigIntegerField(blank=True, null=True)),
                        (
                            "raised_sent_at",
                            models.BigIntegerField(
                                blank=True, help_text="webhook delivered", null=True
                            ),
                        ),
                        ("resolved_sent_at", models.BigIntegerField(blank=True, null=True)),
                        ("delivery_attempts", models.PositiveIntegerField(default=0)),
                        ("last_delivery_error", models.CharField(blank=True, max_length=300)),
                    ],
                    options={
                        "ordering": ["-opened_at"],
                        "constraints": [
                            models.UniqueConstraint(
                                condition=models.Q(("resolved_at__isnull", True)),
                                fields=("kind", "subject"),
                                name="one_open_alert",
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="Block",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "kind",
                            models.CharField(
                                choices=[
                                    ("key", "public key"),
                                    ("peer", "peer id"),
                                    ("ip", "IP address or CIDR"),
                                ],
                                max_length=8,
                            ),
                        ),
                        (
                            "value",
                            models.CharField(
                                help_text="b64url key, peer id, or IP/CIDR", max_length=64
                            ),
                        ),
                        ("reason", models.CharField(blank=True, max_length=200)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "expires_at",
                            models.DateTimeField(
                                blank=True, help_text="empty = permanent", null=True
                            ),
                        ),
                    ],
                    options={
                        "ordering": ["-created_at"],
                        "indexes": [models.Index(fields=["kind", "value"], name="block_lookup")],
                    },
                ),
                migrations.CreateModel(
                    name="MetricCounter",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("name", models.CharField(max_length=100)),
                        ("labels", models.CharField(blank=True, max_length=300)),
                        ("value", models.BigIntegerField(default=0)),
                    ],
                    options={
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("name", "labels"), name="one_counter_series"
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="MetricSample",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("name", models.CharField(max_length=100)),
                        ("labels", models.CharField(blank=True, max_length=300)),
                        ("at", models.BigIntegerField(help_text="ms since the epoch")),
                        ("value", models.FloatField()),
                    ],
                    options={
                        "indexes": [models.Index(fields=["name", "at"], name="sample_series")],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_types_to_ops, content_types_to_beacon),
    ]
