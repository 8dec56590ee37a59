"""Ticket storage for the announce fast path: the same SQL on PostgreSQL and SQLite.

PostgreSQL is reached through a psycopg async connection pool (no thread hop per
query); any other engine, SQLite in the embedded default, through Django's own
connection in a worker thread. Statements run in autocommit: each is atomic on
its own, and no announce needs two of them to commit together.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from .models import Community, PresenceTicket

TICKETS = PresenceTicket._meta.db_table
COMMUNITIES = Community._meta.db_table

Params = Sequence[Any]

# Upsert a peer's ticket into an open community. Nothing is written when the
# community is missing or closed, or when the stored ticket is as new or shares the
# nonce, so two racing announces of one peer cannot both win.
UPSERT = f"""
    INSERT INTO {TICKETS}
        (community_id, peer_id, public_key, issued_at, expires_at, nonce, envelope, ip,
         received_at)
    SELECT c.id, %s, %s, %s, %s, %s, %s, %s, CURRENT_TIMESTAMP
    FROM {COMMUNITIES} c WHERE c.name = %s AND c.is_open
    ON CONFLICT (community_id, peer_id) DO UPDATE SET
        public_key = excluded.public_key, issued_at = excluded.issued_at,
        expires_at = excluded.expires_at, nonce = excluded.nonce,
        envelope = excluded.envelope, ip = excluded.ip, received_at = excluded.received_at
    WHERE {TICKETS}.issued_at < excluded.issued_at AND {TICKETS}.nonce <> excluded.nonce
    RETURNING community_id
"""
# The newest ticket past the cap (if any): it and everything older goes.
CAP_EDGE = f"""
    SELECT issued_at, id FROM {TICKETS} WHERE community_id = %s AND expires_at > %s
    ORDER BY issued_at DESC, id DESC LIMIT 1 OFFSET %s
"""
CAP_DELETE = f"""
    DELETE FROM {TICKETS} WHERE community_id = %s AND
        (issued_at < %s OR (issued_at = %s AND id <= %s) OR expires_at <= %s)
"""
PEERS_BY_ID = f"""
    SELECT envelope FROM {TICKETS}
    WHERE community_id = %s AND expires_at > %s AND peer_id <> %s
    ORDER BY issued_at DESC, id DESC LIMIT %s
"""
PEERS_BY_NAME = f"""
    SELECT t.envelope FROM {TICKETS} t JOIN {COMMUNITIES} c ON c.id = t.community_id
    WHERE c.name = %s AND t.expires_at > %s
    ORDER BY t.issued_at DESC, t.id DESC LIMIT %s
"""
# PostgreSQL does the cap and the peer list in one statement: the DELETE only removes
# rows past the 200 newest (or expired), so the SELECT's snapshot, taken before it,
# has the same first 50.
CAP_AND_PEERS_PG = f"""
    WITH edge AS (
        SELECT issued_at, id FROM {TICKETS} WHERE community_id = %(cid)s AND expires_at > %(now)s
        ORDER BY issued_at DESC, id DESC LIMIT 1 OFFSET %(cap)s
    ), gone AS (
        DELETE FROM {TICKETS} t USING edge WHERE t.community_id = %(cid)s AND
            (t.issued_at < edge.issued_at OR (t.issued_at = edge.issued_at AND t.id <= edge.id)
             OR t.expires_at <= %(now)s)
    )
    SELECT envelope FROM {TICKETS}
    WHERE community_id = %(cid)s AND expires_at > %(now)s AND peer_id <> %(me)s
    ORDER BY issued_at DESC, id DESC LIMIT %(limit)s
"""
CREATE_COMMUNITY = f"""
    INSERT INTO {COMMUNITIES} (name, is_open, created_at) VALUES (%s, TRUE, CURRENT_TIMESTAMP)
    ON CONFLICT (name) DO NOTHING RETURNING id
"""
COMMUNITY_OPEN = f"SELECT is_open FROM {COMMUNITIES} WHERE name = %s"


class Session(Protocol):
    """One connection's worth of statements."""

    async def one(self, sql: str, params: Params) -> tuple[Any, ...] | None: ...

    async def all(self, sql: str, params: Params) -> list[tuple[Any, ...]]: ...

    async def cap_and_peers(
        self, *, cid: int, now: int, cap: int, me: str, limit: int
    ) -> list[str]:
        """Enforce the live-ticket cap, then list live peers other than ``me``, newest first."""
        ...


class Database(Protocol):
    def session(self) -> AbstractAsyncContextManager[Session]: ...


class _PgSession:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def one(self, sql: str, params: Params) -> tuple[Any, ...] | None:
        cursor = await self._conn.execute(sql, params)
        row: tuple[Any, ...] | None = await cursor.fetchone()
        return row

    async def all(self, sql: str, params: Params) -> list[tuple[Any, ...]]:
        cursor = await self._conn.execute(sql, params)
        rows: list[tuple[Any, ...]] = await cursor.fetchall()
        return rows

    async def cap_and_peers(
        self, *, cid: int, now: int, cap: int, me: str, limit: int
    ) -> list[str]:
        params = {"cid": cid, "now": now, "cap": cap, "me": me, "limit": limit}
        cursor = await self._conn.execute(CAP_AND_PEERS_PG, params)
        return [row[0] for row in await cursor.fetchall()]


class _PgSessionContext:
    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._cm: Any = None

    async def __aenter__(self) -> _PgSession:
        self._cm = self._pool.connection()
        return _PgSession(await self._cm.__aenter__())

    async def __aexit__(self, *exc: object) -> None:
        await self._cm.__aexit__(*exc)


class PgDatabase:
    def __init__(self, conninfo: str, max_size: int) -> None:
        from psycopg_pool import AsyncConnectionPool

        self._pool = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True},
            open=False,
            timeout=10,
        )
        self._opened = False

    async def ensure_open(self) -> None:
        if not self._opened:
            await self._pool.open()
            self._opened = True

    def session(self) -> _PgSessionContext:
        return _PgSessionContext(self._pool)


class _DjangoSession:
    @staticmethod
    def _one(sql: str, params: Params) -> tuple[Any, ...] | None:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row: tuple[Any, ...] | None = cursor.fetchone()
            return row

    @staticmethod
    def _all(sql: str, params: Params) -> list[tuple[Any, ...]]:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    async def one(self, sql: str, params: Params) -> tuple[Any, ...] | None:
        return await sync_to_async(self._one)(sql, params)

    async def all(self, sql: str, params: Params) -> list[tuple[Any, ...]]:
        return await sync_to_async(self._all)(sql, params)

    async def cap_and_peers(
        self, *, cid: int, now: int, cap: int, me: str, limit: int
    ) -> list[str]:
        return await sync_to_async(self._cap_and_peers)(cid, now, cap, me, limit)

    @staticmethod
    def _cap_and_peers(cid: int, now: int, cap: int, me: str, limit: int) -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute(CAP_EDGE, [cid, now, cap])
            edge = cursor.fetchone()
            if edge is not None:
                issued_at, row_id = edge
                cursor.execute(CAP_DELETE, [cid, issued_at, issued_at, row_id, now])
            cursor.execute(PEERS_BY_ID, [cid, now, me, limit])
            return [row[0] for row in cursor.fetchall()]


class _DjangoSessionContext:
    async def __aenter__(self) -> _DjangoSession:
        return _DjangoSession()

    async def __aexit__(self, *exc: object) -> None:
        return None


class DjangoDatabase:
    def session(self) -> _DjangoSessionContext:
        return _DjangoSessionContext()


_databases: dict[int, PgDatabase] = {}
_lock = threading.Lock()


def _pg_conninfo() -> str:
    from psycopg.conninfo import make_conninfo

    db = settings.DATABASES["default"]
    return make_conninfo(
        dbname=db["NAME"],
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=str(db["PORT"]) if db.get("PORT") else None,
    )


_django_database = DjangoDatabase()


async def get_database() -> Database:
    """The database for this event loop (pools are bound to the loop that opened them)."""
    loop_id = id(asyncio.get_running_loop())
    database = _databases.get(loop_id)
    if database is not None and database._opened:
        return database
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        return _django_database
    if database is None:
        with _lock:
            if len(_databases) > 16:
                _databases.clear()
            database = _databases[loop_id] = PgDatabase(
                _pg_conninfo(), settings.SWARM_BEACON_DB_POOL_SIZE
            )
    await database.ensure_open()
    return database


async def close_databases() -> None:
    """Close the pools opened on this loop (for tests and orderly shutdown)."""
    loop_id = id(asyncio.get_running_loop())
    database = _databases.pop(loop_id, None)
    if isinstance(database, PgDatabase) and database._opened:
        await database._pool.close()
