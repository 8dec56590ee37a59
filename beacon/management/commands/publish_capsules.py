from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from beacon import capsules, selectors
from beacon.models import Community
from shared.clock import now_ms


class Command(BaseCommand):
    help = (
        "Publish capsules now, synchronously: for the named communities, "
        "or for every active one when none is named."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("communities", nargs="*", metavar="community")

    def handle(self, *args: Any, **options: Any) -> None:
        names: list[str] = options["communities"]
        if names:
            found = dict(Community.objects.filter(name__in=names).values_list("name", "id"))
            missing = sorted(set(names) - set(found))
            if missing:
                raise CommandError(f"unknown communities: {', '.join(missing)}")
            ids = [found[name] for name in names]
        else:
            ids = selectors.active_community_ids(now=now_ms())
        failed = 0
        for community_id in ids:
            name = Community.objects.get(id=community_id).name
            try:
                outcome = capsules.capsule_publish(community_id=community_id, now=now_ms())
            except capsules.PublishError as exc:
                failed += 1
                self.stderr.write(f"{name}: failed: {exc.code}: {exc.message}")
                continue
            capsule, run = outcome.capsule, outcome.run
            if capsule is None or run is None:  # only a queued request can be skipped
                continue
            self.stdout.write(
                f"{name}: {capsule.peer_count} peers, key {capsule.kid}, "
                f"expires {capsule.expires_at}, dropped {run.dropped or 'none'}"
            )
        if failed:
            raise CommandError(f"{failed} of {len(ids)} capsules failed")
        if not ids:
            self.stdout.write("no active community")
