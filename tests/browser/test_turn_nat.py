"""Two Chromium pages behind two NATs where only TURN connects them (docs/operations.md "TURN").

tests/support/natlab.py builds the network with Linux network namespaces and nftables: each
page's Chromium runs in its own namespace (``ip netns exec`` as Playwright's executable) behind
its own symmetric NAT (masquerade with random ports, replies only); coturn and the web server
listen on the "internet" address 198.51.100.1 in the host's namespace. The pages load over
plain HTTP from that address, made a secure context with Chromium's
``--unsafely-treat-insecure-origin-as-secure`` (WebCrypto and the service worker need one).

1. Without TURN (STUN only, so each page has host and server-reflexive candidates), the pages
   try to connect and ICE fails: no path but a relay crosses these NATs.
2. With TURN (the default ``all`` policy: host and srflx candidates are tried too), a file
   moves from one page to the other, and the pair each page uses has a relay candidate (one
   page's relay address, reached from the other page's NAT mapping as a prflx candidate).
3. The super-peer's Python peer, forced to relay (``SWARM_SUPERPEER_ICE_TRANSPORT_POLICY``),
   runs in B's namespace (tests/support/netns_peer.py) and a peerjs page in A's namespace
   connects to it through coturn; messages go both ways.

Needs root and network namespaces; skips with the reason otherwise (``.ci/run`` installs
nftables, iproute2 and coturn).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import random
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright

from peers.protocol.turn import TurnSecret
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, new_context
from tests.browser.content_support import Site, diagnostics, peer_id
from tests.browser.test_superpeer_interop import MESSAGES, describe, untag
from tests.browser.test_turn import SELECTED_PAIR, share
from tests.support import natlab
from tests.support.coturn import MISSING, TURNSERVER, run_turnserver
from tests.support.live import ROOT, Server, base_env, free_port, spawn_daphne
from tests.support.peerjs_page import serve_page

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

SECRET = "swarm-turn-nat-" + secrets.token_hex(8)
SIZE = 256 * 1024

# An init script that only watches: every RTCPeerConnection the page makes reports its ICE and
# connection states and the types of the candidates it gathered into window.__pcs.
WATCH_CONNECTIONS = """
window.__pcs = [];
const Original = window.RTCPeerConnection;
window.RTCPeerConnection = class extends Original {
  constructor(...args) {
    super(...args);
    const record = { ice: [], states: [], local: [] };
    window.__pcs.push(record);
    const ice = () => record.ice.push(this.iceConnectionState);
    this.addEventListener("iceconnectionstatechange", ice);
    this.addEventListener("connectionstatechange", () => record.states.push(this.connectionState));
    this.addEventListener("icecandidate", (e) => {
      if (e.candidate?.type) record.local.push(e.candidate.type);
    });
  }
};
"""


@dataclass
class NatSites:
    lab: natlab.NatLab
    direct: Server  # STUN only
    turn: Server  # STUN and TURN
    turn_url: str
    stun_url: str
    harness: str  # origin of the peerjs test page (tests/support/peerjs_page.py)
    browsers: tuple[Browser, Browser]  # one Chromium in each peer namespace


@pytest.fixture(scope="module")
def lab() -> Iterator[natlab.NatLab]:
    reason = natlab.unavailable()
    if reason is not None:
        pytest.skip(reason)
    if TURNSERVER is None:
        pytest.skip(MISSING)
    with natlab.nat_lab() as made:
        yield made


@pytest.fixture(scope="module")
def sites(
    live_db: None,
    lab: natlab.NatLab,
    playwright: Playwright,
    tmp_path_factory: pytest.TempPathFactory,
    artifacts_dir: Path,
) -> Iterator[NatSites]:
    work = tmp_path_factory.mktemp("turn-nat")
    servers: list[Server] = []
    browsers: list[Browser] = []
    with (
        run_turnserver(SECRET, work, artifacts_dir, address=natlab.PUBLIC) as turn_port,
        serve_page(natlab.PUBLIC, loopback_ice=False) as harness,
    ):
        stun_url = f"stun:{natlab.PUBLIC}:{turn_port}"
        stun = [{"urls": stun_url}]
        turn_url = f"turn:{natlab.PUBLIC}:{turn_port}?transport=udp"
        try:
            for name, extra in (
                ("direct", {}),
                (
                    "turn",
                    {
                        "SWARM_TURN_URLS": turn_url,
                        "SWARM_TURN_SECRET": SECRET,
                        "SWARM_TURN_TTL_S": "600",
                    },
                ),
            ):
                port = free_port()
                env = base_env(
                    tmp_path_factory.mktemp(f"nat-{name}-var"),
                    {
                        "DJANGO_ALLOWED_HOSTS": natlab.PUBLIC,
                        "SWARM_ICE_SERVERS": json.dumps(stun),
                        "SWARM_ICE_TRANSPORT_POLICY": "all",
                        **extra,
                    },
                )
                servers.append(
                    spawn_daphne(
                        env,
                        artifacts_dir / f"nat-{name}-{port}.log",
                        name=f"nat-{name}",
                        port=port,
                        host=natlab.PUBLIC,
                    )
                )
            origins = ",".join([*(server.url for server in servers), harness])
            for peer in lab.peers:
                executable = natlab.netns_executable(work, peer.namespace, CHROMIUM)
                browsers.append(
                    playwright.chromium.launch(
                        executable_path=str(executable),
                        args=[
                            *CHROMIUM_ARGS,
                            f"--unsafely-treat-insecure-origin-as-secure={origins}",
                        ],
                        headless=True,
                    )
                )
            yield NatSites(
                lab,
                servers[0],
                servers[1],
                turn_url,
                stun_url,
                harness,
                (browsers[0], browsers[1]),
            )
        finally:
            for browser in browsers:
                browser.close()
            for server in servers:
                server.stop()


def open_pair(sites: NatSites, server: Server, shots: Path) -> tuple[Site, Site]:
    community = f"nat-{secrets.token_hex(3)}"
    return (
        Site(server, sites.browsers[0], community, shots),
        Site(server, sites.browsers[1], community, shots),
    )


def close_contexts(site: Site) -> None:
    for context in site.contexts:
        context.close()
    site.contexts.clear()


def open_page(site: Site, url: str | None = None) -> Page:
    context = new_context(site.browser, site.server.url)
    site.contexts.append(context)
    context.add_init_script(WATCH_CONNECTIONS)
    page = site.open(url, context=context)
    return page


def test_the_pages_run_behind_their_nats(sites: NatSites) -> None:
    """The set-up itself: each browser reaches the server from its NAT's address, and neither
    private network reaches the other."""
    for browser, peer in zip(sites.browsers, sites.lab.peers, strict=True):
        context = new_context(browser, sites.direct.url)
        try:
            page = context.new_page()
            page.goto(sites.direct.url + "/healthz")
            assert page.evaluate("() => window.isSecureContext")
            assert page.evaluate("() => crypto.subtle !== undefined")
        finally:
            context.close()
        # daphne's access log: the request came from the NAT's address, not the private one
        log = sites.direct.log()
        assert f"{peer.public}:" in log
        assert f"{peer.address}:" not in log


def wait_failed_attempt(page: Page, timeout_ms: int) -> None:
    """Until one connection has tried ICE (checking) and failed."""
    page.wait_for_function(
        """() => window.__pcs.some(
          (r) => r.ice.includes('checking') && r.states.includes('failed'))""",
        timeout=timeout_ms,
    )


def test_without_turn_the_nats_let_no_connection_through(
    sites: NatSites, artifacts_dir: Path
) -> None:
    a_site, b_site = open_pair(sites, sites.direct, artifacts_dir)
    try:
        a = open_page(a_site)
        b = open_page(b_site)
        pid_a, pid_b = peer_id(a), peer_id(b)
        for page in (a, b):
            page.wait_for_function("() => window.swarm.signaling?.state === 'open'", timeout=30_000)
        b.evaluate("(id) => window.swarm.connectTo(id)", pid_a)
        for page in (b, a):
            wait_failed_attempt(page, 120_000)
        for page, other in ((a, pid_b), (b, pid_a)):
            records = page.evaluate("() => window.__pcs")
            for record in records:  # the pages retry; none of their attempts got through
                assert "connected" not in record["ice"], record
                assert "completed" not in record["ice"], record
                assert "connected" not in record["states"], record
            failed = [r for r in records if "failed" in r["states"]]
            assert failed, records
            for record in failed:
                # STUN worked through the NAT: the failure is the NAT's, not a missing server.
                assert "srflx" in record["local"], record
                assert "relay" not in record["local"], record
            connected = page.evaluate("() => window.swarm.connectedPeers().map((p) => p.peerId)")
            assert other not in connected
    finally:
        close_contexts(a_site)
        close_contexts(b_site)


def test_with_turn_a_file_crosses_the_nats_through_the_relay(
    sites: NatSites, tmp_path: Path, artifacts_dir: Path
) -> None:
    data = random.Random(1818).randbytes(SIZE)
    path = tmp_path / "through-nat.bin"
    path.write_bytes(data)
    a_site, b_site = open_pair(sites, sites.turn, artifacts_dir)
    try:
        a = open_page(a_site)
        pid_a = peer_id(a)
        link = share(a, path)
        b = open_page(b_site, link)
        pid_b = peer_id(b)
        b.wait_for_function(
            "() => ['complete', 'failed'].includes("
            "document.querySelector('#download')?.dataset.state)",
            timeout=120_000,
        )
        state = b.locator("#download").get_attribute("data-state")
        recent = [f"{e['source']}/{e['code']}: {e['message']}" for e in diagnostics(b)[-30:]]
        assert state == "complete", "\n".join(recent)
        assert (
            b.locator("#download").get_attribute("data-sha256") == hashlib.sha256(data).hexdigest()
        )
        for page, other in ((b, pid_a), (a, pid_b)):
            pairs = page.evaluate(SELECTED_PAIR, other)
            assert pairs, f"no open connection to {other}"
            for pair in pairs:
                assert pair["policy"] == "all"
                # Host and srflx candidates were offered too; only a path through coturn works:
                # one end's relay with the other's NAT mapping (prflx), or relay on both ends.
                assert "relay" in (pair["local"], pair["remote"]), pair
                assert "host" not in (pair["local"], pair["remote"]), pair
            records = page.evaluate("() => window.__pcs")
            # the connection in use had offered a server-reflexive candidate too (STUN did
            # its part); whichever end's relay carries it, that one did not do
            assert any("connected" in r["states"] and "srflx" in r["local"] for r in records), (
                records
            )
    finally:
        close_contexts(a_site)
        close_contexts(b_site)


def lines_of(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    out: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.put(line.strip())

    threading.Thread(target=read, daemon=True).start()
    return out


def test_the_superpeer_peer_forced_to_relay_answers_a_page_across_the_nats(
    sites: NatSites, artifacts_dir: Path
) -> None:
    """The super-peer's Python peer (peers.peerjs with SWARM_SUPERPEER_ICE_TRANSPORT_POLICY=
    relay and credentials it computes from the TURN secret) runs in B's namespace; a peerjs
    page in A's namespace (all candidates, STUN and TURN) connects to it through coturn and
    data goes both ways."""
    python_id = "py" + secrets.token_hex(6)
    log = (artifacts_dir / f"netns-peer-{python_id}.log").open("w")
    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            sites.lab.b.namespace,
            sys.executable,
            "-m",
            "tests.support.netns_peer",
            natlab.PUBLIC,
            str(sites.turn.port),
            python_id,
            sites.turn_url,
            "relay",
        ],
        cwd=ROOT,
        env={**os.environ, "SWARM_TURN_SECRET": SECRET},
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    lines = lines_of(proc)
    try:
        assert lines.get(timeout=60) == "ready"
        issued = TurnSecret((sites.turn_url,), SECRET, 600).issue(time.time())
        context = new_context(sites.browsers[0], sites.harness)
        try:
            tab = context.new_page()
            tab.goto(sites.harness + "/")
            options = {
                "host": natlab.PUBLIC,
                "port": sites.turn.port,
                "path": "/signal/",
                "key": "peerjs",
                "debug": 0,
                "config": {
                    "iceServers": [{"urls": sites.stun_url}, issued.ice_server()],
                    "iceTransportPolicy": "all",
                },
            }
            tab.evaluate(
                "([id, o]) => harness.start(id, o)", ["br" + secrets.token_hex(6), options]
            )
            cid = tab.evaluate(
                "([id]) => harness.connect(id, {serialization: 'raw', reliable: true})",
                [python_id],
            )
            opened = lines.get(timeout=90)
            assert opened == 'open ["relay"]', opened
            for message in MESSAGES["raw"]:
                tab.evaluate("([c, v]) => harness.send(c, v)", [cid, message])
                taken = tab.evaluate("([c]) => harness.take(c, 1, 60000)", [cid])
                assert taken == [describe(untag(message))]
            pairs = tab.evaluate(
                SELECTED_PAIR.replace(
                    "[...window.swarm.conns.values()].filter((c) => c.peer === id && c.open)",
                    "[harness.conns[id]]",
                ),
                cid,
            )
            # the Python peer offered nothing but its relay address
            assert [p["remote"] for p in pairs] == ["relay"], pairs
            assert [p["policy"] for p in pairs] == ["all"], pairs
            tab.evaluate("([c]) => harness.send(c, 'bye')", [cid])
            assert lines.get(timeout=30) == "done"
        finally:
            context.close()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        log.close()
