"""Short-lived TURN credentials: the TURN REST scheme (coturn's ``use-auth-secret``).

The web server and the super-peer share a secret with the TURN server. A credential for
``user`` valid until ``expires`` (unix seconds) is::

    username   = f"{expires}:{user}"
    credential = base64(HMAC-SHA1(secret, username))

The TURN server recomputes the credential from the username and refuses it once ``expires``
is past, so nothing is stored anywhere and a leaked credential dies on its own
(docs/operations.md "TURN"). ``user`` is a label for the TURN server's logs (a peer id or a
random id), not a proof of anything.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ProtocolError

BAD_TURN_USER = "bad_turn_user"
BAD_TURN_CONFIG = "bad_turn_config"
# A label: letters, digits and - _ . (a peer id, a random id); never a ":" (the separator).
TURN_USER_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def turn_password(secret: str, username: str) -> str:
    """``base64(HMAC-SHA1(secret, username))``: what coturn expects as the password."""
    mac = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode("ascii")


def random_user() -> str:
    return "r" + secrets.token_hex(8)


@dataclass(frozen=True)
class TurnCredentials:
    """One RTCIceServer entry for the TURN URLs, valid until ``expires`` (unix seconds)."""

    urls: tuple[str, ...]
    username: str
    credential: str
    expires: int

    def ice_server(self) -> dict[str, Any]:
        return {"urls": list(self.urls), "username": self.username, "credential": self.credential}


@dataclass(frozen=True)
class TurnSecret:
    """The TURN URLs, the shared secret and how long credentials live."""

    urls: tuple[str, ...]
    secret: str
    ttl_s: int = 3600

    def __post_init__(self) -> None:
        if not self.urls:
            raise ProtocolError(BAD_TURN_CONFIG, "no TURN URLs")
        for url in self.urls:
            if not url.startswith(("turn:", "turns:")):
                raise ProtocolError(BAD_TURN_CONFIG, f"{url!r} is not a turn: or turns: URL")
        if not self.secret:
            raise ProtocolError(BAD_TURN_CONFIG, "the TURN secret is empty")
        if self.ttl_s <= 0:
            raise ProtocolError(BAD_TURN_CONFIG, "the TURN credential lifetime must be positive")

    def issue(self, now_s: float, user: str | None = None) -> TurnCredentials:
        """Credentials for ``user`` (a random id when None) valid ``ttl_s`` from ``now_s``."""
        if user is None:
            user = random_user()
        elif not TURN_USER_RE.fullmatch(user):
            raise ProtocolError(BAD_TURN_USER, "the TURN user is not a peer id")
        expires = int(now_s) + self.ttl_s
        username = f"{expires}:{user}"
        return TurnCredentials(self.urls, username, turn_password(self.secret, username), expires)


def turn_secret_from(urls: Sequence[str], secret: str, ttl_s: int) -> TurnSecret | None:
    """From settings values: None when TURN is not configured (no URLs or no secret)."""
    urls = tuple(u.strip() for u in urls if u.strip())
    if not urls and not secret:
        return None
    return TurnSecret(urls, secret, ttl_s)
