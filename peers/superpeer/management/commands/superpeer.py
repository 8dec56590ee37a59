"""``python manage.py superpeer``: run the always-on super-peer until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from peers.superpeer.config import ConfigError, SuperPeerConfig
from peers.superpeer.service import SuperPeerService

logger = logging.getLogger("peers.superpeer")


class Command(BaseCommand):
    help = "Run the super-peer: a swarm member on aiortc that holds and serves content."

    def handle(self, *args: Any, **options: Any) -> None:
        # aioice logs every candidate pair check at INFO.
        logging.getLogger("aioice").setLevel(logging.WARNING)
        try:
            config = SuperPeerConfig.from_settings(settings)
        except ConfigError as exc:
            raise CommandError(str(exc)) from exc
        asyncio.run(self._run(config))

    async def _run(self, config: SuperPeerConfig) -> None:
        service = SuperPeerService(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.stop)
        self.stdout.write(f"super-peer {service.peer_id} starting (community {config.community})")
        await service.run()
        self.stdout.write(f"super-peer {service.peer_id} stopped")
