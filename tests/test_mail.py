"""Mail (docs/protocol.md "Mail"): swarm/mail/v1 mails and acks against tests/vectors/mail.json
(which tests/js/mail.test.js checks for the browser), and the round trip with fresh keys."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from peers.protocol.encoding import b64url_encode, peer_id_for_key
from peers.protocol.errors import ProtocolError
from peers.protocol.keywrap import x25519_public
from peers.protocol.mail import (
    DOMAIN_MAIL,
    KIND_ACK,
    KIND_MAIL,
    MAIL_LIFETIME_MS,
    MAX_ACK_IDS,
    MAX_MAIL_BYTES,
    Ack,
    Mail,
    kind_of,
    make_ack,
    make_mail,
    new_mail_id,
    open_mail,
    parse_mail,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "mail.json").read_text())
NOW: int = VECTORS["now"]
KEYS: dict[str, Any] = VECTORS["keys"]


def ed(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(KEYS[label]["seed_hex"]))


def xk(label: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(bytes.fromhex(KEYS[label]["x25519_seed_hex"]))


def pid(label: str) -> str:
    peer_id: str = KEYS[label]["peer_id"]
    return peer_id


def pid_of(key: Ed25519PrivateKey) -> str:
    return peer_id_for_key(key.public_key().public_bytes_raw())


def code_of(call: Any) -> str:
    with pytest.raises(ProtocolError) as caught:
        call()
    return caught.value.code


def test_the_constants_are_the_specs() -> None:
    assert (DOMAIN_MAIL, KIND_MAIL, KIND_ACK) == ("swarm/mail/v1", "mail", "ack")
    assert (MAX_MAIL_BYTES, MAX_ACK_IDS, MAIL_LIFETIME_MS) == (4096, 64, 7 * 86_400_000)
    ids = {new_mail_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 22 for i in ids)


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_valid_vector_parses_and_is_made_again_byte_for_byte(case: dict[str, Any]) -> None:
    envelope = case["envelope"]
    message = parse_mail(envelope, now=NOW)
    body = envelope["body"]
    assert message.kind == body["kind"] == kind_of(envelope)
    assert (message.from_peer, message.to) == (body["from"], body["to"])
    assert message.envelope is envelope
    make = case["make"]
    if isinstance(message, Mail):
        assert (message.id, message.created_at, message.expires_at) == (
            body["id"],
            body["created_at"],
            body["expires_at"],
        )
        opened = open_mail(message, private_key=xk(case["open_as"]), peer_id=pid(case["open_as"]))
        assert (opened.topic, opened.data) == (make["topic"], make["data"])
        extra = {"expires_at": make["expires_at"]} if "expires_at" in make else {}
        again = make_mail(
            ed(case["signer"]),
            to=pid(make["to"]),
            to_key=x25519_public(xk(make["to"])),
            topic=make["topic"],
            data=make["data"],
            created_at=make["created_at"],
            id=make["id"],
            ephemeral=X25519PrivateKey.from_private_bytes(
                bytes.fromhex(make["ephemeral_seed_hex"])
            ),
            **extra,
        )
        if not extra:
            assert message.expires_at == message.created_at + MAIL_LIFETIME_MS
    else:
        assert isinstance(message, Ack)
        digest = hashlib.sha256(rfc8785.dumps(envelope)).digest()
        assert message.id == b64url_encode(digest)
        assert (message.ids, message.acked_at) == (tuple(body["ids"]), body["acked_at"])
        assert message.expires_at == message.acked_at + 7 * 86_400_000
        again = make_ack(
            ed(case["signer"]), to=pid(make["to"]), ids=make["ids"], acked_at=make["acked_at"]
        )
    assert again == envelope


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["name"])
def test_invalid_vector_fails_with_its_code(case: dict[str, Any]) -> None:
    assert code_of(lambda: parse_mail(case["envelope"], now=NOW)) == case["error"]


@pytest.mark.parametrize("case", VECTORS["open_invalid"], ids=lambda c: c["name"])
def test_mail_that_does_not_open_fails_with_its_code(case: dict[str, Any]) -> None:
    message = parse_mail(case["envelope"], now=NOW)
    assert isinstance(message, Mail)
    label = case["open_as"]
    opening = lambda: open_mail(message, private_key=xk(label), peer_id=pid(label))  # noqa: E731
    assert code_of(opening) == case["error"]


@pytest.mark.parametrize("case", VECTORS["make_invalid"], ids=lambda c: c["name"])
def test_mail_that_cannot_be_made_fails_with_its_code(case: dict[str, Any]) -> None:
    def make() -> None:
        make_mail(
            ed(case["signer"]),
            to=pid(case["to"]),
            to_key=x25519_public(xk(case["to"])),
            topic=case["topic"],
            data=case["data"],
            created_at=NOW,
            id=case.get("id"),
        )

    assert code_of(make) == case["error"]


def test_a_mail_with_fresh_keys_goes_round_and_each_ack_rule_holds() -> None:
    sender, recipient = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    recipient_x = X25519PrivateKey.generate()
    envelope = make_mail(
        sender,
        to=pid_of(recipient),
        to_key=x25519_public(recipient_x),
        topic="note",
        data={"text": "h\u00e9llo \u2603", "n": 3},
        created_at=NOW,
    )
    mail = parse_mail(envelope, now=NOW)
    assert isinstance(mail, Mail)
    opened = open_mail(mail, private_key=recipient_x, peer_id=pid_of(recipient))
    assert opened.data == {"text": "h\u00e9llo \u2603", "n": 3}
    # the same content sealed again differs (a fresh ephemeral key each time)
    again = make_mail(
        sender,
        to=pid_of(recipient),
        to_key=x25519_public(recipient_x),
        topic="note",
        data=opened.data,
        created_at=NOW,
        id=mail.id,
    )
    assert again["body"]["sealed"] != envelope["body"]["sealed"]
    # an ack sorts and deduplicates its ids
    other = new_mail_id()
    ack = make_ack(recipient, to=pid_of(sender), ids=[other, mail.id, other], acked_at=NOW)
    assert ack["body"]["ids"] == sorted({other, mail.id})
    parsed = parse_mail(ack, now=NOW + 6 * 86_400_000)
    assert isinstance(parsed, Ack)
    assert parse_mail(copy.deepcopy(ack), now=NOW).id == parsed.id
    with pytest.raises(ProtocolError) as caught:
        make_ack(recipient, to=pid_of(sender), ids=[new_mail_id() for _ in range(65)], acked_at=NOW)
    assert caught.value.code == "bad_mail"
    assert code_of(lambda: make_ack(recipient, to=pid_of(sender), ids=[], acked_at=NOW)) == (
        "bad_mail"
    )
