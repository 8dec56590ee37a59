"""Post logs: chain rules, edits and deletes, forks, and reconciliation between peers."""

from __future__ import annotations

import copy

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from peers.protocol.chunks import digest_id
from peers.protocol.encoding import peer_id_for_key
from peers.protocol.envelope import JsonObject
from peers.protocol.errors import ProtocolError
from peers.protocol.postlog import (
    MAX_SUMMARY_AUTHORS,
    AuthorLog,
    ForkError,
    Head,
    next_post,
    parse_summary,
    reconcile,
    summarize,
    summary_to_json,
    verify_log,
)
from peers.protocol.posts import make_post, verify_post

NOW = 1_800_000_000_000
KEYS = [Ed25519PrivateKey.from_private_bytes(bytes([i + 1]) * 32) for i in range(3)]
IDS = [peer_id_for_key(k.public_key().public_bytes_raw()) for k in KEYS]


def grow(log: AuthorLog, key: Ed25519PrivateKey, count: int, *, start: int = 0) -> None:
    for i in range(count):
        log.append(verify_post(next_post(log, key, now=NOW + start + i, text=f"post {start + i}")))


def full_log(index: int, count: int, *, tag: str = "") -> AuthorLog:
    log = AuthorLog(IDS[index])
    for i in range(count):
        envelope = next_post(log, KEYS[index], now=NOW + i, text=f"{tag}post {i}")
        log.append(verify_post(envelope))
    return log


def prefix(log: AuthorLog, count: int) -> AuthorLog:
    out = AuthorLog(log.author)
    for entry in log.entries[:count]:
        out.append(entry)
    return out


def apply(logs: dict[str, AuthorLog], envelopes: list[JsonObject]) -> None:
    """What a peer does with entries it received in a sync batch."""
    for envelope in envelopes:
        entry = verify_post(envelope, now=NOW + 10_000)
        logs.setdefault(entry.author, AuthorLog(entry.author)).append(entry)


def test_a_log_with_edits_and_deletes_shows_the_current_posts() -> None:
    log = AuthorLog(IDS[0])
    key = KEYS[0]
    first = verify_post(next_post(log, key, now=NOW, text="first", name="A"))
    log.append(first)
    second = verify_post(next_post(log, key, now=NOW + 1, attachments=[digest_id(b"m")]))
    log.append(second)
    log.append(
        verify_post(next_post(log, key, now=NOW + 2, kind="edit", text="1st", target=first.hash))
    )
    log.append(
        verify_post(next_post(log, key, now=NOW + 3, kind="edit", text="one", target=first.hash))
    )
    log.append(verify_post(next_post(log, key, now=NOW + 4, kind="delete", target=second.hash)))
    [view] = log.posts()
    assert (view.id, view.text, view.created_at, view.edited_at) == (
        first.hash,
        "one",
        NOW,
        NOW + 3,
    )
    assert log.head == Head(seq=4, hash=log.entries[-1].hash)
    again = verify_log([e.envelope for e in log.entries], now=NOW)
    assert again.posts() == log.posts()


def test_receiving_an_entry_twice_is_not_an_error() -> None:
    log = full_log(0, 2)
    assert log.append(log.entries[1]) is False
    assert len(log) == 2


def test_a_fork_is_reported_with_both_signed_entries_as_proof() -> None:
    log = full_log(0, 3)
    other = make_post(KEYS[0], seq=1, prev=log.entries[0].hash, created_at=NOW + 1, text="other")
    with pytest.raises(ForkError) as err:
        log.append(verify_post(other))
    fork = err.value.fork
    assert err.value.code == "fork"
    assert (fork.author, fork.seq) == (IDS[0], 1)
    assert fork.hashes == (log.entries[1].hash, verify_post(other).hash)
    # Anyone can check the proof: two valid signatures by the author at the same seq.
    proofs = [verify_post(e) for e in fork.evidence]
    assert {p.seq for p in proofs} == {1}
    assert {p.author for p in proofs} == {IDS[0]}
    assert len(log) == 3  # the first branch seen is kept


def test_an_entry_ahead_of_the_log_is_a_gap_then_syncs() -> None:
    source = full_log(0, 4)
    log = prefix(source, 1)
    with pytest.raises(ProtocolError) as err:
        log.append(source.entries[3])  # gossip brought seq 3, we only have seq 0
    assert err.value.code == "gap"
    result = reconcile({IDS[0]: source}, summarize({IDS[0]: log}))
    apply({IDS[0]: log}, result.send)
    assert log.head == source.head


def test_entries_from_another_author_or_out_of_chain_are_refused() -> None:
    log = full_log(0, 2)
    stranger = full_log(1, 3)
    with pytest.raises(ProtocolError) as err:
        log.append(stranger.entries[2])
    assert err.value.code == "bad_post"
    wrong_prev = make_post(KEYS[0], seq=2, prev=digest_id(b"nothing"), created_at=NOW + 5, text="x")
    with pytest.raises(ProtocolError) as err:
        log.append(verify_post(wrong_prev))
    assert err.value.code == "broken_chain"


def test_next_post_never_goes_back_in_time() -> None:
    log = full_log(0, 2)
    envelope = next_post(log, KEYS[0], now=NOW - 60_000, text="clock went back")
    assert envelope["body"]["created_at"] == log.entries[-1].created_at
    assert log.append(verify_post(envelope))


def test_text_that_is_not_valid_unicode_is_refused() -> None:
    with pytest.raises(ProtocolError) as err:
        make_post(KEYS[0], seq=0, prev=None, created_at=NOW, text="half \ud83d")
    assert err.value.code == "bad_post"
    signed = make_post(KEYS[0], seq=0, prev=None, created_at=NOW, text="ok")
    forged = copy.deepcopy(signed)
    forged["body"]["text"] = "half \ud83d"
    with pytest.raises(ProtocolError) as err:
        verify_post(forged)
    assert err.value.code == "bad_envelope"  # not even canonicalizable


def test_a_summary_is_bounded_and_strict() -> None:
    head = {"seq": 0, "hash": digest_id(b"h")}
    too_many = {peer_id_for_key(i.to_bytes(4, "big")): head for i in range(MAX_SUMMARY_AUTHORS + 1)}
    with pytest.raises(ProtocolError) as err:
        parse_summary(too_many)
    assert err.value.code == "bad_sync"
    logs = {IDS[0]: full_log(0, 2), IDS[1]: full_log(1, 1)}
    assert parse_summary(summary_to_json(summarize(logs))) == summarize(logs)


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 6), min_size=3, max_size=3),
    have_a=st.lists(st.integers(0, 6), min_size=3, max_size=3),
    have_b=st.lists(st.integers(0, 6), min_size=3, max_size=3),
    limit=st.integers(1, 8),
)
def test_two_peers_converge_whatever_each_holds(
    lengths: list[int], have_a: list[int], have_b: list[int], limit: int
) -> None:
    full = [full_log(i, n) for i, n in enumerate(lengths)]
    a = {IDS[i]: prefix(full[i], min(h, lengths[i])) for i, h in enumerate(have_a)}
    b = {IDS[i]: prefix(full[i], min(h, lengths[i])) for i, h in enumerate(have_b)}
    for _ in range(50):
        to_b = reconcile(a, summarize(b), limit=limit)
        apply(b, to_b.send)
        to_a = reconcile(b, summarize(a), limit=limit)
        apply(a, to_a.send)
        assert not to_b.forks
        assert not to_a.forks
        if to_b.complete and to_a.complete and not to_b.send and not to_a.send:
            break
    else:
        pytest.fail("sync did not finish")
    # Both end with the longest prefix either side held of every author.
    expected: dict[str, Head] = {}
    for i, log in enumerate(full):
        held = min(max(have_a[i], have_b[i]), lengths[i])
        if held:
            last = log.entries[held - 1]
            expected[log.author] = Head(last.seq, last.hash)
    assert summarize(a) == expected
    assert summarize(b) == expected


@settings(max_examples=30, deadline=None)
@given(split=st.integers(0, 3), extra_a=st.integers(1, 3), extra_b=st.integers(1, 3))
def test_a_forked_author_is_reported_and_never_merged(
    split: int, extra_a: int, extra_b: int
) -> None:
    base = full_log(0, split)
    branch_a, branch_b = prefix(base, split), prefix(base, split)
    grow(branch_a, KEYS[0], extra_a, start=100)
    grow(branch_b, KEYS[0], extra_b, start=200)
    a, b = {IDS[0]: branch_a}, {IDS[0]: branch_b}
    to_b = reconcile(a, summarize(b))
    to_a = reconcile(b, summarize(a))
    reported = to_b.forks + to_a.forks
    assert reported
    assert all(f.seq >= split for f in reported)
    # The evidence sent makes the receiver see the fork itself, with both entries.
    outcomes = []
    for logs, batch in ((b, to_b.send), (a, to_a.send)):
        try:
            apply(logs, batch)
        except ForkError as err:
            outcomes.append(err.fork)
    assert outcomes
    assert all(len(f.evidence) == 2 for f in outcomes)
    assert branch_a.entries[split].hash != branch_b.entries[split].hash
    assert [e.hash for e in branch_a.entries[: split + 1]] != [
        e.hash for e in branch_b.entries[: split + 1]
    ]
