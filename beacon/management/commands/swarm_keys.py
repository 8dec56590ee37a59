from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from beacon import capsule_keys
from shared import identity
from shared.clock import now_ms


def superpeer_key_path() -> Path:
    return Path(settings.VAR_DIR) / "keys" / "superpeer.pem"


class Command(BaseCommand):
    help = "Create the server's keys under SWARM_VAR_DIR if missing (capsule key, super-peer id)."

    def handle(self, *args: Any, **options: Any) -> None:
        meta, created = capsule_keys.ensure(now=now_ms())
        if created:
            self.stdout.write(f"created capsule key {meta.kid}")
        key, created = identity.load_or_create(superpeer_key_path())
        if created:
            self.stdout.write(f"created super-peer identity {identity.peer_id_of(key)}")
