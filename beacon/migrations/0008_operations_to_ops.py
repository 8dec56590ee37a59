"""Blocks, alerts and metric counters and samples move to the operations app (``ops``).

Their rows stay where they are: the tables are renamed to the names the ops app gives
them (``beacon_block`` -> ``ops_block``...), indexes and constraints with them, and the
models leave this app's state; ``ops.0001_initial`` takes them into its own.
"""

from django.db import migrations

MOVED = {
    "alert": "ops_alert",
    "block": "ops_block",
    "metriccounter": "ops_metriccounter",
    "metricsample": "ops_metricsample",
}


class Migration(migrations.Migration):
    dependencies = [
        ("beacon", "0007_community_configured"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterModelTable(name=model, table=table)
                for model, table in MOVED.items()
            ],
            state_operations=[migrations.DeleteModel(name=model) for model in MOVED],
        ),
    ]
