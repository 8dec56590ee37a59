"""Errors the beacon API returns: ``{"ok":false,"error":{"code","message"}}`` with a status."""

from __future__ import annotations

from peers.protocol.errors import ProtocolError

# HTTP status for each protocol error code (DESIGN section 4: 400 malformed, 422 invalid).
PROTOCOL_STATUS = {
    "bad_envelope": 400,
    "bad_body": 400,
    "bad_signature": 422,
    "expired": 422,
    "not_yet_valid": 422,
    "ttl_too_long": 422,
    "peer_mismatch": 422,
    "wrong_community": 422,
    "replay": 422,
}


class BeaconError(Exception):
    def __init__(
        self, status: int, code: str, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after

    @classmethod
    def from_protocol(cls, error: ProtocolError) -> BeaconError:
        return cls(PROTOCOL_STATUS.get(error.code, 422), error.code, error.message)


def bad_json(message: str = "request body is not valid JSON") -> BeaconError:
    return BeaconError(400, "bad_json", message)


def too_large(limit: int) -> BeaconError:
    return BeaconError(413, "too_large", f"request body exceeds {limit} bytes")


def blocked() -> BeaconError:
    return BeaconError(403, "blocked", "this key, peer or address is blocked")


def rate_limited(retry_after: float, scope: str) -> BeaconError:
    return BeaconError(429, "rate_limited", f"too many requests ({scope})", retry_after=retry_after)


def community_limit(retry_after: float, scope: str) -> BeaconError:
    return BeaconError(
        429,
        "community_limit",
        f"too many new communities ({scope}); announce to an existing one or retry later",
        retry_after=retry_after,
    )
