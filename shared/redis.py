"""Redis clients that survive a Redis restart or stall, and the shared sync client.

Every client the project makes (beacon limits, the signaling directory, the channel
layer, /metrics) takes its options from here:

- timeouts (``SWARM_REDIS_TIMEOUT_S``) on connecting and on every reply, so a frozen
  Redis fails a command instead of hanging the caller;
- TCP keepalive, so a connection to a vanished host is noticed in seconds, not hours;
- a health check (``SWARM_REDIS_HEALTH_CHECK_S``): a connection idle longer than that
  is pinged before it is used again, and replaced if the ping fails;
- retries of a command whose connection failed (a pooled connection to a Redis that
  restarted), on a new connection, with jittered backoff. Timeouts are not retried: a
  command that timed out may still run, and running it twice is not always harmless.
"""

from __future__ import annotations

import socket
from functools import cache
from typing import Any

import redis
import redis.asyncio.retry
import redis.retry
from django.conf import settings
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

RETRIES = 3
RETRY_BASE_S = 0.05
RETRY_CAP_S = 1.0

# Idle 10 s, then a probe every 5 s, 3 unanswered: about 25 s to notice a dead peer.
KEEPALIVE = {
    getattr(socket, name): value
    for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
    if hasattr(socket, name)
}


def _common(timeout_s: float | None, health_check_s: float | None) -> dict[str, Any]:
    connect: float = settings.SWARM_REDIS_TIMEOUT_S if timeout_s is None else timeout_s
    return {
        "socket_connect_timeout": connect,
        "socket_keepalive": True,
        "socket_keepalive_options": KEEPALIVE,
        "health_check_interval": (
            settings.SWARM_REDIS_HEALTH_CHECK_S if health_check_s is None else health_check_s
        ),
    }


def sync_options() -> dict[str, Any]:
    """Connection options for a ``redis.Redis`` client or pool."""
    backoff = ExponentialWithJitterBackoff(base=RETRY_BASE_S, cap=RETRY_CAP_S)
    return {
        **_common(None, None),
        "socket_timeout": settings.SWARM_REDIS_TIMEOUT_S,
        "retry": redis.retry.Retry(backoff, RETRIES, supported_errors=(RedisConnectionError,)),
    }


def async_options(
    *,
    retries: int = RETRIES,
    reply_timeout: bool = True,
    timeout_s: float | None = None,
    health_check_s: float | None = None,
) -> dict[str, Any]:
    """Connection options for a ``redis.asyncio`` client or pool.

    ``retries=0`` for a connection whose failure the caller must see (a subscription
    that would otherwise be renewed silently, losing what was published meanwhile);
    ``reply_timeout=False`` for one that waits for replies as long as they take;
    ``timeout_s`` and ``health_check_s`` where settings cannot be read yet (in settings).
    """
    common = _common(timeout_s, health_check_s)
    backoff = ExponentialWithJitterBackoff(base=RETRY_BASE_S, cap=RETRY_CAP_S)
    retry = redis.asyncio.retry.Retry(backoff, retries, supported_errors=(RedisConnectionError,))
    return {
        **common,
        "socket_timeout": common["socket_connect_timeout"] if reply_timeout else None,
        "retry": retry,
    }


@cache
def get_redis() -> redis.Redis | None:
    """This process's shared sync client, or None in the embedded default."""
    url: str = settings.REDIS_URL
    if not url:
        return None
    return redis.Redis.from_url(url, **sync_options())
