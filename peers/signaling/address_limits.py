"""Signaling limits per client address and network (SWARM_SIGNAL_SOCKETS_PER_* and
SWARM_SIGNAL_IDS_PER_*): what the hub counts, and the refusals it sends.

Sockets are counted here, per process; ids by the directory (``directory.Quota``), so that
every process sees the same count.
"""

from __future__ import annotations

from collections import Counter

from . import directory as d

# A directory's refusal of a claim -> (ERROR message, stable code).
ID_REFUSALS = {
    d.IP_FULL: ("Too many ids held from your address", "ip_id_limit"),
    d.NETWORK_FULL: ("Too many ids held from your network", "network_id_limit"),
}
IP_SOCKETS = ("Too many connections from your address", "ip_socket_limit")
NETWORK_SOCKETS = ("Too many connections from your network", "network_socket_limit")


class SocketCounts:
    """Open sockets per client address and network in this process (0 = no limit)."""

    def __init__(self, per_ip: int, per_network: int) -> None:
        self.per_ip = per_ip
        self.per_network = per_network
        self._open: Counter[str] = Counter()

    def opened(self, ip: str | None, network: str | None) -> tuple[str, str] | None:
        """Count a new socket; the (message, code) to refuse it with if over a limit (it
        still counts until :meth:`closed`)."""
        for key in _keys(ip, network):
            self._open[key] += 1
        if ip and self.per_ip and self._open["a " + ip] > self.per_ip:
            return IP_SOCKETS
        if network and self.per_network and self._open["n " + network] > self.per_network:
            return NETWORK_SOCKETS
        return None

    def closed(self, ip: str | None, network: str | None) -> None:
        for key in _keys(ip, network):
            self._open[key] -= 1
            if self._open[key] <= 0:
                del self._open[key]


def _keys(ip: str | None, network: str | None) -> list[str]:
    keys = ["a " + ip] if ip else []
    if network:
        keys.append("n " + network)
    return keys
