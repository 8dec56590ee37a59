"""Ticket storage for the announce fast path: the same SQL on PostgreSQL and SQLite.

PostgreSQL is reached through a psycopg async connection pool (no thread hop per
query); any other engine, SQLite in the embedded default, through Django's own
connection in a worker thread. Statements run in autocommit: each is atomic on
its own, and no announce needs two of them to commit together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from psycopg import OperationalError
from psycopg.errors import DeadlockDetected, SerializationFailure

from shared.db import POOL_RECONNECT_TIMEOUT_S, check_async_connection, check_idle_connections
from shared.fastpath import PerLoop

from .models import Community, PresenceTicket

TICKETS = PresenceTicket._meta.db_table
COMMUNITIES = Community._meta.db_table

Params = Sequence[Any]

# Past this wait for a pooled connection an announce is answered 503 (clients give up
# after 8 s, DESIGN section 4).
ACQUIRE_TIMEOUT_S = 5.0

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
# The cap keeps at most `cap` live tickets: the one just accepted plus the cap - 1
# newest others. EDGE finds the newest other ticket that has to go; it and every
# older (or expired) other ticket are deleted.
CAP_EDGE = f"""
    SELECT issued_at, id FROM {TICKETS}
    WHERE community_id = %s AND expires_at > %s AND peer_id <> %s
    ORDER BY issued_at DESC, id DESC LIMIT 1 OFFSET %s
"""
CAP_DELETE = f"""
    DELETE FROM {TICKETS} WHERE community_id = %s AND peer_id <> %s AND
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
# On PostgreSQL a whole announce is one statement (one round trip): the upsert, the
# cap and the peer list. Every part reads the snapshot taken before the upsert, which
# is why the caller is excluded from the cap count and from the list (it is never in
# either). The first row (k = 0) exists only if the upsert wrote.
ANNOUNCE_PG = f"""
    WITH up AS (
        INSERT INTO {TICKETS}
            (community_id, peer_id, public_key, issued_at, expires_at, nonce, envelope, ip,
             received_at)
        SELECT c.id, %(me)s, %(pk)s, %(issued_at)s, %(expires_at)s, %(nonce)s, %(envelope)s,
               %(ip)s, CURRENT_TIMESTAMP
        FROM {COMMUNITIES} c WHERE c.name = %(community)s AND c.is_open
        ON CONFLICT (community_id, peer_id) DO UPDATE SET
            public_key = excluded.public_key, issued_at = excluded.issued_at,
            expires_at = excluded.expires_at, nonce = excluded.nonce,
            envelope = excluded.envelope, ip = excluded.ip, received_at = excluded.received_at
        WHERE {TICKETS}.issued_at < excluded.issued_at AND {TICKETS}.nonce <> excluded.nonce
        RETURNING community_id
    ), edge AS (
        SELECT t.community_id, t.issued_at, t.id FROM {TICKETS} t JOIN up USING (community_id)
        WHERE t.expires_at > %(now)s AND t.peer_id <> %(me)s
        ORDER BY t.issued_at DESC, t.id DESC LIMIT 1 OFFSET %(others)s
    ), victims AS (
        -- SKIP LOCKED: rows another announce is deleting or refreshing are left to it (or
        -- to the next announce), so concurrent announces never wait on each other in a
        -- cycle. The cap may be over by a row or two for the length of a transaction.
        SELECT t.id FROM {TICKETS} t JOIN edge ON t.community_id = edge.community_id
        WHERE t.peer_id <> %(me)s AND
            (t.issued_at < edge.issued_at OR (t.issued_at = edge.issued_at AND t.id <= edge.id)
             OR t.expires_at <= %(now)s)
        FOR UPDATE OF t SKIP LOCKED
    ), gone AS (
        DELETE FROM {TICKETS} WHERE id IN (SELECT id FROM victims)
    )
    SELECT 0 AS k, NULL::bigint AS issued_at, NULL::bigint AS id, NULL::text AS envelope FROM up
    UNION ALL
    (SELECT 1, t.issued_at, t.id, t.envelope FROM {TICKETS} t JOIN up USING (community_id)
     WHERE t.expires_at > %(now)s AND t.peer_id <> %(me)s
     ORDER BY t.issued_at DESC, t.id DESC LIMIT %(limit)s)
    ORDER BY 1, 2 DESC, 3 DESC
"""
CREATE_COMMUNITY = f"""
    INSERT INTO {COMMUNITIES} (name, is_open, configured, created_at)
    VALUES (%s, TRUE, FALSE, CURRENT_TIMESTAMP)
    ON CONFLICT (name) DO NOTHING RETURNING id
"""
COMMUNITY_OPEN = f"SELECT is_open FROM {COMMUNITIES} WHERE name = %s"
# A withdrawal removes the peer's ticket only while it is the one the withdrawal names.
WITHDRAW = f"""
    DELETE FROM {TICKETS}
    WHERE community_id = (SELECT id FROM {COMMUNITIES} WHERE name = %s)
        AND peer_id = %s AND nonce = %s
    RETURNING issued_at, expires_at
"""


@dataclass(frozen=True, slots=True)
class TicketRow:
    """The stored form of a verified ticket."""

    community: str
    peer_id: str
    public_key: str
    issued_at: int
    expires_at: int
    nonce: str
    envelope: str
    ip: str | None

    def as_params(self) -> dict[str, Any]:
        return {
            "community": self.community,
            "me": self.peer_id,
            "pk": self.public_key,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "nonce": self.nonce,
            "envelope": self.envelope,
            "ip": self.ip,
        }

    def as_upsert_params(self) -> list[Any]:
        return [
            self.peer_id,
            self.public_key,
            self.issued_at,
            self.expires_at,
            self.nonce,
            self.envelope,
            self.ip,
            self.community,
        ]


class Session(Protocol):
    """One connection's worth of statements."""

    async def one(self, sql: str, params: Params) -> tuple[Any, ...] | None: ...

    async def all(self, sql: str, params: Params) -> list[tuple[Any, ...]]: ...

    async def announce(self, row: TicketRow, *, now: int, cap: int, limit: int) -> list[str] | None:
        """Store a verified ticket, enforce the cap and list the other live peers, newest
        first; None when nothing was written (replay, or a missing or closed community)."""
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

    async def announce(self, row: TicketRow, *, now: int, cap: int, limit: int) -> list[str] | None:
        # Only the cap - 1 newest others survive the cap, so listing at most that many
        # gives, from the pre-delete snapshot, what a read after the delete would.
        params = {**row.as_params(), "now": now, "others": cap - 1, "limit": min(limit, cap - 1)}
        for attempt in range(3):
            try:
                cursor = await self._conn.execute(ANNOUNCE_PG, params)
                rows = await cursor.fetchall()
                break
            except (DeadlockDetected, SerializationFailure):
                # A cycle with some other writer (an operator's bulk delete, say): the
                # statement rolled back as a whole, so running it again is safe.
                if attempt == 2:
                    raise
        if not rows or rows[0][0] != 0:
            return None
        return [r[3] for r in rows[1:]]


class _PgSessionContext:
    def __init__(self, database: PgDatabase) -> None:
        self._database = database
        self._conn: Any = None

    async def __aenter__(self) -> _PgSession:
        self._conn = await self._database.acquire()
        return _PgSession(self._conn)

    async def __aexit__(self, *exc: object) -> None:
        # A connection that broke meanwhile is dropped by the pool, which opens another.
        await self._database.pool.putconn(self._conn)


class PgDatabase:
    def __init__(self, conninfo: str, max_size: int) -> None:
        from psycopg_pool import AsyncConnectionPool

        self.max_size = max_size
        self.pool: Any = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True},
            open=False,
            timeout=ACQUIRE_TIMEOUT_S,
            reconnect_timeout=POOL_RECONNECT_TIMEOUT_S,
        )
        self._opened = False

    async def ensure_open(self) -> None:
        if not self._opened:
            await self.pool.open()
            self._opened = True

    async def acquire(self) -> Any:
        """A connection that answers: dead ones (a database restart leaves them idle in
        the pool) are dropped and the next one tried, with no pause between."""
        for _ in range(self.max_size + 1):
            conn = await self.pool.getconn()
            if await check_async_connection(conn):
                return conn
            await conn.close()
            await self.pool.putconn(conn)
            # The database restarted, most likely: Django's pool holds dead ones too.
            asyncio.get_running_loop().run_in_executor(None, check_idle_connections)
        raise OperationalError("no usable database connection in the pool")

    def session(self) -> _PgSessionContext:
        return _PgSessionContext(self)


class _DjangoSession:
    # SQLite in the embedded default: a local file with no server to restart, so the
    # thread keeps its connection (opening one per announce would cost more than the
    # statements); PostgreSQL goes through PgDatabase.
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

    async def announce(self, row: TicketRow, *, now: int, cap: int, limit: int) -> list[str] | None:
        return await sync_to_async(self._announce)(row, now, cap, limit)

    @staticmethod
    def _announce(row: TicketRow, now: int, cap: int, limit: int) -> list[str] | None:
        me = row.peer_id
        with connection.cursor() as cursor:
            cursor.execute(UPSERT, row.as_upsert_params())
            written = cursor.fetchone()
            if written is None:
                return None
            cid = written[0]
            cursor.execute(CAP_EDGE, [cid, now, me, cap - 1])
            edge = cursor.fetchone()
            if edge is not None:
                issued_at, row_id = edge
                cursor.execute(CAP_DELETE, [cid, me, issued_at, issued_at, row_id, now])
            cursor.execute(PEERS_BY_ID, [cid, now, me, limit])
            return [r[0] for r in cursor.fetchall()]


class _DjangoSessionContext:
    async def __aenter__(self) -> _DjangoSession:
        return _DjangoSession()

    async def __aexit__(self, *exc: object) -> None:
        return None


class DjangoDatabase:
    def session(self) -> _DjangoSessionContext:
        return _DjangoSessionContext()


_databases = PerLoop(lambda: PgDatabase(_pg_conninfo(), settings.SWARM_BEACON_DB_POOL_SIZE))


def _pg_conninfo() -> str:
    from psycopg.conninfo import make_conninfo

    db = settings.DATABASES["default"]
    return make_conninfo(
        dbname=db["NAME"],
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=str(db["PORT"]) if db.get("PORT") else None,
        # Presence tickets live three minutes and are re-announced: losing the last few
        # milliseconds of them in a database crash is harmless, waiting for a WAL flush
        # on every announce is not (it is most of the tail latency).
        options="-c synchronous_commit=off",
    )


_django_database = DjangoDatabase()


async def get_database() -> Database:
    """The database for this event loop (pools are bound to the loop that opened them)."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        return _django_database
    database = _databases.get()
    if not database._opened:
        await database.ensure_open()
    return database


async def ping() -> None:
    """One statement through the fast path's own connections (for /healthz)."""
    database = await get_database()
    async with database.session() as session:
        await session.one("SELECT 1", [])


async def close_databases() -> None:
    """Close the pools opened on this loop (for tests and orderly shutdown)."""
    database = _databases.pop()
    if database is not None and database._opened:
        await database.pool.close()
