"""A page that leaves takes its ticket back (a signed withdrawal sent with
navigator.sendBeacon on pagehide), so the beacon stops handing out a peer that is gone; a
reloading page is listed again at once with its new ticket."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.browser.content_support import Site, peer_id, site  # noqa: F401

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def listed(where: Site) -> list[str]:
    response = httpx.get(f"{where.server.url}/beacon/v1/{where.community}/peers", timeout=5)
    return [t["body"]["peer_id"] for t in response.json()["peers"]]


def wait_for(predicate: object, timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout_s} s")


def test_a_closed_page_is_withdrawn_and_a_reloaded_one_listed_again_at_once(site: Site) -> None:  # noqa: F811
    a = site.open()
    b = site.open()
    a_id, b_id = peer_id(a), peer_id(b)
    wait_for(lambda: {a_id, b_id} <= set(listed(site)), 20, "both pages listed")
    # A page that reloads withdraws its old ticket and announces a new one; the per-peer
    # interval (15 s) does not keep the new page off the beacon.
    before = time.time()
    a.reload(wait_until="commit")
    assert peer_id(a) == a_id, "the same identity after a reload"
    wait_for(
        lambda: any(
            t["body"]["peer_id"] == a_id and t["body"]["issued_at"] / 1000 > before
            for t in httpx.get(f"{site.server.url}/beacon/v1/{site.community}/peers").json()[
                "peers"
            ]
        ),
        10,
        "the reloaded page's new ticket",
    )
    # Closing the page (pagehide) takes its ticket off the beacon long before it expires.
    b.close()
    took = wait_for(lambda: b_id not in listed(site), 5, "the closed page's withdrawal")
    print(f"closed page withdrawn after {took:.2f} s")
    assert a_id in listed(site)
    metrics = httpx.get(f"{site.server.url}/metrics", timeout=5).text
    assert 'swarm_beacon_withdrawals_total{result="withdrawn"}' in metrics
