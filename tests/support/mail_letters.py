"""Signed swarm/mail/v1 mails and acks between test peers (labels, keys of
:mod:`tests.support.shard_letters`), good and bad, for the mailbox tests."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from peers.protocol.encoding import b64url_encode
from peers.protocol.envelope import sign
from peers.protocol.keywrap import make_key_announcement, x25519_public
from peers.protocol.mail import DOMAIN_MAIL, make_ack, make_mail
from tests.support.shard_letters import DAY, ed, pid, xk

__all__ = ["DAY", "ack", "announcement", "mail", "mail_id", "pid"]


def mail_id(label: str) -> str:
    return b64url_encode(hashlib.sha256(f"mail {label}".encode()).digest()[:16])


def mail(
    sender: str,
    to: str,
    now: int,
    *,
    label: str = "1",
    lifetime: int = 7 * DAY,
    data: object = "hello",
) -> dict[str, Any]:
    """Mail ``label`` (its id) from ``sender`` to ``to`` (labels), written a second ago."""
    return make_mail(
        ed(sender),
        to=pid(to),
        to_key=x25519_public(xk(to)),
        topic="note",
        data=data,
        created_at=now - 1000,
        expires_at=now - 1000 + lifetime,
        id=mail_id(label),
    )


def ack(sender: str, to: str, labels: list[str], now: int) -> dict[str, Any]:
    """``sender`` (the mails' recipient) acks the mails ``labels`` of ``to``."""
    return make_ack(ed(sender), to=pid(to), ids=[mail_id(x) for x in labels], acked_at=now)


def announcement(label: str, created_at: int) -> dict[str, Any]:
    """``label``'s X25519 key announcement (swarm/xkey/v1)."""
    return make_key_announcement(ed(label), xk(label), created_at=created_at)


# --- bad ones ---


def unsigned(envelope: dict[str, Any]) -> dict[str, Any]:
    bad = copy.deepcopy(envelope)
    del bad["sig"]
    return bad


def forged(envelope: dict[str, Any]) -> dict[str, Any]:
    bad = copy.deepcopy(envelope)
    bad["body"]["created_at"] -= 1
    return bad


def resigned(envelope: dict[str, Any], signer: str, **changes: Any) -> dict[str, Any]:
    """The body changed (``from_`` for ``from``) and signed again by ``signer``."""
    body = copy.deepcopy(envelope["body"])
    for name, value in changes.items():
        body["from" if name == "from_" else name] = value
    return sign(DOMAIN_MAIL, body, ed(signer))
