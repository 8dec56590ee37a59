"""The beacon and signaling through a PostgreSQL restart, against real processes: a
private PostgreSQL cluster, two daphnes on it (and a private Redis), announces under
load while PostgreSQL is stopped (immediate: as in a crash) and started again. The run
is tests/support/fault_postgres.py.

What must hold: announces answer 503 (never hang, never 500) while PostgreSQL is away,
succeed again within 5 s of it being back and stay so; /healthz says 503 while they
fail and 200 once they work; a block made after the restart (a read of the block list
through the connection used outside requests, the one that used to stay broken) is
enforced by both beacons and by signaling. The figures are printed (``-s``); the longer
run (two restarts, a minute past the block cache's reload) is ``bench/faults.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import fault_postgres
from tests.support.pg_cluster import missing

pytestmark = [pytest.mark.live]

# Announces wait up to 5 s for a connection (beacon/store.py ACQUIRE_TIMEOUT_S): a
# shorter outage fails none of them.
OUTAGE_S = 7.0
RECOVERY_BOUND_S = 5.0


@pytest.fixture
def deployment(
    tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[fault_postgres.PgDeployment]:
    reason = missing()
    if reason:
        pytest.skip(reason)
    deployment = fault_postgres.start(tmp_path_factory.mktemp("faults-pg"), artifacts_dir)
    yield deployment
    deployment.stop()


async def test_beacon_and_signaling_survive_a_postgresql_restart(
    deployment: fault_postgres.PgDeployment,
) -> None:
    result = await fault_postgres.run(
        deployment,
        restarts=[("immediate", OUTAGE_S)],
        settle_s=RECOVERY_BOUND_S + 1,
        steady_s=5.0,
    )
    print("\n" + result.report())
    (restart,) = result.restarts
    assert set(restart.during) <= {200, 503}, restart.during  # never a 500, never a hang
    assert restart.during[503] > 0  # the outage was long enough to fail some
    assert restart.recovered is not None
    assert restart.recovered - restart.back <= RECOVERY_BOUND_S
    assert set(result.after) == {200}  # and stayed so
    # /healthz follows what announces get: 503 while they fail, 200 once they work.
    assert restart.health_down is not None
    assert restart.health_down < restart.back
    assert set(restart.health_during) == {503}
    assert restart.health_up is not None
    assert restart.health_up - restart.back <= RECOVERY_BOUND_S + 1
    assert set(result.health_after) == {200}
    assert result.held_socket_got, "the blocked peer's socket got nothing"
    assert result.held_socket_got[-1]["payload"]["code"] == "blocked"
    assert result.new_socket_got is not None
    assert result.new_socket_got["payload"]["code"] == "blocked"
