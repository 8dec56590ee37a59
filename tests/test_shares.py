"""Identity shares (peers/protocol/shares.py): SLIP-39 against the official vectors and ours.

tests/js/shares.test.js checks the browser module against the same files; the last tests here
combine shares that the browser module split.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from itertools import combinations, permutations
from pathlib import Path
from typing import Any

import pytest
import shamir_mnemonic
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from shamir_mnemonic.wordlist import WORD_INDEX_MAP, WORDLIST

from peers.protocol.encoding import peer_id_for_key
from peers.protocol.shares import (
    SHARE_WORDS,
    ShareError,
    combine_shares,
    share_info,
    split_seed,
)

ROOT = Path(__file__).parent.parent
VECTORS = ROOT / "tests" / "vectors"
OFFICIAL = json.loads((VECTORS / "slip39_official.json").read_text())
SHARES = json.loads((VECTORS / "shares.json").read_text())
SEED = hashlib.sha256(b"a seed for tests").digest()
PEER = peer_id_for_key(Ed25519PrivateKey.from_private_bytes(SEED).public_key().public_bytes_raw())
OTHER_SEED = hashlib.sha256(b"another seed").digest()
OTHER_PEER = peer_id_for_key(
    Ed25519PrivateKey.from_private_bytes(OTHER_SEED).public_key().public_bytes_raw()
)


class Refused:
    """``with Refused("bad_share") as caught:`` asserts the code and keeps the error."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.error: ShareError | None = None

    def __enter__(self) -> Refused:
        return self

    def __exit__(self, kind: object, error: object, tb: object) -> bool:
        assert isinstance(error, ShareError), f"expected ShareError {self.code}, got {error!r}"
        assert error.code == self.code, f"expected {self.code}, got {error.code}: {error.message}"
        self.error = error
        return True


def replace_word(mnemonic: str, position: int, step: int = 1) -> str:
    words = mnemonic.split()
    words[position] = WORDLIST[(WORD_INDEX_MAP[words[position]] + step) % len(WORDLIST)]
    return " ".join(words)


# --- the official SLIP-39 vectors, through the pinned reference implementation ------------

VALID_OFFICIAL = [v for v in OFFICIAL["vectors"] if v[2]]
INVALID_OFFICIAL = [v for v in OFFICIAL["vectors"] if not v[2]]


@pytest.mark.parametrize("vector", VALID_OFFICIAL, ids=lambda v: v[0])
def test_official_valid_vector_gives_its_master_secret(vector: list[Any]) -> None:
    _, mnemonics, secret_hex, _ = vector
    passphrase = OFFICIAL["passphrase"].encode()
    assert shamir_mnemonic.combine_mnemonics(mnemonics, passphrase).hex() == secret_hex


@pytest.mark.parametrize("vector", INVALID_OFFICIAL, ids=lambda v: v[0])
def test_official_invalid_vector_is_refused(vector: list[Any]) -> None:
    _, mnemonics, _, _ = vector
    with pytest.raises(shamir_mnemonic.MnemonicError):
        shamir_mnemonic.combine_mnemonics(mnemonics, OFFICIAL["passphrase"].encode())
    # Our layer refuses them too, with a stable code (most are 128-bit or multi-group sets).
    with pytest.raises(ShareError):
        combine_shares(mnemonics, peer_id=PEER)


def test_official_vectors_cover_valid_and_invalid_sets() -> None:
    assert len(VALID_OFFICIAL) >= 15
    assert len(INVALID_OFFICIAL) >= 25


def test_browser_wordlist_is_the_reference_list() -> None:
    text = (ROOT / "static" / "swarm" / "protocol" / "slip39_words.js").read_text()
    match = re.search(r"`([a-z\s]+)`", text)
    assert match is not None
    assert match.group(1).split() == list(WORDLIST)
    assert len(WORDLIST) == 1024


# --- our shared vectors (tests/vectors/shares.json) ------------------------------------------


@pytest.mark.parametrize("split", SHARES["splits"], ids=lambda s: s["name"])
def test_split_vector_combines_from_any_threshold_of_its_shares(split: dict[str, Any]) -> None:
    mnemonics = split["mnemonics"]
    assert len(mnemonics) == split["count"]
    for mnemonic in mnemonics:
        assert share_info(mnemonic).set_id == split["set_id"]
    chosen = list(combinations(mnemonics, split["threshold"]))[:20]
    for subset in chosen:
        seed = combine_shares(list(subset), peer_id=SHARES["peer_id"])
        assert seed.hex() == SHARES["seed_hex"]


@pytest.mark.parametrize("case", SHARES["info"], ids=lambda c: str(c["index"]))
def test_info_vector(case: dict[str, Any]) -> None:
    info = share_info(case["mnemonic"])
    assert (info.set_id, info.index, info.threshold) == (
        case["set_id"],
        case["index"],
        case["threshold"],
    )
    assert (info.extendable, info.iteration_exponent) == (
        case["extendable"],
        case["iteration_exponent"],
    )
    assert info.mnemonic == case["normal"]


@pytest.mark.parametrize("case", SHARES["combine"]["valid"], ids=lambda c: c["name"])
def test_valid_combine_vector_gives_the_seed(case: dict[str, Any]) -> None:
    assert combine_shares(case["shares"], peer_id=case["peer_id"]).hex() == case["seed_hex"]


@pytest.mark.parametrize("case", SHARES["combine"]["invalid"], ids=lambda c: c["name"])
def test_invalid_combine_vector_fails_with_its_code(case: dict[str, Any]) -> None:
    with Refused(case["error"]) as caught:
        combine_shares(case["shares"], peer_id=case["peer_id"])
    assert caught.error is not None
    assert (caught.error.share, caught.error.have, caught.error.need) == (
        case["share"],
        case["have"],
        case["need"],
    )


@pytest.mark.parametrize(
    "case", SHARES["bad_splits"], ids=lambda c: f"{c['threshold']}_of_{c['count']}"
)
def test_bad_split_vector_fails_with_its_code(case: dict[str, Any]) -> None:
    with Refused(case["error"]):
        split_seed(
            bytes.fromhex(case["seed_hex"]),
            threshold=case["threshold"],
            count=case["count"],
            set_id=case["set_id"],
        )


# --- behaviour -------------------------------------------------------------------------------


@pytest.mark.parametrize(("threshold", "count"), [(2, 2), (2, 3), (3, 5), (4, 7), (16, 16)])
def test_any_threshold_of_the_shares_give_the_seed_back(threshold: int, count: int) -> None:
    mnemonics = split_seed(SEED, threshold=threshold, count=count)
    assert len(mnemonics) == count
    assert all(len(m.split()) == SHARE_WORDS for m in mnemonics)
    for subset in combinations(mnemonics, threshold):
        assert combine_shares(list(reversed(subset)), peer_id=PEER) == SEED


def test_more_shares_than_the_threshold_combine_in_any_order() -> None:
    mnemonics = split_seed(SEED, threshold=2, count=4)
    for ordered in permutations(mnemonics, 3):
        assert combine_shares(list(ordered), peer_id=PEER) == SEED


def test_default_split_is_3_of_5() -> None:
    mnemonics = split_seed(SEED)
    infos = [share_info(m) for m in mnemonics]
    assert [i.index for i in infos] == [0, 1, 2, 3, 4]
    assert {i.threshold for i in infos} == {3}
    assert len({i.set_id for i in infos}) == 1


@pytest.mark.parametrize(("threshold", "count"), [(2, 2), (3, 5), (16, 16)])
def test_one_share_short_gives_too_few_shares_with_have_and_need(
    threshold: int, count: int
) -> None:
    mnemonics = split_seed(SEED, threshold=threshold, count=count)
    with Refused("too_few_shares") as caught:
        combine_shares(mnemonics[: threshold - 1], peer_id=PEER)
    assert caught.error is not None
    assert (caught.error.have, caught.error.need) == (threshold - 1, threshold)


def test_every_word_position_tampered_gives_bad_share_naming_the_share() -> None:
    mnemonics = split_seed(SEED, threshold=3, count=5)
    for position in range(SHARE_WORDS):
        for step in (1, 512):
            tampered = replace_word(mnemonics[1], position, step)
            with Refused("bad_share") as caught:
                share_info(tampered)
            with Refused("bad_share") as caught:
                combine_shares([mnemonics[0], tampered, mnemonics[2]], peer_id=PEER)
            assert caught.error is not None
            assert caught.error.share == 1


def test_share_of_another_set_gives_share_set_mismatch() -> None:
    first = split_seed(SEED, threshold=3, count=5, set_id=100)
    second = split_seed(SEED, threshold=3, count=5, set_id=101)
    with Refused("share_set_mismatch") as caught:
        combine_shares([first[0], first[1], second[2]], peer_id=PEER)
    assert caught.error is not None
    assert caught.error.share == 2


def test_same_share_twice_gives_duplicate_share() -> None:
    mnemonics = split_seed(SEED, threshold=2, count=3)
    with Refused("duplicate_share") as caught:
        combine_shares([mnemonics[1], mnemonics[1]], peer_id=PEER)
    assert caught.error is not None
    assert caught.error.share == 1


def test_wrong_expected_peer_id_gives_key_mismatch() -> None:
    mnemonics = split_seed(SEED, threshold=2, count=3)
    with Refused("key_mismatch"):
        combine_shares(mnemonics[:2], peer_id=OTHER_PEER)


@pytest.mark.parametrize(
    ("threshold", "count"), [(1, 1), (1, 3), (0, 5), (4, 3), (2, 17), (17, 17), (-2, 3)]
)
def test_bad_threshold_or_count_gives_bad_threshold(threshold: int, count: int) -> None:
    with Refused("bad_threshold"):
        split_seed(SEED, threshold=threshold, count=count)


def test_seed_of_wrong_length_is_refused() -> None:
    with Refused("bad_key"):
        split_seed(SEED[:31])


def test_share_info_names_set_index_and_threshold() -> None:
    mnemonics = split_seed(SEED, threshold=4, count=6, set_id=31000)
    for index, mnemonic in enumerate(mnemonics):
        info = share_info(mnemonic)
        assert (info.set_id, info.index, info.threshold) == (31000, index, 4)


def test_new_splits_of_one_seed_do_not_mix() -> None:
    old = split_seed(SEED, threshold=2, count=3, set_id=7)
    new = split_seed(SEED, threshold=2, count=3, set_id=8)
    assert set(old).isdisjoint(new)
    with Refused("share_set_mismatch"):
        combine_shares([old[0], new[1]], peer_id=PEER)


# --- shares split by the browser module --------------------------------------------------------


def split_in_node(seed: bytes, threshold: int, count: int) -> list[str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("needs Node.js")
    result = subprocess.run(
        [node, "tests/js/support/split_seed.mjs", seed.hex(), str(threshold), str(count)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    mnemonics: list[str] = json.loads(result.stdout)
    return mnemonics


@pytest.mark.parametrize(("threshold", "count"), [(2, 2), (3, 5), (16, 16)])
def test_python_combines_shares_split_by_the_browser_module(threshold: int, count: int) -> None:
    mnemonics = split_in_node(SEED, threshold, count)
    assert len(mnemonics) == count
    for subset in list(combinations(mnemonics, threshold))[:10]:
        assert combine_shares(list(subset), peer_id=PEER) == SEED
    with Refused("too_few_shares"):
        combine_shares(mnemonics[: threshold - 1], peer_id=PEER)
    with Refused("key_mismatch"):
        combine_shares(mnemonics[:threshold], peer_id=OTHER_PEER)
