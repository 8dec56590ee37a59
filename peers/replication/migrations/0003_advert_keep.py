"""Relayed adverts say whether their holder keeps the copy (docs/replication.md "Browser")."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("replication", "0002_schedule"),
    ]

    operations = [
        migrations.AddField(
            model_name="advert",
            name="keep",
            field=models.BooleanField(default=True),
        ),
    ]
