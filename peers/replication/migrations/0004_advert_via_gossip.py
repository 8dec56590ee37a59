"""Adverts heard by gossip are stored beside the relayed ones, with when they were issued
(docs/replication.md "Adverts by gossip")."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("replication", "0003_advert_keep"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="advert",
            name="one_advert_per_reporter",
        ),
        migrations.AddField(
            model_name="advert",
            name="heard_at",
            field=models.DateTimeField(blank=True, help_text="gossip: when issued", null=True),
        ),
        migrations.AddField(
            model_name="advert",
            name="via",
            field=models.CharField(
                choices=[("direct", "direct"), ("gossip", "gossip")], default="direct", max_length=8
            ),
        ),
        migrations.AddConstraint(
            model_name="advert",
            constraint=models.UniqueConstraint(
                fields=("holder", "manifest_id", "reporter", "via"),
                name="one_advert_per_reporter_via",
            ),
        ),
    ]
