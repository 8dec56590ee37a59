from django.apps import AppConfig


class BeaconConfig(AppConfig):
    name = "beacon"
    verbose_name = "Rendezvous beacon"

    def ready(self) -> None:
        from . import signals  # noqa: F401
        from .metrics import register

        register()
