"""Identity shares: an identity's Ed25519 seed split into SLIP-39 mnemonics, and combined back.

The format is SLIP-39 exactly (docs/protocol.md "Identity shares (SLIP-39)"), through Trezor's
reference implementation (PyPI ``shamir-mnemonic``): one group of ``count`` members of which
``threshold`` recover, 2 <= threshold <= count <= 16, an empty SLIP-39 passphrase, the
extendable flag set and iteration exponent 1. The secret is the identity's 32-byte seed, so
every share is 33 words. A combined seed is accepted only if its public key gives the
expected peer id. Mirror: static/swarm/protocol/shares.js (same API, same error codes).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import combinations, islice
from typing import Any, TypeGuard

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from shamir_mnemonic import EncryptedMasterSecret, MnemonicError, Share, recover_ems, split_ems
from shamir_mnemonic.shamir import ShareGroup
from shamir_mnemonic.wordlist import WORD_INDEX_MAP

from .encoding import PEER_ID_RE, peer_id_for_key
from .errors import (
    BAD_DIGEST,
    BAD_KEY,
    BAD_SET_ID,
    BAD_SHARE,
    BAD_THRESHOLD,
    DUPLICATE_SHARE,
    KEY_MISMATCH,
    SHARE_SET_MISMATCH,
    TOO_FEW_SHARES,
    ProtocolError,
)

SEED_BYTES = 32
# 2 words (id, flag, exponent) + 2 (group and member parameters) + 26 (value) + 3 (checksum).
SHARE_WORDS = 33
MIN_THRESHOLD = 2
MAX_SHARES = 16
DEFAULT_THRESHOLD = 3
DEFAULT_COUNT = 5
SET_ID_BITS = 15
EXTENDABLE = True
ITERATION_EXPONENT = 1
# PBKDF2 runs 10000 << e iterations: a share claiming e = 15 would cost the recovering device
# minutes, and the passphrase is empty anyway, so shares above this are refused.
MAX_ITERATION_EXPONENT = 4
MAX_MNEMONIC_CHARS = 1000
# Combinations tried when more shares than the threshold are given (bounds the work an
# attacker's shares can cause; covers leaving out any 3 of 16).
MAX_COMBINATIONS = 1024
PASSPHRASE = b""

# Letters only, words separated by ASCII whitespace: both languages split and lowercase the
# same way (str.split and JS \s disagree on some control characters).
_MNEMONIC_RE = re.compile(r"[A-Za-z]+(?:[ \t\r\n]+[A-Za-z]+)*")
_SPACE_RE = re.compile(r"[ \t\r\n]+")
_ASCII_SPACE = " \t\r\n"


class ShareError(ProtocolError):
    """A share or set of shares refused; ``code`` is stable.

    ``share`` is the position (0-based, in the list given) of the share at fault when one
    can be named; ``have`` and ``need`` come with ``too_few_shares`` (``need`` is None when
    no share was given).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        share: int | None = None,
        have: int | None = None,
        need: int | None = None,
    ) -> None:
        super().__init__(code, message)
        self.share = share
        self.have = have
        self.need = need


@dataclass(frozen=True, slots=True)
class ShareInfo:
    """What one share says about itself, read without combining.

    Shares of one set agree on ``set_id``, ``threshold``, ``extendable`` and
    ``iteration_exponent`` and differ in ``index`` (0..15; people count from 1).
    ``mnemonic`` is the share in normal form: lowercase words separated by one space.
    """

    set_id: int
    index: int
    threshold: int
    extendable: bool
    iteration_exponent: int
    mnemonic: str

    def same_set(self, other: ShareInfo) -> bool:
        return (self.set_id, self.threshold, self.extendable, self.iteration_exponent) == (
            other.set_id,
            other.threshold,
            other.extendable,
            other.iteration_exponent,
        )


def split_seed(
    seed: bytes,
    *,
    threshold: int = DEFAULT_THRESHOLD,
    count: int = DEFAULT_COUNT,
    set_id: int | None = None,
) -> list[str]:
    """``count`` mnemonics of which any ``threshold`` give back ``seed``, in index order.

    ``set_id`` (15 bits) names the set; a random one when None. A new split of the same
    seed should use a new id, so shares of the two sets cannot be mixed.
    """
    if not isinstance(seed, bytes) or len(seed) != SEED_BYTES:
        raise ShareError(BAD_KEY, f"an identity seed is {SEED_BYTES} bytes")
    _check_threshold(threshold, count)
    if set_id is None:
        set_id = secrets.randbelow(1 << SET_ID_BITS)
    elif not _is_int(set_id) or not 0 <= set_id < 1 << SET_ID_BITS:
        raise ShareError(BAD_SET_ID, f"a set id is an integer in 0..{(1 << SET_ID_BITS) - 1}")
    ems = EncryptedMasterSecret.from_master_secret(
        seed, PASSPHRASE, set_id, EXTENDABLE, ITERATION_EXPONENT
    )
    (group,) = split_ems(1, [(threshold, count)], ems)
    return [str(share.mnemonic()) for share in group]


def share_info(mnemonic: object) -> ShareInfo:
    """Check one share (words, length, checksum, parameters) and read its metadata.

    Raises ShareError ``bad_share`` for anything that is not a share of a swarm identity.
    """
    return _decode(mnemonic)[0]


def combine_shares(mnemonics: Sequence[str], *, peer_id: str) -> bytes:
    """The seed from at least ``threshold`` shares of one set, if its key gives ``peer_id``.

    Every share is checked first, and the first bad one is named (``ShareError.share``).
    With more shares than the threshold, combinations of ``threshold`` of them are tried
    (leaving out the last ones first, at most ``MAX_COMBINATIONS``) until one's SLIP-39
    digest holds, so an altered share among spare ones does not stop recovery.
    """
    if not isinstance(peer_id, str) or not PEER_ID_RE.fullmatch(peer_id):
        raise ShareError(KEY_MISMATCH, "the expected peer id is not a key-bound id")
    if not isinstance(mnemonics, list | tuple):
        raise ShareError(BAD_SHARE, "shares come as a list of mnemonics")
    infos: list[ShareInfo] = []
    decoded: list[Any] = []
    for position, mnemonic in enumerate(mnemonics):
        try:
            info, share = _decode(mnemonic)
        except ShareError as exc:
            raise ShareError(
                exc.code, f"share {position + 1}: {exc.message}", share=position
            ) from None
        if infos and not info.same_set(infos[0]):
            raise ShareError(
                SHARE_SET_MISMATCH, f"share {position + 1} is of another set", share=position
            )
        if any(other.index == info.index for other in infos):
            raise ShareError(
                DUPLICATE_SHARE,
                f"share {position + 1} has the index of an earlier one ({info.index + 1})",
                share=position,
            )
        infos.append(info)
        decoded.append(share)
    need = infos[0].threshold if infos else None
    if need is None or len(infos) < need:
        raise ShareError(
            TOO_FEW_SHARES,
            f"{len(infos)} shares, {need if need is not None else 'some'} needed",
            have=len(infos),
            need=need,
        )
    for chosen in islice(_combinations(len(decoded), need), MAX_COMBINATIONS):
        group = ShareGroup()
        for position in chosen:
            group.add(decoded[position])
        try:
            ems = recover_ems({0: group})
        except MnemonicError:
            continue  # the digest does not hold: an altered share is among these
        seed = bytes(ems.decrypt(PASSPHRASE))
        public_key = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
        if peer_id_for_key(public_key) != peer_id:
            raise ShareError(KEY_MISMATCH, "the shares give the key of another peer id")
        return seed
    raise ShareError(BAD_DIGEST, "the shares do not combine: at least one of them was altered")


def _combinations(have: int, need: int) -> Iterator[list[int]]:
    """Positions of ``need`` of ``have`` shares: all but the last, then all but the one
    before, ... (the left-out sets in lexicographic order of descending positions)."""
    for left_out in combinations(range(have - 1, -1, -1), have - need):
        yield [position for position in range(have) if position not in left_out]


def _decode(mnemonic: object) -> tuple[ShareInfo, Any]:
    if not isinstance(mnemonic, str) or len(mnemonic) > MAX_MNEMONIC_CHARS:
        raise ShareError(BAD_SHARE, "a share is a string of words")
    text = mnemonic.strip(_ASCII_SPACE)
    if not _MNEMONIC_RE.fullmatch(text):
        raise ShareError(BAD_SHARE, "a share is words of letters separated by spaces")
    words = _SPACE_RE.split(text.lower())
    if len(words) != SHARE_WORDS:
        raise ShareError(BAD_SHARE, f"a share has {SHARE_WORDS} words, this one {len(words)}")
    for position, word in enumerate(words, start=1):
        if word not in WORD_INDEX_MAP:
            raise ShareError(BAD_SHARE, f"word {position} ({word!r}) is not a SLIP-39 word")
    normal = " ".join(words)
    try:
        share = Share.from_mnemonic(normal)
    except MnemonicError as exc:
        # Checksum or padding: a mistyped or altered word.
        raise ShareError(BAD_SHARE, f"not a valid share: {exc}") from None
    if (share.group_index, share.group_threshold, share.group_count) != (0, 1, 1):
        raise ShareError(BAD_SHARE, "a share of a backup with several groups")
    if share.member_threshold < MIN_THRESHOLD:
        raise ShareError(BAD_SHARE, f"a share with threshold {share.member_threshold}")
    if share.iteration_exponent > MAX_ITERATION_EXPONENT:
        raise ShareError(BAD_SHARE, f"iteration exponent {share.iteration_exponent} is too high")
    info = ShareInfo(
        set_id=int(share.identifier),
        index=int(share.index),
        threshold=int(share.member_threshold),
        extendable=bool(share.extendable),
        iteration_exponent=int(share.iteration_exponent),
        mnemonic=normal,
    )
    return info, share


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_threshold(threshold: object, count: object) -> None:
    if not _is_int(threshold) or not _is_int(count):
        raise ShareError(BAD_THRESHOLD, "threshold and count are integers")
    if not MIN_THRESHOLD <= threshold <= count <= MAX_SHARES:
        raise ShareError(
            BAD_THRESHOLD,
            f"need {MIN_THRESHOLD} <= threshold <= count <= {MAX_SHARES}, "
            f"got {threshold} of {count}",
        )
