"""Property tests: no input makes the beacon answer 500 or anything off-contract."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.clock import now_ms
from tests.support.asgi import ApiClient
from tests.support.keys import seeded_key, ticket

pytestmark = pytest.mark.django_db(transaction=True)

ERROR_STATUSES = {400, 403, 404, 413, 422, 429}
KEY = seeded_key("fuzz")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)

FIELDS = ["v", "alg", "pk", "sig", "body"]
BODY_FIELDS = ["peer_id", "community", "issued_at", "expires_at", "nonce", "signal", "caps"]


@pytest.fixture(autouse=True)
def _generous_limits(settings: Any) -> None:
    settings.SWARM_BEACON_IP_BURST = 10**9
    settings.SWARM_BEACON_PEER_INTERVAL_S = 0


def check(response: Any) -> None:
    assert response.status_code in ERROR_STATUSES | {200}, response.content[:300]
    payload = response.json()
    if response.status_code == 200:
        assert payload["ok"] is True
        assert isinstance(payload["peers"], list)
    else:
        assert payload["ok"] is False
        assert isinstance(payload["error"]["code"], str)
        assert isinstance(payload["error"]["message"], str)


async def post(client: ApiClient, community: str, data: bytes) -> Any:
    return await client.post(f"/beacon/v1/{community}/announce", data)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=5000))
async def test_arbitrary_bytes_never_500(api: ApiClient, raw: bytes) -> None:
    check(await post(api, "main", raw))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=json_values)
async def test_arbitrary_json_never_500(api: ApiClient, value: Any) -> None:
    check(await post(api, "main", json.dumps(value).encode()))


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    field=st.sampled_from([*FIELDS, "extra"]),
    body_field=st.sampled_from([*BODY_FIELDS, "unknown"]),
    replacement=json_values,
    where=st.sampled_from(["envelope", "body"]),
)
async def test_one_field_replaced_by_anything_never_500(
    api: ApiClient, field: str, body_field: str, replacement: Any, where: str
) -> None:
    env = ticket(KEY, "main", now_ms())
    original = json.dumps(env, sort_keys=True)
    if where == "envelope":
        env[field] = replacement
    else:
        env["body"][body_field] = replacement
    response = await post(api, "main", json.dumps(env).encode())
    check(response)
    if json.dumps(env, sort_keys=True) != original:  # a real change is never accepted
        assert response.status_code != 200


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(community=st.text(min_size=1, max_size=80).filter(lambda s: "/" not in s))
async def test_any_community_path_never_500(api: ApiClient, community: str) -> None:
    from urllib.parse import quote

    response = await api.get(f"/beacon/v1/{quote(community, safe='')}/peers")
    assert response.status_code in {200, 404, 429}
