"""Wire frames over a PeerJS ``json`` DataConnection (sans-IO).

JSON cannot carry bytes, so each frame's MessagePack bytes travel as unpadded base64url
text in JSON strings (docs/protocol.md "Over a json DataConnection"). PeerJS refuses a
JSON message of 16300 bytes or more, so a frame whose text is longer than ``PIECE_CHARS``
is cut into pieces: every piece but the last is ``"+"`` followed by text, the last is
text alone (a frame that fits is one string, with no ``"+"``).
"""

from __future__ import annotations

import re

from .encoding import b64url_decode, b64url_encode
from .errors import BAD_FRAME, FRAME_TOO_LARGE, ProtocolError
from .wire import MAX_FRAME_BYTES
from .wire_fields import WireError

MORE = "+"
# A piece string, "+" included: its JSON form (two quotes more) stays under PeerJS's 16300.
PIECE_CHARS = 16296
MAX_PIECES = 64
MAX_TEXT_CHARS = (MAX_FRAME_BYTES * 4 + 2) // 3  # unpadded base64url of the largest frame
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")


def encode_json_frame(frame: bytes | bytearray | memoryview) -> list[str]:
    """The JSON strings that carry one frame, in order."""
    text = b64url_encode(bytes(frame))
    if len(text) <= PIECE_CHARS:
        return [text]
    step = PIECE_CHARS - len(MORE)
    parts = [text[i : i + step] for i in range(0, len(text), step)]
    return [MORE + part for part in parts[:-1]] + [parts[-1]]


class JsonFrameDecoder:
    """Joins the strings of one json connection back into frames.

    :meth:`receive` takes each decoded JSON message and returns a frame's bytes once its
    last piece arrived (``None`` while pieces are pending). Anything else raises
    :class:`WireError`: ``bad_frame`` (not a string, not base64url, more than
    ``MAX_PIECES`` pieces) or ``frame_too_large``; the pending pieces are dropped and the
    next string starts a new frame.
    """

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._chars = 0

    @property
    def pending_chars(self) -> int:
        return self._chars

    def receive(self, value: object) -> bytes | None:
        try:
            return self._receive(value)
        except WireError:
            self._parts, self._chars = [], 0
            raise

    def _receive(self, value: object) -> bytes | None:
        if not isinstance(value, str):
            raise WireError(
                BAD_FRAME, f"a json connection carries frames as strings, not {_kind(value)}"
            )
        more = value.startswith(MORE)
        text = value[len(MORE) :] if more else value
        if not _B64URL_RE.fullmatch(text):
            raise WireError(BAD_FRAME, "a frame string is not base64url")
        self._chars += len(text)
        if self._chars > MAX_TEXT_CHARS:
            raise WireError(FRAME_TOO_LARGE, f"frame text is over {MAX_TEXT_CHARS} characters")
        self._parts.append(text)
        if more:
            if len(self._parts) >= MAX_PIECES:
                raise WireError(BAD_FRAME, f"a frame in more than {MAX_PIECES} pieces")
            return None
        whole = "".join(self._parts)
        self._parts, self._chars = [], 0
        try:
            return b64url_decode(whole, field="frame", code=BAD_FRAME)
        except ProtocolError as exc:
            raise WireError(BAD_FRAME, exc.message) from exc


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
