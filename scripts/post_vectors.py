"""Shared vectors for posts: single entries, logs (fork, broken chain, gap) and reconciliation."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.chunks import digest_id
from peers.protocol.encoding import peer_id_for_key
from peers.protocol.envelope import DOMAIN_MANIFEST, DOMAIN_POST, sign
from peers.protocol.postlog import Head, reconcile, summary_to_json, verify_log
from peers.protocol.posts import entry_hash, make_post

NOW = 1_800_000_000_000
T0 = NOW - 3_600_000
ATTACHMENT = digest_id(b"a manifest id")


def seeded_key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def peer_of(key: Ed25519PrivateKey) -> str:
    return peer_id_for_key(key.public_key().public_bytes_raw())


def h(envelope: dict[str, Any]) -> str:
    return entry_hash(envelope["body"])


def _signed(key: Ed25519PrivateKey, body: dict[str, Any]) -> dict[str, Any]:
    return sign(DOMAIN_POST, body, key)


def post_vectors() -> dict[str, Any]:
    alice, bob, carol = seeded_key("alice"), seeded_key("bob"), seeded_key("carol")
    a0 = make_post(alice, seq=0, prev=None, created_at=T0, text="hello swarm", name="Alice")
    a1 = make_post(
        alice,
        seq=1,
        prev=h(a0),
        created_at=T0 + 1000,
        text="with a file",
        attachments=[ATTACHMENT],
        name="Alice",
    )
    a2 = make_post(
        alice,
        seq=2,
        prev=h(a1),
        created_at=T0 + 2000,
        kind="edit",
        text="hello swarm (edited) \u2603",
        target=h(a0),
        name="Alice A.",
    )
    a3 = make_post(
        alice, seq=3, prev=h(a2), created_at=T0 + 3000, kind="delete", target=h(a1), name="Alice A."
    )
    a2_fork = make_post(alice, seq=2, prev=h(a1), created_at=T0 + 2500, text="the other branch")
    b0 = make_post(bob, seq=0, prev=None, created_at=T0 + 10, text="bob here", name="bob")
    b1 = make_post(bob, seq=1, prev=h(b0), created_at=T0 + 20, text="line one\nline two\ttab")

    def bad(name: str, envelope: Any, error: str) -> dict[str, Any]:
        return {"name": name, "entry": envelope, "error": error}

    def body(**changes: Any) -> dict[str, Any]:
        out = copy.deepcopy(a1["body"])
        out.update(changes)
        return out

    changed = copy.deepcopy(a0)
    changed["body"]["text"] = "hello swarm!"
    no_name = body()
    del no_name["name"]
    invalid = [
        bad("body_changed_after_signing", changed, "bad_signature"),
        bad("signed_as_manifest", sign(DOMAIN_MANIFEST, a0["body"], alice), "bad_signature"),
        bad("signed_by_other_key", _signed(bob, a0["body"]), "peer_mismatch"),
        bad("unknown_field", _signed(alice, body(mood="happy")), "bad_post"),
        bad("missing_name", _signed(alice, no_name), "bad_post"),
        bad("author_not_peer_id", _signed(alice, body(author="alice")), "bad_post"),
        bad("seq_negative", _signed(alice, body(seq=-1)), "bad_post"),
        bad("seq_string", _signed(alice, body(seq="1")), "bad_post"),
        bad("seq_0_with_prev", _signed(alice, body(seq=0)), "bad_post"),
        bad("seq_1_prev_null", _signed(alice, body(prev=None)), "bad_post"),
        bad("prev_not_a_hash", _signed(alice, body(prev="abc")), "bad_post"),
        bad("created_at_string", _signed(alice, body(created_at=str(T0))), "bad_post"),
        bad("kind_unknown", _signed(alice, body(kind="like")), "bad_post"),
        bad("post_with_target", _signed(alice, body(target=h(a0))), "bad_post"),
        bad("edit_without_target", _signed(alice, body(kind="edit")), "bad_post"),
        bad(
            "delete_with_text",
            _signed(alice, body(kind="delete", target=h(a0), attachments=[])),
            "bad_post",
        ),
        bad("empty_post", _signed(alice, body(text="", attachments=[])), "bad_post"),
        bad("text_8193_bytes", _signed(alice, body(text="é" * 4096 + "!")), "bad_post"),
        bad("text_with_nul", _signed(alice, body(text="a\x00b")), "bad_post"),
        bad("text_not_string", _signed(alice, body(text=["a"])), "bad_post"),
        bad("name_with_newline", _signed(alice, body(name="Al\nice")), "bad_post"),
        bad("name_with_bidi_override", _signed(alice, body(name="\u202eecilA")), "bad_post"),
        bad("name_65_bytes", _signed(alice, body(name="x" * 65)), "bad_post"),
        bad("attachment_repeated", _signed(alice, body(attachments=[ATTACHMENT] * 2)), "bad_post"),
        bad(
            "attachments_17",
            _signed(alice, body(attachments=[digest_id(bytes([i])) for i in range(17)])),
            "bad_post",
        ),
        bad("attachment_not_an_id", _signed(alice, body(attachments=["x"])), "bad_post"),
        bad("created_in_future", _signed(alice, body(created_at=NOW + 15_001)), "not_yet_valid"),
    ]
    valid_single = [
        {"name": "text_8192_bytes", "entry": _signed(alice, body(text="é" * 4096))},
        {"name": "name_64_bytes_empty_text", "entry": _signed(alice, body(text="", name="x" * 64))},
        {"name": "created_at_skew_edge", "entry": _signed(alice, body(created_at=NOW + 15_000))},
    ]
    for case in valid_single:
        case["hash"] = h(case["entry"])

    def entry(key: Ed25519PrivateKey, **fields: Any) -> dict[str, Any]:
        return make_post(key, **fields)

    logs = [
        {"name": "alice_full", "entries": [a0, a1, a2, a3], "error": None},
        {"name": "bob_full", "entries": [b0, b1], "error": None},
        {"name": "fork_at_seq_2", "entries": [a0, a1, a2, a2_fork], "error": "fork"},
        {
            "name": "broken_chain_prev_skips",
            "entries": [
                a0,
                a1,
                entry(alice, seq=2, prev=h(a0), created_at=T0 + 2000, text="x"),
            ],
            "error": "broken_chain",
        },
        {"name": "gap_missing_seq_1", "entries": [a0, a2], "error": "gap"},
        {"name": "starts_after_seq_0", "entries": [a1], "error": "gap"},
        {
            "name": "older_than_previous",
            "entries": [a0, entry(alice, seq=1, prev=h(a0), created_at=T0 - 1, text="x")],
            "error": "broken_chain",
        },
        {
            "name": "edit_of_deleted_post",
            "entries": [
                a0,
                a1,
                a2,
                a3,
                entry(
                    alice,
                    seq=4,
                    prev=h(a3),
                    created_at=T0 + 4000,
                    kind="edit",
                    text="x",
                    target=h(a1),
                ),
            ],
            "error": "bad_post",
        },
        {
            "name": "edit_of_an_edit",
            "entries": [
                a0,
                a1,
                a2,
                entry(
                    alice,
                    seq=3,
                    prev=h(a2),
                    created_at=T0 + 4000,
                    kind="edit",
                    text="x",
                    target=h(a2),
                ),
            ],
            "error": "bad_post",
        },
        {
            "name": "delete_of_unknown_post",
            "entries": [
                a0,
                entry(alice, seq=1, prev=h(a0), created_at=T0, kind="delete", target=ATTACHMENT),
            ],
            "error": "bad_post",
        },
        {"name": "same_entry_twice", "entries": [a0, a0], "error": "broken_chain"},
        {"name": "two_authors", "entries": [a0, b1], "error": "bad_post"},
    ]
    alice_log = verify_log([a0, a1, a2, a3], now=NOW)
    logs[0]["head"] = {"seq": 3, "hash": h(a3)}
    logs[0]["posts"] = [
        {
            "id": view.id,
            "seq": view.seq,
            "created_at": view.created_at,
            "edited_at": view.edited_at,
            "text": view.text,
            "attachments": list(view.attachments),
            "name": view.name,
        }
        for view in alice_log.posts()
    ]
    logs[2]["fork"] = {"seq": 2, "hashes": [h(a2), h(a2_fork)]}
    mine = {peer_of(alice): verify_log([a0, a1, a2, a3]), peer_of(bob): verify_log([b0, b1])}
    reconcile_cases = []
    for name, theirs, limit in [
        ("they_have_nothing", {}, 256),
        ("they_have_alice_to_1", {peer_of(alice): Head(1, h(a1))}, 256),
        (
            "they_are_level_and_ahead_on_bob",
            {peer_of(alice): Head(3, h(a3)), peer_of(bob): Head(5, digest_id(b"bob 5"))},
            256,
        ),
        ("fork_at_alice_2", {peer_of(alice): Head(2, h(a2_fork))}, 256),
        ("limit_cuts_short", {}, 3),
        ("they_know_carol", {peer_of(carol): Head(0, digest_id(b"carol 0"))}, 256),
    ]:
        result = reconcile(mine, theirs, limit=limit)
        reconcile_cases.append(
            {
                "name": name,
                "theirs": summary_to_json(theirs),
                "limit": limit,
                "send": [h(e) for e in result.send],
                "forks": [
                    {"author": f.author, "seq": f.seq, "hashes": list(f.hashes)}
                    for f in result.forks
                ],
                "want": result.want,
                "complete": result.complete,
            }
        )
    good = {"seq": 1, "hash": h(a1)}
    bad_summaries = [
        {"name": "not_an_object", "summary": [good]},
        {"name": "key_not_peer_id", "summary": {"alice": good}},
        {"name": "missing_hash", "summary": {peer_of(alice): {"seq": 1}}},
        {"name": "extra_field", "summary": {peer_of(alice): {**good, "at": 1}}},
        {"name": "seq_negative", "summary": {peer_of(alice): {**good, "seq": -1}}},
        {"name": "seq_bool", "summary": {peer_of(alice): {**good, "seq": True}}},
        {"name": "hash_hex", "summary": {peer_of(alice): {**good, "hash": "ab" * 32}}},
    ]
    return {
        "description": "Post entries (domain swarm/post/v1); "
        "hash = b64url(SHA-256('swarm/post/v1' + '\\n' + JCS(body))). "
        "`invalid` fail verify_post at `now` with `error`; `logs` are "
        "verified in order from seq 0 and fail with `error` (null: valid). `reconcile` runs with "
        "mine = {alice: logs.alice_full, bob: logs.bob_full} against `theirs`.",
        "now": NOW,
        "authors": {"alice": peer_of(alice), "bob": peer_of(bob), "carol": peer_of(carol)},
        "invalid": invalid,
        "valid_single": valid_single,
        "logs": logs,
        "reconcile": reconcile_cases,
        "bad_summaries": bad_summaries,
    }
