"""Byte encodings shared by every signed object: base64url and key-bound peer ids."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re

from .errors import BAD_ENVELOPE, ProtocolError

PEER_ID_PREFIX = "p"
PEER_ID_DIGEST_BYTES = 20
PEER_ID_RE = re.compile(r"^p[a-z2-7]{32}$")
_B64URL_RE = re.compile(r"^[A-Za-z0-9_-]*$")


def b64url_encode(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: object, *, field: str, code: str = BAD_ENVELOPE) -> bytes:
    """Strict base64url without padding: only the url alphabet, canonical trailing bits."""
    if not isinstance(text, str) or not _B64URL_RE.fullmatch(text) or len(text) % 4 == 1:
        raise ProtocolError(code, f"{field} is not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - regex guards this
        raise ProtocolError(code, f"{field} is not base64url") from exc
    # Non-canonical encodings (stray low bits) would give two spellings of one key.
    if b64url_encode(data) != text:
        raise ProtocolError(code, f"{field} is not canonical base64url")
    return data


def peer_id_for_key(public_key: bytes) -> str:
    """``"p"`` + lowercase unpadded base32 of the first 20 bytes of SHA-256(public key)."""
    digest = hashlib.sha256(public_key).digest()[:PEER_ID_DIGEST_BYTES]
    return PEER_ID_PREFIX + base64.b32encode(digest).decode("ascii").lower().rstrip("=")


def is_key_bound_id(peer_id: str) -> bool:
    return bool(PEER_ID_RE.fullmatch(peer_id))


def _parse_number(text: str) -> int | float:
    # JSON has one number type: "1.0" and "1" are the same value, and the browser (a JS
    # Number) cannot tell them apart. Integral values become ints here too, so both sides
    # accept and canonicalize the same documents.
    value = float(text)
    if value.is_integer() and abs(value) <= 2**53 - 1:
        return int(value)
    return value


def parse_json(data: str | bytes) -> object:
    """Parse network JSON the way a browser does for numbers (see ``_parse_number``)."""
    return json.loads(data, parse_float=_parse_number)
