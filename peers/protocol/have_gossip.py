"""Replica adverts by gossip, topic ``have`` (docs/protocol.md "Gossip topics").

A browser publishes what it holds as ``{manifests: [{id, chunks, keep?}]}``, the entries and
limits of the ``have`` frame; the holder is the gossip message's signing origin, never a
field. :func:`check_have_gossip` is the check a node runs before it delivers or relays one.
Mirror of ``static/swarm/protocol/have_gossip.js``.
"""

from __future__ import annotations

from .errors import BAD_BODY, ProtocolError
from .wire import Holding, parse_holdings

HAVE_TOPIC = "have"


def parse_have_gossip(data: object) -> tuple[Holding, ...]:
    """The entries of a ``have`` gossip's ``data``; raises ProtocolError ``bad_body``."""
    if not isinstance(data, dict) or list(data) != ["manifests"]:
        raise ProtocolError(BAD_BODY, "have gossip is {manifests}")
    try:
        return parse_holdings(data["manifests"], "have.manifests")
    except ProtocolError as exc:
        raise ProtocolError(BAD_BODY, exc.message) from None


def check_have_gossip(data: object, now: int) -> None:
    """The node's content check for topic ``have`` (``SwarmNode.gossip_checks``)."""
    parse_have_gossip(data)
