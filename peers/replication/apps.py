from django.apps import AppConfig


class ReplicationConfig(AppConfig):
    name = "peers.replication"
    label = "replication"
    verbose_name = "Replication"

    def ready(self) -> None:
        from . import metrics

        metrics.register()
