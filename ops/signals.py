"""Every Block save or delete moves the blocks version stamp, so every process reloads."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .blocks import bump_blocks_version
from .models import Block


@receiver(post_save, sender=Block)
@receiver(post_delete, sender=Block)
def block_changed(sender: type[Block], **kwargs: Any) -> None:
    bump_blocks_version()
