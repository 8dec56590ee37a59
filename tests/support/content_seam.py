"""A content layer that answers at once, for tests of the node's content seam.

The product's content layers (the super-peer's holder and fetcher, the page's files.js)
consume the node's ``ContentReceived`` actions themselves; this routes them through a
synchronous handler so tests can drive the seam with in-memory content.

The seam between a :class:`~peers.protocol.node.SwarmNode` and the content layer:

The node parses and polices the content frames (``have``, ``manifest_req``, ``manifest``,
``chunk_req``, ``chunk``, ``chunk_missing``) but stores nothing: a content frame from an open
connection leaves as a :class:`~peers.protocol.node_actions.ContentReceived` action, and the
content layer answers through :meth:`SwarmNode.send_content` (frames in) and
:meth:`SwarmNode.content_violation` (bad content counted against its sender).

A content layer that answers at once (an index in memory) implements :class:`ContentHandler`
and lets :func:`route_content` do the plumbing; one that must wait (disk, database) consumes
the ``ContentReceived`` actions itself and calls ``send_content`` when it has the answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from peers.protocol.node import SwarmNode
from peers.protocol.node_actions import Action, Closed, ContentReceived, Opened
from peers.protocol.wire import ContentFrame


@dataclass(frozen=True, slots=True)
class ContentReply:
    """What the content layer does about one frame: answer it, and/or blame its sender."""

    frames: tuple[ContentFrame, ...] = ()
    violation: tuple[str, str] | None = None  # (code, message), e.g. ("chunk_mismatch", ...)


class ContentHandler(Protocol):
    """The content layer as the node's adapter sees it (synchronous, no IO of its own)."""

    def peer_opened(self, peer: Opened, now: int) -> Iterable[ContentFrame]:
        """A peer joined the mesh: frames to send it first (typically a ``have``)."""
        ...

    def peer_closed(self, peer: Closed, now: int) -> None:
        """A peer left: forget what it holds and what was asked of it."""
        ...

    def frame_received(
        self, conn_id: str, peer_id: str, frame: ContentFrame, now: int
    ) -> ContentReply:
        """A content frame from an open connection."""
        ...


def route_content(node: SwarmNode, handler: ContentHandler, now: int) -> list[Action]:
    """``node.take_actions()`` with the content actions handled by ``handler``.

    Returns every other action (``Opened``/``Closed`` included, after the handler saw them),
    in order, with the handler's answers already among the ``Send`` actions.
    """
    out: list[Action] = []
    while actions := node.take_actions():
        for action in actions:
            if isinstance(action, ContentReceived):
                reply = handler.frame_received(action.conn_id, action.peer_id, action.frame, now)
                for frame in reply.frames:
                    node.send_content(action.conn_id, frame)
                if reply.violation is not None:
                    node.content_violation(action.conn_id, *reply.violation, now)
                continue
            out.append(action)
            if isinstance(action, Opened):
                for frame in handler.peer_opened(action, now):
                    node.send_content(action.conn_id, frame)
            elif isinstance(action, Closed):
                handler.peer_closed(action, now)
    return out
