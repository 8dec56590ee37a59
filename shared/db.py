"""Database connections that recover by themselves after a database restart.

Requests take Django's connection from the pool and give it back when they end. Code
outside a request (the ASGI fast paths, the signaling node, the super-peer, threads)
must do the same, or a connection the server closed stays bound to its thread for good:
:func:`db_sync_to_async` gives it back after every call.

Django's pool checks a connection before handing it out (``CONN_HEALTH_CHECKS``), but
after a restart every idle connection in it is dead, and the pool waits longer after
each failed check (0 s, 1 s, 2 s...). So whoever meets a dead connection has the pool
check all its idle ones at once (:func:`check_idle_connections`). The beacon's own async
pool is checked on the cheap (:func:`looks_alive`: a connection the server closed has
its socket readable at EOF, so one ``poll`` tells; only a suspect costs a round trip).
"""

from __future__ import annotations

import functools
import logging
import select
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, cast

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger(__name__)

# How long the pools go on retrying a connection that failed before giving the slot up;
# the next request asking for a connection then tries at once. psycopg_pool's default
# (5 minutes, with doubling delays) can leave a pool idle for tens of seconds after the
# database is back.
POOL_RECONNECT_TIMEOUT_S = 2.0


def db_sync_to_async(fn: Callable[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
    """``sync_to_async`` for ORM work outside a request: the thread's connection is
    given back (or, unpooled, closed if it broke) before and after every call."""
    from channels.db import database_sync_to_async
    from django.db import InterfaceError, OperationalError

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except (OperationalError, InterfaceError):
            check_idle_connections()
            raise

    return cast(Callable[P, Coroutine[Any, Any, T]], database_sync_to_async(call))


_checked_at = 0.0
_check_lock = threading.Lock()
CHECK_EVERY_S = 1.0


def check_idle_connections() -> None:
    """Have Django's pool test its idle connections and replace the dead ones (at most
    once a second: during an outage every caller fails, and one sweep is enough)."""
    global _checked_at
    from django.db import connections

    with _check_lock:
        if time.monotonic() - _checked_at < CHECK_EVERY_S:
            return
        _checked_at = time.monotonic()
    pool = getattr(connections["default"], "pool", None)
    if pool is None:
        return
    try:
        pool.check()
    except Exception as exc:  # not open yet in this process, or the database is away
        log.info("checking the idle pooled connections failed: %r", exc)


def looks_alive(conn: Any) -> bool:
    """False if a psycopg connection is closed, broken, or its idle socket has input
    waiting (EOF from a server that went away, or a notice): worth a real check."""
    if conn.closed or conn.broken:
        return False
    try:
        fd = conn.fileno()
    except Exception:  # closed under us
        return False
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    return not poller.poll(0)


async def check_async_connection(conn: Any) -> bool:
    """True if an async psycopg connection taken from a pool answers (a round trip
    only when :func:`looks_alive` has doubts)."""
    if looks_alive(conn):
        return True
    if conn.closed:
        return False
    try:
        await conn.execute("")
    except Exception:
        return False
    return True
