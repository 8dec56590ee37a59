from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from beacon import capsule_keys, capsules
from shared.clock import now_ms


class Command(BaseCommand):
    help = "Create (if missing) or rotate the Ed25519 capsule signing key under SWARM_VAR_DIR."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["create", "rotate", "list"])

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "create":
            meta, created = capsule_keys.ensure(now=now_ms())
            verb = "created" if created else "exists"
            self.stdout.write(f"capsule key {meta.kid} {verb}: {meta.public_key}")
        elif action == "rotate":
            meta = capsule_keys.rotate(now=now_ms())
            # Mirrors of the capsule folder learn the new key before the next capsule.
            capsules.keys_file_write(now=now_ms())
            self.stdout.write(f"capsule key {meta.kid} created; older keys retired")
        else:
            for meta in capsule_keys.all_keys():
                state = "active" if meta.retired_at is None else f"retired {meta.retired_at}"
                self.stdout.write(f"{meta.kid} {meta.public_key} created {meta.created_at} {state}")
