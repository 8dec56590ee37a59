"""The OpenAPI 3.1 document of the beacon API, served at /beacon/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from peers.protocol.ticket import COMMUNITY_RE, MAX_TTL_MS

_ERROR_CODES = [
    "bad_json",
    "too_large",
    "bad_envelope",
    "bad_body",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "ttl_too_long",
    "peer_mismatch",
    "wrong_community",
    "replay",
    "blocked",
    "community_closed",
    "rate_limited",
    "bad_community",
    "bad_limit",
]


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _envelope(domain: str, body: dict[str, Any]) -> dict[str, Any]:
    """A signed envelope of ``domain`` (docs/protocol.md "Envelopes")."""
    return {
        "type": "object",
        "description": f"Signed envelope, domain {domain} (docs/protocol.md).",
        "required": ["v", "alg", "pk", "sig", "body"],
        "additionalProperties": False,
        "properties": {
            "v": {"const": 1},
            "alg": {"const": "ed25519"},
            "pk": {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$"},
            "sig": {"type": "string", "pattern": "^[A-Za-z0-9_-]{86}$"},
            "body": body,
        },
    }


def openapi_document(server_url: str) -> dict[str, Any]:
    community = {
        "name": "community",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": COMMUNITY_RE.pattern},
    }
    peers_ok = {
        "description": "Live tickets, newest first (at most 50; never the caller's own).",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Peers"}}},
    }
    limited = _error("Rate limited; see the Retry-After header.")
    limited["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Swarm beacon",
            "version": "1",
            "description": "Rendezvous for Swarm peers: announce a signed presence ticket, "
            "learn other live peers of the community.",
        },
        "servers": [{"url": server_url.rstrip("/")}],
        "paths": {
            "/beacon/v1/{community}/announce": {
                "post": {
                    "operationId": "announce",
                    "parameters": [community],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Ticket"}}
                        },
                    },
                    "responses": {
                        "200": peers_ok,
                        "400": _error("Malformed: not JSON, bad envelope or body shape."),
                        "403": _error("Blocked key, peer or address, or closed community."),
                        "404": _error("Invalid community name."),
                        "405": {"description": "Method not allowed."},
                        "413": _error("Body over 4 KiB."),
                        "422": _error("Invalid: signature, time window, binding, replay."),
                        "429": limited,
                    },
                }
            },
            "/beacon/v1/{community}/withdraw": {
                "post": {
                    "operationId": "withdraw",
                    "description": "A leaving peer takes back its ticket (navigator.sendBeacon "
                    "on pagehide). Idempotent: withdrawn is false when that ticket is not stored.",
                    "parameters": [community],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Withdrawal"}
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Whether the named ticket was stored and is now gone.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["ok", "withdrawn"],
                                        "properties": {
                                            "ok": {"const": True},
                                            "withdrawn": {"type": "boolean"},
                                        },
                                    }
                                }
                            },
                        },
                        "400": _error("Malformed: not JSON, bad envelope or body shape."),
                        "404": _error("Invalid community name."),
                        "405": {"description": "Method not allowed."},
                        "413": _error("Body over 4 KiB."),
                        "422": _error("Invalid: signature, binding, community."),
                        "429": limited,
                    },
                }
            },
            "/beacon/v1/{community}/peers": {
                "get": {
                    "operationId": "peers",
                    "parameters": [
                        community,
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 50},
                        },
                    ],
                    "responses": {
                        "200": peers_ok,
                        "400": _error("Bad limit."),
                        "404": _error("Invalid community name."),
                        "429": limited,
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Ticket": _envelope("swarm/ticket/v1", {"$ref": "#/components/schemas/TicketBody"}),
                "Withdrawal": _envelope(
                    "swarm/withdraw/v1",
                    {
                        "type": "object",
                        "required": ["peer_id", "community", "nonce"],
                        "additionalProperties": False,
                        "properties": {
                            "peer_id": {"type": "string", "pattern": "^p[a-z2-7]{32}$"},
                            "community": {"type": "string", "pattern": COMMUNITY_RE.pattern},
                            "nonce": {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"},
                        },
                    },
                ),
                "TicketBody": {
                    "type": "object",
                    "required": ["peer_id", "community", "issued_at", "expires_at", "nonce"],
                    "additionalProperties": False,
                    "properties": {
                        "peer_id": {"type": "string", "pattern": "^p[a-z2-7]{32}$"},
                        "community": {"type": "string", "pattern": COMMUNITY_RE.pattern},
                        "issued_at": {"type": "integer", "minimum": 0},
                        "expires_at": {
                            "type": "integer",
                            "minimum": 0,
                            "description": f"at most {MAX_TTL_MS} ms after issued_at",
                        },
                        "nonce": {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"},
                        "signal": {
                            "type": "array",
                            "maxItems": 4,
                            "items": {"type": "string", "maxLength": 256},
                        },
                        "caps": {"type": "array", "maxItems": 16, "items": {"type": "string"}},
                    },
                },
                "Peers": {
                    "type": "object",
                    "required": ["ok", "peers"],
                    "properties": {
                        "ok": {"const": True},
                        "peers": {
                            "type": "array",
                            "maxItems": 50,
                            "items": {"$ref": "#/components/schemas/Ticket"},
                        },
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["ok", "error"],
                    "properties": {
                        "ok": {"const": False},
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string", "enum": _ERROR_CODES},
                                "message": {"type": "string"},
                            },
                        },
                    },
                },
            }
        },
    }
