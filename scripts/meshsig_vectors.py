"""Shared vectors for signaling through the mesh (tests/vectors/meshsig.json, written by
scripts/make_vectors.py): signed swarm/meshsig/v1 messages made with fixed keys, messages
with one fault each and their codes, and MeshSignal scenarios whose expected actions are
written here by hand (docs/protocol.md "Signaling through the mesh")."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.encoding import b64url_encode, peer_id_for_key
from peers.protocol.envelope import DOMAIN_GOSSIP, sign
from peers.protocol.meshsignal_messages import (
    DOMAIN_MESHSIG,
    MAX_SIGNAL_BYTES,
    make_signal,
    signal_id,
)

NOW = 1_800_000_000_000
LABELS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace")
SDP = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


def seeded_key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


K = {label: seeded_key(label) for label in LABELS}
ID = {label: peer_id_for_key(k.public_key().public_bytes_raw()) for label, k in K.items()}


def sid(label: str) -> str:
    return b64url_encode(hashlib.sha256(f"meshsig sid {label}".encode()).digest()[:16])


def make_args(name: str, **kw: Any) -> dict[str, Any]:
    """What makes the message named ``name`` (peers as labels)."""
    args: dict[str, Any] = {
        "signer": "erin",
        "to": "grace",
        "sid": sid(name),
        "kind": "offer",
        "payload": {"type": "offer", "sdp": SDP},
        "created_at": NOW - 1000,
        "hops": 4,
    }
    args.update(kw)
    return args


def made(args: dict[str, Any]) -> dict[str, Any]:
    return make_signal(
        K[args["signer"]],
        to=ID[args["to"]],
        sid=args["sid"],
        kind=args["kind"],
        payload=args["payload"],
        created_at=args["created_at"],
        hops=args["hops"],
    )


def resign(envelope: dict[str, Any], signer: str, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(envelope["body"])
    for name, value in changes.items():
        key = "from" if name == "from_" else name
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return sign(DOMAIN_MESHSIG, body, K[signer])


def keys() -> dict[str, Any]:
    return {
        label: {"seed_hex": hashlib.sha256(label.encode()).hexdigest(), "peer_id": ID[label]}
        for label in LABELS
    }


def sized(name: str, size: int) -> dict[str, Any]:
    """A message of erin whose canonical JSON is exactly ``size`` bytes (signed directly, so
    it may be over the limit)."""
    probe = made(make_args(name, payload=""))
    body = copy.deepcopy(probe["body"])
    body["payload"] = "z" * (size - len(rfc8785.dumps(probe)))
    envelope = sign(DOMAIN_MESHSIG, body, K["erin"])
    assert len(rfc8785.dumps(envelope)) == size
    return envelope


def valid_vectors() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(name: str, **kw: Any) -> None:
        args = make_args(name, **kw)
        envelope = made(args)
        out.append(
            {"name": name, "make": args, "envelope": envelope, "id": signal_id(envelope["body"])}
        )

    add("offer")
    add("answer", signer="grace", to="erin", kind="answer", payload={"type": "answer", "sdp": SDP})
    cand = {"candidate": "candidate:1 1 udp 2113937151 192.0.2.7 54400 typ host", "sdpMid": "0"}
    add("candidate", kind="candidate", payload={"candidate": cand}, hops=1)
    add("end_of_candidates", kind="candidate", payload={"candidate": None}, hops=6)
    add("bye", kind="bye", payload=None)
    add("payload_a_string", payload=SDP)
    add("skew_edge", created_at=NOW + 15_000)
    add("expires_in_1ms", created_at=NOW - 59_999)
    add("unicode_payload", payload={"label": "h\u00e9llo \u2603 \U0001f600", "n": -42})
    largest = sized("max_size", MAX_SIGNAL_BYTES)
    args = make_args("max_size", payload=largest["body"]["payload"])
    assert made(args) == largest
    out.append(
        {"name": "max_size", "make": args, "envelope": largest, "id": signal_id(largest["body"])}
    )
    return out


def invalid_vectors() -> list[dict[str, Any]]:
    base = made(make_args("offer"))
    out: list[dict[str, Any]] = []

    def bad(name: str, envelope: Any, error: str) -> None:
        out.append({"name": name, "envelope": envelope, "error": error})

    bad("not_an_object", [base], "bad_envelope")
    bad("unsigned_body_only", {"body": base["body"]}, "bad_envelope")
    v2 = copy.deepcopy(base)
    v2["v"] = 2
    bad("envelope_version_2", v2, "bad_envelope")
    bad("body_a_string", {**base, "body": "offer"}, "bad_envelope")
    forged = copy.deepcopy(base)
    forged["body"]["to"] = ID["frank"]
    bad("forged_body_changed_after_signing", forged, "bad_signature")
    zero = copy.deepcopy(base)
    zero["sig"] = b64url_encode(bytes(64))
    bad("forged_zero_signature", zero, "bad_signature")
    bad("signed_with_gossip_domain", sign(DOMAIN_GOSSIP, base["body"], K["erin"]), "bad_signature")
    bad("too_large_8193_bytes", sized("too_large", MAX_SIGNAL_BYTES + 1), "signal_too_large")
    bad("body_v_2", resign(base, "erin", v=2), "bad_signal")
    bad("kind_not_a_string", resign(base, "erin", kind=1), "bad_signal")
    bad("unknown_kind", resign(base, "erin", kind="renegotiate"), "unknown_kind")
    bad("unknown_field", resign(base, "erin", seq=1), "bad_signal")
    bad("missing_payload", resign(base, "erin", payload=None), "bad_signal")
    bad("from_not_a_peer_id", resign(base, "erin", from_="erin"), "bad_signal")
    bad("to_not_a_peer_id", resign(base, "erin", to="grace"), "bad_recipient")
    bad("to_is_from", resign(base, "erin", to=ID["erin"]), "bad_recipient")
    bad("sid_15_bytes", resign(base, "erin", sid=b64url_encode(bytes(15))), "bad_signal")
    bad("sid_not_canonical", resign(base, "erin", sid="AAAAAAAAAAAAAAAAAAAAAB"), "bad_signal")
    bad("created_at_string", resign(base, "erin", created_at=str(NOW)), "bad_signal")
    bad("created_at_negative", resign(base, "erin", created_at=-1), "bad_signal")
    bad("hops_0", resign(base, "erin", hops=0), "bad_signal")
    bad("hops_7", resign(base, "erin", hops=7), "bad_signal")
    bad("from_is_not_the_signer", resign(base, "frank"), "peer_mismatch")
    bad("in_the_future", made(make_args("f", created_at=NOW + 15_001)), "not_yet_valid")
    bad("expired_after_60_s", made(make_args("e", created_at=NOW - 60_000)), "expired")
    return out


def make_invalid_vectors() -> list[dict[str, Any]]:
    def case(name: str, error: str, **kw: Any) -> dict[str, Any]:
        args = make_args(name, signer="alice", **kw)
        return {"name": name, "make": args, "error": error}

    return [
        case("unknown_kind", "unknown_kind", kind="renegotiate"),
        case("to_itself", "bad_recipient", to="alice"),
        case("hops_0", "bad_signal", hops=0),
        case("hops_7", "bad_signal", hops=7),
        case("sid_not_a_session_id", "bad_signal", sid="abc"),
        case("too_large", "signal_too_large", payload="z" * MAX_SIGNAL_BYTES),
    ]


# --- MeshSignal scenarios (self: alice); expectations written by hand ---

MESSAGES: dict[str, Any] = {}


def m(label: str, signer: str = "erin", to: str = "alice", **kw: Any) -> str:
    """Register a message made by ``signer`` for ``to``; returns its label."""
    args = make_args(label, signer=signer, to=to, **kw)
    MESSAGES[label] = made(args)
    return label


def raw(label: str, envelope: Any) -> str:
    MESSAGES[label] = envelope
    return label


def signal(hops: int, label: str) -> dict[str, Any]:
    return {"t": "signal", "hops": hops, "msg": label}


def connect(
    conn: str, peer: str, at: int = NOW, caps: tuple[str, ...] = ("signal",), expect: Any = ()
) -> dict[str, Any]:
    return {
        "op": "connected",
        "conn": conn,
        "peer": peer,
        "caps": list(caps),
        "at": at,
        "expect": list(expect),
    }


def recv(conn: str, frame: dict[str, Any], expect: Any = (), at: int = NOW) -> dict[str, Any]:
    return {"op": "receive", "conn": conn, "frame": frame, "at": at, "expect": list(expect)}


def send(
    label: str, to: str, kind: str, expect: Any, *, at: int = NOW, hops: int | None = None
) -> dict[str, Any]:
    payload: Any = {"candidate": None} if kind == "candidate" else {"type": kind, "sdp": SDP}
    args = make_args(
        label, signer="alice", to=to, kind=kind, payload=payload, created_at=at, hops=hops
    )
    MESSAGES[label] = made(args)
    step = {
        "op": "send",
        "as": label,
        "to": to,
        "sid": args["sid"],
        "kind": kind,
        "payload": payload,
    }
    return {**step, "hops": hops, "at": at, "expect": list(expect)}


def tick(at: int, expect: Any = ()) -> dict[str, Any]:
    return {"op": "tick", "at": at, "expect": list(expect)}


def three_neighbours() -> list[dict[str, Any]]:
    return [
        connect("c-bob", "bob", expect=[["reach", "c-bob", []]]),
        connect("c-carol", "carol", expect=[["reach", "c-carol", ["bob"]]]),
        connect("c-dave", "dave", expect=[["reach", "c-dave", ["bob", "carol"]]]),
        recv("c-carol", {"t": "reach", "peers": ["frank", "alice"]}),
    ]


def scenarios() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def scenario(
        name: str, steps: list[dict[str, Any]], limits: dict[str, int] | None = None
    ) -> None:
        out.append({"name": name, "limits": limits or {}, "steps": steps})

    scenario(
        "reach_adverts_on_connect_and_debounced",
        [
            connect("c-bob", "bob", expect=[["reach", "c-bob", []]]),
            connect(
                "c-carol",
                "carol",
                at=NOW + 1000,
                caps=("gossip", "signal"),
                expect=[["reach", "c-carol", ["bob"]]],
            ),
            connect("c-dave", "dave", at=NOW + 2000, caps=("gossip",)),
            tick(NOW + 4999),
            tick(NOW + 5000, [["reach", "c-bob", ["carol"]]]),
            {"op": "disconnected", "conn": "c-carol", "at": NOW + 6000, "expect": []},
            tick(NOW + 9999),
            tick(NOW + 10_000, [["reach", "c-bob", []]]),
            tick(NOW + 20_000),
        ],
    )
    scenario(
        "deliver_and_relay_one_hop",
        [
            *three_neighbours(),
            recv("c-bob", signal(1, m("to_alice")), [["deliver", "to_alice", "c-bob", 3]]),
            recv("c-dave", signal(1, "to_alice"), [["drop", "duplicate", False, "c-dave"]]),
            recv(
                "c-bob",
                signal(2, m("to_carol", to="carol")),
                [["signal", "c-carol", 1, "to_carol"]],
            ),
            recv(
                "c-bob",
                signal(2, m("to_frank", to="frank", kind="candidate")),
                [["signal", "c-carol", 1, "to_frank"]],
            ),
            recv(
                "c-bob",
                signal(1, m("to_frank_1", to="frank", kind="candidate")),
                [["drop", "no_route", False, "c-bob"]],
            ),
            recv(
                "c-bob",
                signal(0, m("to_carol_0", to="carol")),
                [["drop", "hops_exhausted", False, "c-bob"]],
            ),
            recv(
                "c-bob",
                signal(3, m("to_bob_back", to="bob", kind="candidate")),
                [["drop", "no_route", False, "c-bob"]],
            ),
        ],
    )
    scenario(
        "learned_routes",
        [
            *three_neighbours(),
            recv(
                "c-dave",
                signal(2, m("grace_hi", signer="grace")),
                [["deliver", "grace_hi", "c-dave", 2]],
            ),
            recv(
                "c-bob",
                signal(3, m("to_grace", to="grace", kind="candidate")),
                [["signal", "c-dave", 2, "to_grace"]],
            ),
            recv(
                "c-dave",
                signal(1, m("frank_hi", signer="frank")),
                [["deliver", "frank_hi", "c-dave", 3]],
            ),
            recv(
                "c-bob",
                signal(3, m("to_frank", to="frank", kind="candidate")),
                [["signal", "c-carol", 2, "to_frank"]],
            ),
            recv(
                "c-bob",
                signal(1, m("to_grace_1", to="grace", kind="candidate")),
                [["drop", "no_route", False, "c-bob"]],
            ),
            recv(
                "c-bob",
                signal(2, m("to_grace_2", to="grace", kind="bye", payload=None)),
                [["signal", "c-dave", 1, "to_grace_2"]],
            ),
            {"op": "disconnected", "conn": "c-dave", "at": NOW, "expect": []},
            recv(
                "c-bob",
                signal(3, m("to_grace_3", to="grace", kind="candidate")),
                [["drop", "no_route", False, "c-bob"]],
            ),
        ],
    )
    scenario(
        "offers_flood_two_hops_out",
        [
            *three_neighbours(),
            recv(
                "c-bob",
                signal(3, m("o1", to="grace")),
                [["signal", "c-carol", 2, "o1"], ["signal", "c-dave", 2, "o1"]],
            ),
            recv("c-carol", signal(2, "o1"), [["drop", "duplicate", False, "c-carol"]]),
            recv("c-bob", signal(2, m("o2", to="grace")), [["drop", "no_route", False, "c-bob"]]),
            recv(
                "c-bob",
                signal(3, m("c1", to="grace", kind="candidate")),
                [["drop", "no_route", False, "c-bob"]],
            ),
            recv(
                "c-bob",
                signal(3, m("o3", to="grace")),
                [["signal", "c-carol", 2, "o3"], ["signal", "c-dave", 2, "o3"]],
            ),
            recv(
                "c-bob", signal(3, m("o4", to="grace")), [["drop", "rate_limited", False, "c-bob"]]
            ),
            recv(
                "c-bob",
                signal(3, m("o5", to="grace")),
                [["signal", "c-carol", 2, "o5"], ["signal", "c-dave", 2, "o5"]],
                at=NOW + 5000,
            ),
            recv(
                "c-bob",
                signal(3, m("od", signer="dave", to="grace")),
                [["signal", "c-carol", 2, "od"]],
                at=NOW + 5000,
            ),
        ],
        limits={"flood_burst": 2},
    )
    base = made(make_args("base"))
    forged = copy.deepcopy(base)
    forged["body"]["to"] = ID["alice"]
    genuine = resign(forged, "erin")
    zero = copy.deepcopy(genuine)
    zero["sig"] = b64url_encode(bytes(64))
    bad_steps = [
        recv("c-bob", signal(3, raw("forged", forged)), [["drop", "bad_signature", True, "c-bob"]]),
        recv("c-bob", signal(3, raw("zero_sig", zero)), [["drop", "bad_signature", True, "c-bob"]]),
        recv("c-bob", signal(3, raw("genuine", genuine)), [["deliver", "genuine", "c-bob", 1]]),
        recv("c-bob", signal(3, "genuine"), [["drop", "duplicate", False, "c-bob"]]),
        recv(
            "c-bob",
            signal(3, raw("wrong_from", resign(base, "frank"))),
            [["drop", "peer_mismatch", True, "c-bob"]],
        ),
        recv("c-bob", signal(3, m("hops_3", hops=3)), [["drop", "bad_hops", True, "c-bob"]]),
        recv(
            "c-bob",
            signal(3, raw("too_large", sized("too_large", MAX_SIGNAL_BYTES + 1))),
            [["drop", "signal_too_large", True, "c-bob"]],
        ),
        recv(
            "c-bob",
            signal(3, m("old", created_at=NOW - 60_000)),
            [["drop", "expired", False, "c-bob"]],
        ),
        recv(
            "c-bob",
            signal(3, m("early", created_at=NOW + 15_001)),
            [["drop", "not_yet_valid", False, "c-bob"]],
        ),
        recv(
            "c-bob",
            signal(3, raw("kind_x", resign(base, "erin", kind="renegotiate"))),
            [["drop", "unknown_kind", False, "c-bob"]],
        ),
        recv(
            "c-bob",
            signal(3, raw("v2", resign(base, "erin", v=2))),
            [["drop", "bad_signal", True, "c-bob"]],
        ),
        recv(
            "c-bob",
            signal(3, raw("to_self", resign(base, "erin", to=ID["erin"]))),
            [["drop", "bad_recipient", True, "c-bob"]],
        ),
        recv(
            "c-bob",
            signal(3, raw("no_envelope", {"body": base["body"]})),
            [["drop", "bad_envelope", True, "c-bob"]],
        ),
        recv(
            "c-bob",
            signal(3, raw("body_str", {**base, "body": "x"})),
            [["drop", "bad_envelope", True, "c-bob"]],
        ),
        recv(
            "c-bob",
            signal(3, m("own", signer="alice", to="erin")),
            [["drop", "duplicate", False, "c-bob"]],
        ),
        recv("c-zed", signal(3, "genuine"), [["drop", "unexpected_frame", False, "c-zed"]]),
    ]
    scenario("bad_input", [connect("c-bob", "bob", expect=[["reach", "c-bob", []]]), *bad_steps])
    scenario(
        "rate_limits",
        [
            connect("c-bob", "bob", expect=[["reach", "c-bob", []]]),
            connect("c-carol", "carol", expect=[["reach", "c-carol", ["bob"]]]),
            recv("c-bob", {"t": "reach", "peers": []}),
            recv("c-bob", {"t": "reach", "peers": []}),
            recv("c-bob", {"t": "reach", "peers": []}, [["drop", "rate_limited", True, "c-bob"]]),
            recv("c-bob", {"t": "reach", "peers": []}, at=NOW + 4000),
            recv("c-bob", signal(3, m("e1")), [["deliver", "e1", "c-bob", 1]]),
            recv("c-bob", signal(3, m("e2")), [["deliver", "e2", "c-bob", 1]]),
            recv("c-carol", signal(3, m("e3")), [["drop", "rate_limited", False, "c-carol"]]),
            recv("c-bob", signal(3, m("f1", signer="frank")), [["deliver", "f1", "c-bob", 1]]),
            recv(
                "c-bob",
                signal(3, m("g1", signer="grace")),
                [["drop", "rate_limited", True, "c-bob"]],
            ),
            recv("c-carol", signal(3, "e3"), [["deliver", "e3", "c-carol", 1]], at=NOW + 200),
        ],
        limits={"conn_burst": 3, "origin_burst": 2, "reach_in_burst": 2},
    )
    scenario(
        "sender",
        [
            connect("c-bob", "bob", expect=[["reach", "c-bob", []]]),
            connect("c-carol", "carol", expect=[["reach", "c-carol", ["bob"]]]),
            recv("c-carol", {"t": "reach", "peers": ["dave"]}),
            send("s_dave", "dave", "candidate", [["signal", "c-carol", 5, "s_dave"]]),
            send("s_bob", "bob", "offer", [["signal", "c-bob", 3, "s_bob"]]),
            send(
                "s_offer",
                "grace",
                "offer",
                [["signal", "c-bob", 3, "s_offer"], ["signal", "c-carol", 3, "s_offer"]],
            ),
            send("s_cand1", "grace", "candidate", []),
            send("s_frank", "frank", "candidate", [["drop", "no_route", False, None, "s_frank"]]),
            recv(
                "c-carol",
                signal(1, m("g_answer", signer="grace", kind="answer", hops=3)),
                [["signal", "c-carol", 5, "s_cand1"], ["deliver", "g_answer", "c-carol", 2]],
            ),
            send("s_cand2", "grace", "candidate", [["signal", "c-carol", 5, "s_cand2"]]),
            send(
                "s_offer2", "erin", "offer", [["drop", "no_route", False, None, "s_offer2"]], hops=2
            ),
            send(
                "s_offer3",
                "erin",
                "offer",
                [["signal", "c-bob", 2, "s_offer3"], ["signal", "c-carol", 2, "s_offer3"]],
                at=NOW + 1,
                hops=3,
            ),
            send("s_cand3", "erin", "candidate", [], at=NOW + 2),
            tick(NOW + 10_000, [["reach", "c-bob", ["carol"]]]),
            tick(
                NOW + 10_001,
                [
                    ["drop", "no_route", False, None, "s_cand3"],
                    ["drop", "no_route", False, None, "s_offer3"],
                ],
            ),
            send(
                "s_cand4",
                "erin",
                "candidate",
                [["drop", "no_route", False, None, "s_cand4"]],
                at=NOW + 10_002,
            ),
        ],
    )
    return out


def meshsig_vectors() -> dict[str, Any]:
    MESSAGES.clear()
    steps = scenarios()
    return {
        "description": "Signaling through the mesh (docs/protocol.md 'Signaling through the "
        "mesh'). "
        "Keys: Ed25519 from seed_hex. `valid`: each parses at `now` to its body with `id` "
        "(base64url SHA-256 of the signing input), and `make` (peers as labels) makes the same "
        "envelope. `invalid`: parsing at `now` fails with `error`. `make_invalid`: making fails "
        "with `error`. `scenarios`: a MeshSignal of alice with `limits` (snake_case) over the "
        "defaults; each step (peers as labels, a signal frame's `msg` a label of `messages`) "
        "gives exactly `expect`, in order: [reach, conn, peers], [signal, conn, hops, message], "
        "[deliver, message, conn, traveled], [drop, code, violation, conn or null]. A `send` "
        "step makes the message `as` names and returns its id.",
        "now": NOW,
        "keys": keys(),
        "valid": valid_vectors(),
        "invalid": invalid_vectors(),
        "make_invalid": make_invalid_vectors(),
        "scenarios": steps,
        "messages": dict(MESSAGES),
    }
