from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from . import signals  # noqa: F401
        from .alerts import register_metrics

        register_metrics()
