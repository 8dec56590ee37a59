"""PeerJS signaling messages: the JSON that travels over the server WebSocket.

Shapes are PeerJS 1.5.5's (client ``lib/negotiator.ts``, server ``peer`` 1.0): every frame is
``{"type": T, "payload": {...}, "src": id, "dst": id}``; the server sets ``src``. Parsing is
strict because frames relayed by the server come from other, untrusted peers: anything
malformed raises :class:`PeerJSError` with code ``bad_server_message`` or ``bad_payload``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BAD_PAYLOAD, BAD_SERVER_MESSAGE, PeerJSError

# Server message types (PeerJS ServerMessageType).
OPEN = "OPEN"
ERROR = "ERROR"
ID_TAKEN = "ID-TAKEN"
INVALID_KEY = "INVALID-KEY"
HEARTBEAT = "HEARTBEAT"
OFFER = "OFFER"
ANSWER = "ANSWER"
CANDIDATE = "CANDIDATE"
LEAVE = "LEAVE"
EXPIRE = "EXPIRE"

DATA = "data"
MEDIA = "media"
MAX_FRAME_CHARS = 1024 * 1024


@dataclass(frozen=True)
class ServerMessage:
    """One parsed frame from the signaling server."""

    type: str
    payload: Mapping[str, Any] | None = None
    src: str | None = None
    dst: str | None = None


def parse_server_message(text: str | bytes) -> ServerMessage:
    """Parse a frame; the payload stays a mapping for the per-type parsers below."""
    if len(text) > MAX_FRAME_CHARS:
        raise PeerJSError(BAD_SERVER_MESSAGE, f"frame is over {MAX_FRAME_CHARS} characters")
    try:
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # RecursionError: nesting far deeper than any PeerJS message, relayed from a peer.
        raise PeerJSError(BAD_SERVER_MESSAGE, "frame is not JSON") from exc
    if not isinstance(data, dict):
        raise PeerJSError(BAD_SERVER_MESSAGE, "frame is not a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise PeerJSError(BAD_SERVER_MESSAGE, "frame has no type")
    payload = data.get("payload")
    if payload is not None and not isinstance(payload, dict):
        raise PeerJSError(BAD_SERVER_MESSAGE, f"{kind} payload is not an object")
    for name in ("src", "dst"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise PeerJSError(BAD_SERVER_MESSAGE, f"{kind} {name} is not a string")
    return ServerMessage(kind, payload, data.get("src"), data.get("dst"))


def serialize_client_message(
    kind: str, payload: Mapping[str, Any] | None = None, dst: str | None = None
) -> str:
    """A frame as the PeerJS client writes it: ``{type, payload, dst}`` (keys absent if None)."""
    message: dict[str, Any] = {"type": kind}
    if payload is not None:
        message["payload"] = payload
    if dst is not None:
        message["dst"] = dst
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _str(payload: Mapping[str, Any], key: str, kind: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise PeerJSError(BAD_PAYLOAD, f"{kind} payload.{key} is not a non-empty string")
    return value


@dataclass(frozen=True)
class SessionDescription:
    """An RTCSessionDescriptionInit: ``{"type": "offer"|"answer", "sdp": ...}``."""

    type: str
    sdp: str

    @classmethod
    def parse(cls, value: Any, expected: str) -> SessionDescription:
        if not isinstance(value, dict):
            raise PeerJSError(BAD_PAYLOAD, "sdp is not an object")
        sdp, kind = value.get("sdp"), value.get("type")
        if kind != expected or not isinstance(sdp, str) or not sdp:
            raise PeerJSError(BAD_PAYLOAD, f"sdp is not an {expected} description")
        return cls(kind, sdp)

    def to_json(self) -> dict[str, str]:
        return {"sdp": self.sdp, "type": self.type}  # the order browsers serialise it in


@dataclass(frozen=True)
class Offer:
    """OFFER payload of a data connection (the only kind this client answers)."""

    connection_id: str
    sdp: SessionDescription
    label: str
    reliable: bool
    serialization: str
    metadata: Any = None
    type: str = DATA

    @classmethod
    def parse(cls, payload: Mapping[str, Any] | None) -> Offer:
        if payload is None:
            raise PeerJSError(BAD_PAYLOAD, "OFFER has no payload")
        kind = payload.get("type")
        if kind not in (DATA, MEDIA):
            raise PeerJSError(BAD_PAYLOAD, f"OFFER payload.type {kind!r} is not data or media")
        connection_id = _str(payload, "connectionId", "OFFER")
        sdp = SessionDescription.parse(payload.get("sdp"), "offer")
        if kind == MEDIA:
            return cls(connection_id, sdp, "", False, "", payload.get("metadata"), MEDIA)
        label = payload.get("label", connection_id)
        if not isinstance(label, str):
            raise PeerJSError(BAD_PAYLOAD, "OFFER payload.label is not a string")
        serialization = payload.get("serialization", "binary")
        if not isinstance(serialization, str):
            raise PeerJSError(BAD_PAYLOAD, "OFFER payload.serialization is not a string")
        return cls(
            connection_id,
            sdp,
            label,
            bool(payload.get("reliable", False)),
            serialization,
            payload.get("metadata"),
        )

    def to_json(self) -> dict[str, Any]:
        # PeerJS's key order; an undefined metadata is absent from JSON.stringify's output.
        payload: dict[str, Any] = {
            "sdp": self.sdp.to_json(),
            "type": self.type,
            "connectionId": self.connection_id,
        }
        if self.metadata is not None:
            payload["metadata"] = self.metadata
        payload.update(label=self.label, reliable=self.reliable, serialization=self.serialization)
        return payload


@dataclass(frozen=True)
class Answer:
    connection_id: str
    sdp: SessionDescription
    type: str = DATA

    @classmethod
    def parse(cls, payload: Mapping[str, Any] | None) -> Answer:
        if payload is None:
            raise PeerJSError(BAD_PAYLOAD, "ANSWER has no payload")
        connection_id = _str(payload, "connectionId", "ANSWER")
        kind = payload.get("type", DATA)
        if kind not in (DATA, MEDIA):
            raise PeerJSError(BAD_PAYLOAD, f"ANSWER payload.type {kind!r} is not data or media")
        return cls(connection_id, SessionDescription.parse(payload.get("sdp"), "answer"), kind)

    def to_json(self) -> dict[str, Any]:
        return {"sdp": self.sdp.to_json(), "type": self.type, "connectionId": self.connection_id}


@dataclass(frozen=True)
class IceCandidate:
    """An RTCIceCandidateInit as browsers serialise it."""

    candidate: str
    sdp_mid: str | None
    sdp_mline_index: int | None
    username_fragment: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "sdpMid": self.sdp_mid,
            "sdpMLineIndex": self.sdp_mline_index,
            "usernameFragment": self.username_fragment,
        }


@dataclass(frozen=True)
class Candidate:
    connection_id: str
    candidate: IceCandidate
    type: str = DATA

    @classmethod
    def parse(cls, payload: Mapping[str, Any] | None) -> Candidate:
        if payload is None:
            raise PeerJSError(BAD_PAYLOAD, "CANDIDATE has no payload")
        connection_id = _str(payload, "connectionId", "CANDIDATE")
        ice = payload.get("candidate")
        if not isinstance(ice, dict):
            raise PeerJSError(BAD_PAYLOAD, "CANDIDATE payload.candidate is not an object")
        text, mid = ice.get("candidate"), ice.get("sdpMid")
        index, ufrag = ice.get("sdpMLineIndex"), ice.get("usernameFragment")
        if not isinstance(text, str) or len(text) > 1024:
            raise PeerJSError(BAD_PAYLOAD, "candidate.candidate is not a string")
        if mid is not None and not isinstance(mid, str):
            raise PeerJSError(BAD_PAYLOAD, "candidate.sdpMid is not a string")
        if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
            raise PeerJSError(BAD_PAYLOAD, "candidate.sdpMLineIndex is not an integer")
        if ufrag is not None and not isinstance(ufrag, str):
            raise PeerJSError(BAD_PAYLOAD, "candidate.usernameFragment is not a string")
        kind = payload.get("type", DATA)
        return cls(connection_id, IceCandidate(text, mid, index, ufrag), kind)

    def to_json(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate.to_json(),
            "type": self.type,
            "connectionId": self.connection_id,
        }
