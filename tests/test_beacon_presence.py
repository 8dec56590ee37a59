"""beacon/presence.py: which stored tickets the beacon's lists skip, given what signaling
knows of departures (a fake here; tests/test_signal_live.py runs the real one)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import pytest

from beacon import presence
from tests.support.keys import peer_id, seeded_key, ticket

NOW = 1_800_000_000_000


class FakeDepartures:
    def __init__(self, left: dict[str, int], holding: Iterable[str] = ()) -> None:
        self.left = left
        self.held = set(holding)
        self.asked: list[set[str]] = []

    def any(self) -> bool:
        return bool(self.left)

    def left_at(self, peer_id: str) -> int | None:
        return self.left.get(peer_id)

    async def holding(self, peer_ids: Iterable[str]) -> set[str]:
        asked = set(peer_ids)
        self.asked.append(asked)
        return asked & self.held


@pytest.fixture
def departures() -> Iterator[None]:
    yield
    presence.set_departures(None)


def stored(label: str, issued_at: int) -> tuple[str, str]:
    key = seeded_key(label)
    return peer_id(key), json.dumps(ticket(key, "main", issued_at), separators=(",", ":"))


@pytest.mark.usefixtures("departures")
async def test_tickets_issued_before_the_socket_closed_are_skipped_newer_ones_kept() -> None:
    (a, ta), (b, tb), (c, tc), (_, td) = (
        stored("a", NOW),
        stored("b", NOW + 5_000),
        stored("c", NOW),
        stored("d", NOW),
    )
    fake = FakeDepartures(
        {a: NOW + 1_000, b: NOW + 1_000, c: NOW + 1_000},  # d never left
        holding={c},  # c holds a socket again
    )
    presence.set_departures(fake)
    got = await presence.skip_departed([ta, tb, tc, td, "not json", '{"body":{}}'])
    # a: left after its ticket; b: its ticket is newer than its departure (a reload);
    # c: connected again; d: never left; malformed rows are not the beacon's to judge here.
    assert got == [tb, tc, td, "not json", '{"body":{}}']
    assert fake.asked == [{a, c}], "only the departed are looked up"


@pytest.mark.usefixtures("departures")
async def test_nothing_is_parsed_or_asked_without_departures_or_without_signaling() -> None:
    (_, t1), (_, t2) = stored("e", NOW), stored("f", NOW)
    rows = [t1, t2]
    assert await presence.skip_departed(rows) is rows  # no signaling wired (beacon alone)
    fake = FakeDepartures({})
    presence.set_departures(fake)
    assert await presence.skip_departed(rows) is rows
    assert fake.asked == []
