"""Two peers behind their own NATs, made of Linux network namespaces and nftables.

The "internet" is 198.51.100.0/24 (TEST-NET-2) on a bridge in the host's namespace, where the
host has 198.51.100.1 (coturn and the web server listen there). Each peer has two namespaces:

    peer A: eth0 10.0.1.2 -- lan 10.0.1.1 [router A] wan 198.51.100.10 --+
                                                                         +-- bridge: host
    peer B: eth0 10.0.2.2 -- lan 10.0.2.1 [router B] wan 198.51.100.20 --+    198.51.100.1

Each router masquerades what leaves on ``wan`` with ``fully-random`` ports: a new mapping
(a new port) for every destination, a symmetric NAT, so the address a peer learns through STUN
is no use to another peer. Its forward chain lets out only traffic to 198.51.100.0/24 and lets
in only replies (``ct state established,related``). The routers have no default route, so the
private networks reach nothing else; the host does not forward (its ``ip_forward`` is left as
it is, and nothing here routes through it). Host candidates (10.0.x.2) are unreachable from the
other side, server-reflexive ones are refused by the other NAT: only a TURN relay on
198.51.100.1 connects the two.

Everything is removed on exit (namespaces with their links and nftables tables; the bridge).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PUBLIC = "198.51.100.1"
PUBLIC_NET = "198.51.100.0/24"

ROUTER_RULES = f"""
table inet swarm_nat {{
  chain forward {{
    type filter hook forward priority filter; policy drop;
    iifname "lan" oifname "wan" ip daddr {PUBLIC_NET} accept
    iifname "wan" oifname "lan" ct state established,related accept
  }}
}}
table ip swarm_nat4 {{
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade fully-random
  }}
}}
"""


@dataclass(frozen=True)
class NatPeer:
    namespace: str  # where the peer's programs run (ip netns exec)
    router: str  # the namespace of its NAT
    address: str  # its private address
    public: str  # its NAT's address on the "internet"


@dataclass(frozen=True)
class NatLab:
    bridge: str
    a: NatPeer
    b: NatPeer

    @property
    def peers(self) -> tuple[NatPeer, NatPeer]:
        return (self.a, self.b)


def unavailable() -> str | None:
    """Why the lab cannot be made here (the test skips with this reason), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (run the suite as root, as .ci/run does)"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"{tool} is missing: apt-get install {package} (.ci/run installs it)"
    probe = f"swprobe{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add failed (no network namespace support?): {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _run(*args: str, stdin: str | None = None) -> None:
    done = subprocess.run(args, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")


@contextmanager
def nat_lab() -> Iterator[NatLab]:
    tag = secrets.token_hex(3)
    bridge = f"swbr{tag}"
    made_namespaces: list[str] = []
    made_links: list[str] = []
    try:
        with_bridge = subprocess.run(
            ["ip", "-o", "addr", "show", "to", PUBLIC], capture_output=True, text=True
        )
        if with_bridge.stdout.strip():
            raise RuntimeError(f"{PUBLIC} is already in use here: {with_bridge.stdout.strip()}")
        _run("ip", "link", "add", bridge, "type", "bridge")
        made_links.append(bridge)
        _run("ip", "addr", "add", f"{PUBLIC}/24", "dev", bridge)
        _run("ip", "link", "set", bridge, "up")
        peers = []
        for name, wan, lan in (("a", "198.51.100.10", "10.0.1"), ("b", "198.51.100.20", "10.0.2")):
            peer_ns, router_ns = f"sw{tag}{name}", f"sw{tag}{name}nat"
            for ns in (peer_ns, router_ns):
                _run("ip", "netns", "add", ns)
                made_namespaces.append(ns)
                _run("ip", "-n", ns, "link", "set", "lo", "up")
            host_end = f"sw{tag}{name}h"
            _run(
                "ip",
                "link",
                "add",
                host_end,
                "type",
                "veth",
                "peer",
                "name",
                "wan",
                "netns",
                router_ns,
            )
            made_links.append(host_end)
            _run("ip", "link", "set", host_end, "master", bridge, "up")
            _run("ip", "-n", router_ns, "addr", "add", f"{wan}/24", "dev", "wan")
            _run("ip", "-n", router_ns, "link", "set", "wan", "up")
            _run(
                "ip",
                "-n",
                router_ns,
                "link",
                "add",
                "lan",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                peer_ns,
            )
            _run("ip", "-n", router_ns, "addr", "add", f"{lan}.1/24", "dev", "lan")
            _run("ip", "-n", router_ns, "link", "set", "lan", "up")
            _run("ip", "-n", peer_ns, "addr", "add", f"{lan}.2/24", "dev", "eth0")
            _run("ip", "-n", peer_ns, "link", "set", "eth0", "up")
            _run("ip", "-n", peer_ns, "route", "add", "default", "via", f"{lan}.1")
            _run("ip", "netns", "exec", router_ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            _run("ip", "netns", "exec", router_ns, "nft", "-f", "-", stdin=ROUTER_RULES)
            peers.append(NatPeer(peer_ns, router_ns, f"{lan}.2", wan))
        yield NatLab(bridge, peers[0], peers[1])
    finally:
        for ns in reversed(made_namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for link in reversed(made_links):
            subprocess.run(["ip", "link", "del", link], capture_output=True)


def netns_executable(directory: Path, namespace: str, program: str) -> Path:
    """A script that runs ``program`` with its arguments inside ``namespace`` (for Playwright's
    ``executable_path``: the browser runs there, its control pipe stays with the test)."""
    path = directory / f"in-{namespace}"
    path.write_text(f'#!/bin/sh\nexec ip netns exec {namespace} {program} "$@"\n')
    path.chmod(0o755)
    return path
