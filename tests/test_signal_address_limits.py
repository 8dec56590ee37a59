"""Signaling limits per client address and network, in the sans-IO hub on a fake clock.

Sockets are counted by the hub (one process); ids by the directory, so every process
shares the count (tests/test_signal_directory.py runs the same quota rules on Redis).
"""

from __future__ import annotations

from tests.test_signal_hub import Net, error


def test_sockets_over_the_address_limit_are_refused_before_any_claim() -> None:
    net = Net(sockets_per_ip=2)
    first, second = net.connect("a1"), net.connect("a2")
    assert net.take(first) == net.take(second) == [{"type": "OPEN"}]
    third = net.connect("a3")
    assert net.take(third) == [error("Too many connections from your address", "ip_socket_limit")]
    assert third in net.closed
    assert net.directory.holder("a3") is None  # refused before it could take an id
    other = net.connect("b1", ip="10.0.1.1")
    assert net.take(other) == [{"type": "OPEN"}]
    # A socket that goes frees its place (a refused one counts until it is gone).
    net.disconnect(third)
    net.disconnect(first)
    again = net.connect("a4")
    assert net.take(again) == [{"type": "OPEN"}]
    assert net.hub.counters["refused", "ip_socket_limit"] == 1


def test_sockets_over_the_network_limit_are_refused_from_any_address_in_it() -> None:
    net = Net(sockets_per_ip=5, sockets_per_network=3)
    for n in range(3):
        assert net.take(net.connect(f"n{n}", ip=f"10.0.0.{n + 1}")) == [{"type": "OPEN"}]
    refused = net.connect("n9", ip="10.0.0.200")
    message = "Too many connections from your network"
    assert net.take(refused) == [error(message, "network_socket_limit")]
    assert net.take(net.connect("m1", ip="10.0.9.1")) == [{"type": "OPEN"}]


def test_ids_over_the_address_limit_are_refused_by_the_directory() -> None:
    net = Net(ids_per_ip=2, ids_per_network=3)
    held = [net.connect(f"i{n}") for n in range(2)]
    assert all(net.take(conn) == [{"type": "OPEN"}] for conn in held)
    over = net.connect("i2")
    assert net.take(over) == [error("Too many ids held from your address", "ip_id_limit")]
    assert over in net.closed
    # Another address of the same /24 still has the network's last id, then no more.
    assert net.take(net.connect("j0", ip="10.0.0.2")) == [{"type": "OPEN"}]
    network_over = net.connect("j1", ip="10.0.0.3")
    message = "Too many ids held from your network"
    assert net.take(network_over) == [error(message, "network_id_limit")]
    # The same client reconnecting (same id and token) takes its id back at the limit.
    again = net.connect("i0")
    assert net.take(again) == [{"type": "OPEN"}]
    assert net.take(held[0]) == [
        {"type": "ID-TAKEN", "payload": {"msg": "ID is taken", "code": "replaced"}}
    ]
    # An id given up frees its place.
    net.disconnect(held[1])
    assert net.take(net.connect("i3")) == [{"type": "OPEN"}]


def test_without_limits_one_address_may_hold_many_ids() -> None:
    net = Net()
    conns = [net.connect(f"x{n}") for n in range(300)]
    assert all(net.take(conn) == [{"type": "OPEN"}] for conn in conns)
