"""Pages forced to relay through a real coturn (docs/operations.md "TURN").

The test starts ``turnserver`` on 127.0.0.1 with ``use-auth-secret`` and a secret, and a
server whose pages use ``iceTransportPolicy: "relay"`` with short-lived credentials derived
from that secret. Two pages connect and transfer a file; getStats shows that the pair in use
is relay on both ends. Then pages whose credentials coturn must refuse (made with a wrong
secret; expired) do not connect and say why (``turn_auth_failed``). The Python peer of the
super-peer, with the TURN secret, gets a relay candidate with credentials it computed and
a relay-only peerjs page reaches it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from peers.peerjs.ice import IceConfig
from peers.peerjs.peer import Peer
from peers.peerjs.signaling import ServerAddress
from peers.protocol.turn import TurnSecret
from tests.browser.conftest import new_context
from tests.browser.content_support import (  # noqa: F401
    Site,
    codes,
    diagnostics,
    peer_id,
    wait_connected,
)
from tests.browser.test_superpeer_interop import MESSAGES, exchange
from tests.support.aio_thread import LoopThread
from tests.support.coturn import MISSING, TURNSERVER, run_turnserver
from tests.support.live import start_daphne
from tests.support.peerjs_page import serve_page

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

SECRET = "swarm-turn-test-" + secrets.token_hex(8)
SIZE = 512 * 1024


@pytest.fixture(scope="module")
def turn_port(tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path) -> Iterator[int]:
    if TURNSERVER is None:
        pytest.skip(MISSING)
    with run_turnserver(SECRET, tmp_path_factory.mktemp("coturn"), artifacts_dir) as port:
        yield port


def turn_url(port: int) -> str:
    return f"turn:127.0.0.1:{port}?transport=udp"


@pytest.fixture(scope="module")
def site(
    live_db: None,
    browser: Browser,
    turn_port: int,
    tmp_path_factory: pytest.TempPathFactory,
    artifacts_dir: Path,
) -> Iterator[Site]:
    shots = artifacts_dir / "screenshots"
    shots.mkdir(exist_ok=True)
    server = start_daphne(
        tmp_path_factory.mktemp("turn-var"),
        artifacts_dir,
        {
            "SWARM_TURN_URLS": turn_url(turn_port),
            "SWARM_TURN_SECRET": SECRET,
            "SWARM_TURN_TTL_S": "600",
            "SWARM_ICE_TRANSPORT_POLICY": "relay",
        },
        name="turn-web",
    )
    state = Site(server, browser, f"turn-{secrets.token_hex(3)}", shots)
    yield state
    state.close()


SELECTED_PAIR = """async (id) => {
  const conns = [...window.swarm.conns.values()].filter((c) => c.peer === id && c.open);
  const out = [];
  for (const conn of conns) {
    const stats = await conn.peerConnection.getStats();
    let pair = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) {
        pair = stats.get(s.selectedCandidatePairId);
      }
    });
    if (!pair) stats.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
    });
    out.push({
      local: pair ? stats.get(pair.localCandidateId)?.candidateType : null,
      remote: pair ? stats.get(pair.remoteCandidateId)?.candidateType : null,
      policy: conn.peerConnection.getConfiguration().iceTransportPolicy,
    });
  }
  return out;
}"""


def share(page: Page, path: Path) -> str:
    page.wait_for_selector("#files:not([hidden])")
    page.locator("#share-file").set_input_files(str(path))
    page.wait_for_function(
        "() => document.querySelector('#share-link')?.href.includes('/f/')", timeout=60_000
    )
    return str(page.locator("#share-link").get_attribute("href"))


def test_two_pages_forced_to_relay_connect_and_transfer_a_file(site: Site, tmp_path: Path) -> None:
    data = random.Random(18).randbytes(SIZE)
    path = tmp_path / "relayed.bin"
    path.write_bytes(data)
    a = site.open()
    pid_a = peer_id(a)
    link = share(a, path)
    b = site.open(link)
    pid_b = peer_id(b)
    wait_connected(b, [pid_a], timeout_s=60)
    b.wait_for_function(
        "() => ['complete', 'failed'].includes(document.querySelector('#download')?.dataset.state)",
        timeout=90_000,
    )
    state = b.locator("#download").get_attribute("data-state")
    recent = [f"{e['source']}/{e['code']}: {e['message']}" for e in diagnostics(b)[-30:]]
    assert state == "complete", "\n".join(recent)
    assert b.locator("#download").get_attribute("data-sha256") == hashlib.sha256(data).hexdigest()
    for page, other in ((b, pid_a), (a, pid_b)):
        pairs = page.evaluate(SELECTED_PAIR, other)
        assert pairs, f"no open connection to {other}"
        for pair in pairs:
            assert pair == {"local": "relay", "remote": "relay", "policy": "relay"}
        # The peers table says so too (DESIGN section 11).
        page.wait_for_selector(
            f'[data-peer-row][data-peer-id="{other}"][data-ice="relay"]',
            state="attached",
            timeout=15_000,
        )
    # The credentials carry the refresh endpoint; the secret never reaches the page.
    config = a.evaluate("() => document.getElementById('swarm-config').textContent")
    assert SECRET not in config
    assert json.loads(config)["turn"]["url"] == "/turn/credentials"


# A page holding the given TURN credentials: every RTCPeerConnection it makes gets them in
# place of the ones the server handed out (the page's own code runs unchanged).
HOLD_CREDENTIALS = """([username, credential]) => {
  const Original = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Original {
    constructor(config = {}, ...rest) {
      const iceServers = (config.iceServers ?? []).map(
        (s) => (s.username ? { ...s, username, credential } : s));
      super({ ...config, iceServers }, ...rest);
    }
  };
}"""


@pytest.mark.parametrize("case", ["wrong_secret", "expired"])
def test_refused_credentials_fail_the_connection_and_the_page_says_why(
    site: Site, turn_port: int, case: str
) -> None:
    community = f"turn-{case.replace('_', '-')}-{secrets.token_hex(3)}"
    url = f"{site.server.url}/?community={community}"
    now = time.time()
    if case == "wrong_secret":
        issued = TurnSecret((turn_url(turn_port),), "not-the-secret", 600).issue(now)
    else:  # the right secret, an expiry in the past
        issued = TurnSecret((turn_url(turn_port),), SECRET, 60).issue(now - 120)
    pages = []
    for _ in range(2):
        context = new_context(site.browser, site.server.url)
        site.contexts.append(context)
        context.add_init_script(
            f"({HOLD_CREDENTIALS})({json.dumps([issued.username, issued.credential])})"
        )
        pages.append(site.open(url, context=context))
    ids = [peer_id(p) for p in pages]
    # Through the API, not the form: the page may not have mounted its UI yet when its peer id
    # is known, and a click then would submit the form natively and reload the page.
    for page in pages:
        page.wait_for_function("() => window.swarm.signaling?.state === 'open'", timeout=30_000)
    assert pages[1].evaluate("(id) => window.swarm.connectTo(id)", ids[0]) == "dialing"
    pages[1].wait_for_function(
        "() => window.swarm.diagnostics.list('debug').some((e) => e.code === 'turn_auth_failed')",
        timeout=30_000,
    )
    event = next(e for e in diagnostics(pages[1]) if e["code"] == "turn_auth_failed")
    assert event["source"] == "ice"
    assert "401" in event["message"]
    assert not pages[1].evaluate("() => window.swarm.connectedPeers().length")
    assert not pages[0].evaluate("() => window.swarm.connectedPeers().length")


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.mark.parametrize("policy", ["all", "relay"])
def test_the_python_superpeer_peer_makes_its_own_credentials_and_a_relay_only_page_reaches_it(
    site: Site, turn_port: int, loop: LoopThread, browser: Browser, policy: str
) -> None:
    """The super-peer's ICE (IceConfig with the TURN secret, as SWARM_TURN_* give it) gets a
    relay candidate from coturn with credentials it computed; the peerjs page, relay only,
    connects to it and they exchange messages both ways. With the super-peer forced to relay
    too (SWARM_SUPERPEER_ICE_TRANSPORT_POLICY=relay) it gathers nothing but relay candidates,
    even with a host address configured, so the pair in use is relay on its side as well."""
    ice = IceConfig.from_settings(
        [], ["127.0.0.1"], [turn_url(turn_port)], SECRET, 600, transport_policy=policy
    )
    ice = dataclasses.replace(ice, turn_user="superpeer")
    address = ServerAddress("127.0.0.1", site.server.port, path="/signal/")

    async def make() -> Peer:
        peer = Peer(address, peer_id="py" + secrets.token_hex(6), ice=ice)
        await peer.start()
        return peer

    python_peer = loop.run(make())
    issued = TurnSecret((turn_url(turn_port),), SECRET, 600).issue(time.time())
    with serve_page() as origin:
        context = new_context(browser, origin)
        try:
            tab = context.new_page()
            tab.goto(origin + "/")
            options = {
                "host": "127.0.0.1",
                "port": site.server.port,
                "path": "/signal/",
                "key": "peerjs",
                "debug": 0,
                "config": {"iceServers": [issued.ice_server()], "iceTransportPolicy": "relay"},
            }
            tab.evaluate(
                "([id, o]) => harness.start(id, o)", ["br" + secrets.token_hex(6), options]
            )
            cid = tab.evaluate(
                "([id]) => harness.connect(id, {serialization: 'raw', reliable: true})",
                [python_peer.id],
            )
            conn = loop.run(python_peer.accept(), 30)
            loop.run(conn.wait_open(30))
            exchange(loop, tab, conn, cid, MESSAGES["raw"])
            pc = conn.peer_connection
            gathered = pc.sctp.transport.transport.iceGatherer.getLocalCandidates()
            if policy == "relay":
                assert {c.type for c in gathered} == {"relay"}, gathered
            else:
                assert {"host", "relay"} <= {c.type for c in gathered}, gathered
            pairs = tab.evaluate(
                SELECTED_PAIR.replace(
                    "[...window.swarm.conns.values()].filter((c) => c.peer === id && c.open)",
                    "[harness.conns[id]]",
                ),
                cid,
            )
            assert [p["local"] for p in pairs] == ["relay"]
            assert [p["policy"] for p in pairs] == ["relay"]
            if policy == "relay":  # the page sees the super-peer's relay address, nothing else
                assert [p["remote"] for p in pairs] == ["relay"]
        finally:
            context.close()
            loop.run(python_peer.destroy())
