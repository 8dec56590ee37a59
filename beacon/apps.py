from django.apps import AppConfig


class BeaconConfig(AppConfig):
    name = "beacon"
    verbose_name = "Rendezvous beacon"

    def ready(self) -> None:
        from . import dashboard, metrics

        metrics.register()
        dashboard.register()
