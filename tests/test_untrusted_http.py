"""Odd HTTP input to the beacon fast path and the pages, through the real ASGI application:
each gets its stable answer, never a 503 or a 500 that blames the server for the client.

(tests/test_beacon_api.py holds the beacon contract; this file is the input audit's cases.)
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.asgi import ApiClient

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _generous_limits(settings: Any) -> None:
    settings.SWARM_BEACON_READ_IP_BURST = 1_000_000


@pytest.mark.parametrize(
    "value",
    [
        "%C2%B2",  # "²": str.isdigit() says yes, int() says no
        "%D9%A3",  # an Arabic-Indic 3: int() reads it, but it is no ASCII number
        "1%00",
        "+5",
        "%201",
        "1e3",
        "0",
        "-1",
    ],
)
async def test_a_limit_that_is_not_a_plain_positive_number_is_bad_limit(
    api: ApiClient, value: str
) -> None:
    response = await api.get(f"/beacon/v1/main/peers?limit={value}")
    assert response.status_code == 400
    assert response.json() == {
        "ok": False,
        "error": {"code": "bad_limit", "message": "limit must be a positive integer"},
    }


@pytest.mark.parametrize(
    "value",
    [
        "9" * 64,
        "9" * 5000,  # past Python's 4300-digit limit for int()
        "0" * 5000 + "1",
    ],
)
async def test_a_long_plain_limit_is_read_and_capped_not_refused(
    api: ApiClient, value: str
) -> None:
    response = await api.get(f"/beacon/v1/main/peers?limit={value}")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "peers": []}


@pytest.mark.parametrize(
    "path", ["/capsules/keys.json", "/capsules/main.json", "/healthz", "/metrics"]
)
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_writes_to_read_only_endpoints_are_405_with_allow(
    api: ApiClient, path: str, method: str
) -> None:
    # Not a CSRF page: these endpoints take no writes from anyone, cookie or not.
    response = await api.request(method, path)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", ["/capsules/keys.json", "/healthz", "/metrics"])
async def test_head_of_read_only_endpoints_has_no_body(api: ApiClient, path: str) -> None:
    response = await api.request("HEAD", path)
    assert response.status_code == 200
    assert response.content == b""
