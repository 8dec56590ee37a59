"""One shared Redis client per process, or None in the embedded default."""

from __future__ import annotations

from functools import cache

import redis
from django.conf import settings


@cache
def get_redis() -> redis.Redis | None:
    url: str = settings.REDIS_URL
    if not url:
        return None
    return redis.Redis.from_url(
        url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
    )
