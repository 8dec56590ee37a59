from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.live import LOOPBACK_LIMITS_OFF, Server, start_daphne

logging.getLogger("httpx").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session", autouse=True)
def _no_background_metrics_flush() -> None:
    """Counters in the test process are flushed when /metrics renders, not by a thread
    that would outlive the test database."""
    from django.conf import settings

    settings.SWARM_METRICS_BACKGROUND_FLUSH = False


@pytest.fixture(scope="session", autouse=True)
def _no_loopback_limits() -> None:
    """In-process tests, like the servers they start, speak for many clients from one
    address: the per-address limits are off unless a test sets them (LOOPBACK_LIMITS_OFF)."""
    from django.conf import settings

    for name in LOOPBACK_LIMITS_OFF:
        setattr(settings, name, 0)


@pytest.fixture(scope="session", autouse=True)
def _flush_survives_live_servers() -> Iterator[None]:
    """Transactional tests end with a TRUNCATE of every table while the live servers (daphne,
    super-peers) of module-scoped fixtures keep querying: PostgreSQL may pick the TRUNCATE
    as a deadlock's victim. The flush is all-or-nothing, so it is simply run again."""
    import time

    from django.db import OperationalError
    from django.db.backends.base.operations import BaseDatabaseOperations

    original = BaseDatabaseOperations.execute_sql_flush

    def execute_sql_flush(self: BaseDatabaseOperations, sql_list: Iterable[str]) -> None:
        for attempt in range(5):
            try:
                original(self, sql_list)
                return
            except OperationalError as error:
                if "deadlock detected" not in str(error) or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    BaseDatabaseOperations.execute_sql_flush = execute_sql_flush  # type: ignore[method-assign]
    yield
    BaseDatabaseOperations.execute_sql_flush = original  # type: ignore[method-assign]


@pytest.fixture(scope="session", autouse=True)
def _clean_redis() -> None:
    """Start every session from an empty test Redis database (REDIS_URL points at it)."""
    url = os.environ.get("REDIS_URL")
    if url:
        import redis

        redis.Redis.from_url(url).flushdb()


@pytest.fixture(scope="session")
def live_db(django_db_setup: Any) -> None:
    """The migrated test database that server processes started by tests use.

    pytest-django creates it only when some collected test is marked ``django_db``;
    live test modules are marked ``django_db(transaction=True)`` so that rows they
    write are committed and visible to the servers.
    """


@pytest.fixture(scope="session")
def beacon_server(
    live_db: None, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Server]:
    """One daphne on 127.0.0.1 with short limits, shared by beacon integration tests.

    Tests isolate themselves with their own community and X-Forwarded-For address.
    """
    server = start_daphne(
        tmp_path_factory.mktemp("beacon-var"),
        artifacts_dir,
        {
            "SWARM_TRUST_X_FORWARDED_FOR": "1",
            "SWARM_BEACON_PEER_INTERVAL_S": "2",
            "SWARM_BEACON_IP_RATE": "0.5",
            "SWARM_BEACON_IP_BURST": "20",
        },
        name="beacon",
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def _asgi_app(django_db_setup: Any) -> Any:
    from beacon.store import close_databases
    from swarmweb.asgi import application

    yield application
    await close_databases()
    # ORM calls from async tests ran in asgiref's sync thread: close its connection too.
    from asgiref.sync import sync_to_async
    from django.db import connections

    await sync_to_async(connections.close_all)()


@pytest.fixture
async def api(_asgi_app: Any) -> Any:
    from tests.support.asgi import ApiClient

    client = ApiClient(_asgi_app)
    yield client
    await client.aclose()
