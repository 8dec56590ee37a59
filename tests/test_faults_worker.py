"""A Celery worker killed (SIGKILL) in the middle of publishing a capsule, against real
processes: the task is handed out again to another worker once the visibility timeout
has passed, and the capsule gets published, once, with no new request. The run is
tests/support/fault_worker.py.

The workers run on a private redis-server with a 5 s visibility timeout (the default is
10 minutes). The figures are printed (``-s``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import fault_worker
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

VISIBILITY_S = 5
RESTORE_EVERY_S = 1  # settings: max(1, min(10, visibility // 10))


@dataclass
class Setup:
    var: Path
    env: dict[str, str]
    artifacts: Path


@pytest.fixture
def setup(
    live_db: None, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Setup]:
    var = tmp_path_factory.mktemp("faults-worker-var")
    redis = RedisServer(tmp_path_factory.mktemp("faults-worker-redis"), artifacts_dir)
    redis.start()
    env = fault_worker.worker_env(redis.url(), VISIBILITY_S, time_limit_s=3)
    fault_worker.create_capsule_key(var, env)
    yield Setup(var, env, artifacts_dir)
    redis.stop()


def test_a_task_whose_worker_was_killed_is_handed_out_again_and_completes(setup: Setup) -> None:
    result = fault_worker.run(
        setup.var, setup.artifacts, setup.env, wait_s=VISIBILITY_S + RESTORE_EVERY_S + 15
    )
    print("\n" + result.report())
    assert f"[{result.task_id}] received" in result.successor_log  # the same task
    assert result.redelivered_s >= VISIBILITY_S - 1  # handed out because it timed out
    assert result.capsules == 1
    assert result.published_peers == result.expected_peers
