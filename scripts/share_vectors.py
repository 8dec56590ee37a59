"""Shared vectors for identity shares (tests/vectors/shares.json, docs/protocol.md
"Identity shares (SLIP-39)").

Splits of a fixed seed made by the reference implementation with fixed random bytes (which
the browser module, fed the same bytes, must reproduce word for word), shares read without
combining, and combine cases with their result or error code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import shamir_mnemonic.shamir
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from shamir_mnemonic import Share
from shamir_mnemonic.wordlist import WORD_INDEX_MAP, WORDLIST

from peers.protocol.encoding import peer_id_for_key
from peers.protocol.shares import (
    EXTENDABLE,
    ITERATION_EXPONENT,
    ShareError,
    combine_shares,
    share_info,
    split_seed,
)

SPLITS = [
    ("3_of_5", 3, 5, 1234),
    ("2_of_3", 2, 3, 4321),
    ("2_of_2", 2, 2, 0),
    ("16_of_16", 16, 16, 32767),
]


def seed_of(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def peer_of(seed: bytes) -> str:
    return peer_id_for_key(
        Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    )


@contextmanager
def fixed_random(label: str) -> Iterator[bytearray]:
    """The library's random source replaced by SHA-256(label || counter); yields what it gave."""
    given = bytearray()
    counter = 0

    def random_bytes(n: int) -> bytes:
        nonlocal counter
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"{label}/{counter}".encode()).digest()
            counter += 1
        given.extend(out[:n])
        return out[:n]

    saved: Callable[[int], bytes] = shamir_mnemonic.shamir.RANDOM_BYTES
    shamir_mnemonic.shamir.RANDOM_BYTES = random_bytes
    try:
        yield given
    finally:
        shamir_mnemonic.shamir.RANDOM_BYTES = saved


def split_fixed(seed: bytes, threshold: int, count: int, set_id: int) -> tuple[list[str], str]:
    with fixed_random(f"shares/{threshold}-of-{count}/{set_id}") as given:
        mnemonics = split_seed(seed, threshold=threshold, count=count, set_id=set_id)
    return mnemonics, bytes(given).hex()


def altered(mnemonic: str, **changes: Any) -> str:
    """The share with some fields changed and a valid checksum (only combining can tell)."""
    share = Share.from_mnemonic(mnemonic)
    fields = {name: getattr(share, name) for name in Share.__dataclass_fields__}
    if not changes:
        value = bytearray(share.value)
        value[5] ^= 0x40
        changes = {"value": bytes(value)}
    fields.update(changes)
    return str(Share(**fields).mnemonic())


def tampered(mnemonic: str, position: int) -> str:
    """One word replaced by the next word of the list (the checksum catches it)."""
    words = mnemonic.split()
    words[position] = WORDLIST[(WORD_INDEX_MAP[words[position]] + 1) % len(WORDLIST)]
    return " ".join(words)


def share_vectors() -> dict[str, Any]:
    alice, bob = seed_of("alice"), seed_of("bob")
    alice_id, bob_id = peer_of(alice), peer_of(bob)
    splits = []
    made: dict[str, list[str]] = {}
    for name, threshold, count, set_id in SPLITS:
        mnemonics, random_hex = split_fixed(alice, threshold, count, set_id)
        made[name] = mnemonics
        splits.append(
            {
                "name": name,
                "threshold": threshold,
                "count": count,
                "set_id": set_id,
                "random_hex": random_hex,
                "mnemonics": mnemonics,
            }
        )
    m = made["3_of_5"]
    two = made["2_of_3"]
    other_set, _ = split_fixed(alice, 3, 5, 1235)
    bobs, _ = split_fixed(bob, 3, 5, 1234)

    info = []
    for mnemonic in [*m, "  " + m[0].upper().replace(" ", " \t\n ", 3) + "\n"]:
        i = share_info(mnemonic)
        info.append(
            {
                "mnemonic": mnemonic,
                "set_id": i.set_id,
                "index": i.index,
                "threshold": i.threshold,
                "extendable": i.extendable,
                "iteration_exponent": i.iteration_exponent,
                "normal": i.mnemonic,
            }
        )

    valid = [
        ("first_three", m[:3]),
        ("last_three_reversed", [m[4], m[3], m[2]]),
        ("all_five", m),
        ("uppercase_and_spaces", [m[0].upper(), "\t" + m[1].replace(" ", "\n  ") + " ", m[2]]),
        ("altered_share_among_spare_ones", [altered(m[0]), m[1], m[2], m[3]]),
        ("two_altered_among_spare_ones", [m[0], altered(m[1]), m[2], altered(m[3]), m[4]]),
        ("2_of_3", [two[2], two[0]]),
        ("2_of_2", made["2_of_2"]),
        ("16_of_16", made["16_of_16"]),
    ]
    combine_valid = []
    for name, shares in valid:
        if combine_shares(shares, peer_id=alice_id) != alice:
            raise SystemExit(f"combine vector {name} does not give the seed")
        combine_valid.append(
            {"name": name, "shares": shares, "peer_id": alice_id, "seed_hex": alice.hex()}
        )

    invalid: list[tuple[str, Any, str]] = [
        ("tampered_first_word", [m[0], tampered(m[1], 0), m[2]], alice_id),
        ("tampered_value_word", [m[0], m[1], tampered(m[2], 17)], alice_id),
        ("tampered_checksum_word", [tampered(m[0], 32), m[1], m[2]], alice_id),
        (
            "two_words_swapped",
            [m[0], " ".join([*m[1].split()[:5], *m[1].split()[6:4:-1], *m[1].split()[7:]]), m[2]],
            alice_id,
        ),
        ("unknown_word", [m[0], m[1].replace(m[1].split()[3], "bitcoin", 1), m[2]], alice_id),
        ("word_missing", [m[0], m[1], " ".join(m[2].split()[:-1])], alice_id),
        ("word_added", [m[0], m[1], m[2] + " academic"], alice_id),
        ("not_a_string", [m[0], 42, m[2]], alice_id),
        ("digits", [m[0], m[1], "academic 123"], alice_id),
        ("non_ascii_letter", [m[0], m[1].replace("a", "\u00e1", 1), m[2]], alice_id),
        ("too_long", [m[0], m[1], m[2] + " " * 1000], alice_id),
        ("empty_string", [m[0], ""], alice_id),
        ("secret_of_16_bytes", [m[0], altered(m[1], value=bytes(16)), m[2]], alice_id),
        ("share_of_two_groups", [altered(m[0], group_count=2), m[1], m[2]], alice_id),
        ("threshold_1", [altered(m[0], member_threshold=1)], alice_id),
        ("iteration_exponent_5", [m[0], altered(m[1], iteration_exponent=5), m[2]], alice_id),
        ("other_set_same_seed", [m[0], m[1], other_set[2]], alice_id),
        ("other_threshold", [m[0], two[1], m[2]], alice_id),
        ("same_set_id_other_threshold", [m[0], altered(m[1], member_threshold=2)], alice_id),
        ("not_extendable", [m[0], m[1], altered(m[2], extendable=False)], alice_id),
        ("same_share_twice", [m[0], m[1], m[0]], alice_id),
        ("same_index_other_value", [m[0], m[1], altered(m[1])], alice_id),
        ("too_few", [m[3], m[1]], alice_id),
        ("one_of_2_of_3", [two[1]], alice_id),
        ("none", [], alice_id),
        ("not_a_list", m[0], alice_id),
        ("altered_value_at_threshold", [m[0], altered(m[1]), m[2]], alice_id),
        ("every_share_altered", [altered(s) for s in m], alice_id),
        ("expected_other_peer", m[:3], bob_id),
        ("shares_of_another_identity", bobs[:3], alice_id),
        ("expected_peer_id_malformed", m[:3], "alice"),
    ]
    combine_invalid = []
    for name, shares, peer_id in invalid:
        try:
            combine_shares(shares, peer_id=peer_id)
        except ShareError as exc:
            case: dict[str, Any] = {"name": name, "shares": shares, "peer_id": peer_id}
            case.update({"error": exc.code, "share": exc.share, "have": exc.have, "need": exc.need})
            combine_invalid.append(case)
        else:
            raise SystemExit(f"combine vector {name} was accepted")

    bad_splits = []
    for threshold, count, set_id, seed_hex in [
        (1, 5, 1, alice.hex()),
        (3, 2, 1, alice.hex()),
        (2, 17, 1, alice.hex()),
        (17, 17, 1, alice.hex()),
        (0, 0, 1, alice.hex()),
        (True, 5, 1, alice.hex()),
        ("3", 5, 1, alice.hex()),
        (3, 5, 32768, alice.hex()),
        (3, 5, -1, alice.hex()),
        (3, 5, 1, alice.hex()[:-2]),
        (3, 5, 1, alice.hex() + "00"),
    ]:
        try:
            split_seed(bytes.fromhex(seed_hex), threshold=threshold, count=count, set_id=set_id)
        except ShareError as exc:
            bad_splits.append(
                {
                    "threshold": threshold,
                    "count": count,
                    "set_id": set_id,
                    "seed_hex": seed_hex,
                    "error": exc.code,
                }
            )
        else:
            raise SystemExit(f"split {threshold} of {count} was accepted")

    return {
        "description": "Identity shares: SLIP-39, one group, empty passphrase, extendable, "
        "iteration exponent 1, secret = the 32-byte Ed25519 seed. `splits`: the reference "
        "implementation's mnemonics for `seed_hex` with identifier `set_id` when its random "
        "source gives the bytes of `random_hex` in order (a SLIP-39 split of the same inputs "
        "must give the same words). `info`: what each share says of itself (`normal` is its "
        "normal form). `combine.valid` give `seed_hex` for `peer_id`; `combine.invalid` fail "
        "with `error` (and name `share`, the position at fault, or `have`/`need`). "
        "`bad_splits` fail with `error`.",
        "seed_hex": alice.hex(),
        "peer_id": alice_id,
        "extendable": EXTENDABLE,
        "iteration_exponent": ITERATION_EXPONENT,
        "splits": splits,
        "info": info,
        "combine": {"valid": combine_valid, "invalid": combine_invalid},
        "bad_splits": bad_splits,
    }
