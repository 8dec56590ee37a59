"""Default periodic schedule for capsules, probes and history (editable in the admin)."""

from django.db import migrations

SCHEDULE = [
    # (task name, registered task, every N seconds)
    ("Publish capsules", "beacon.publish_all_capsules", 300),
    ("Probe remote beacons", "beacon.probe_beacons", 60),
    ("Sample metrics for the dashboard", "beacon.sample_metrics", 60),
    ("Prune dashboard history", "beacon.prune_history", 3600),
]


def create_schedule(apps, schema_editor):  # type: ignore[no-untyped-def]
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, seconds in SCHEDULE:
        interval, _ = interval_model.objects.get_or_create(every=seconds, period="seconds")
        task_model.objects.get_or_create(name=name, defaults={"task": task, "interval": interval})


def remove_schedule(apps, schema_editor):  # type: ignore[no-untyped-def]
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    task_model.objects.filter(name__in=[name for name, _, _ in SCHEDULE]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("beacon", "0003_capsules_alerts"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create_schedule, remove_schedule)]
