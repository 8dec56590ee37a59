"""Per-author post logs: chain checks, fork detection and reconciliation (docs/protocol.md "Posts").

A log holds an author's entries ``seq = 0, 1, 2, ...`` with no gaps, each ``prev`` being the
hash of the entry before. Two different entries with one author and seq are a fork: the
first one seen is kept and the pair is reported, as proof signed by the author. Peers sync
by exchanging summaries (author -> head seq and hash) and sending what the other lacks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .chunks import is_digest_id
from .encoding import PEER_ID_RE
from .envelope import JsonObject
from .errors import BAD_POST, BAD_SYNC, BROKEN_CHAIN, FORK, GAP, ProtocolError
from .posts import KIND_DELETE, KIND_EDIT, KIND_POST, PostEntry, make_post, verify_post

MAX_SUMMARY_AUTHORS = 1024
MAX_SYNC_ENTRIES = 256


@dataclass(frozen=True, slots=True)
class Head:
    """The last entry of a log: its seq and hash."""

    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class Fork:
    """Two entries of ``author`` at ``seq``: ``hashes`` = (ours, theirs).

    ``evidence`` holds the signed entries known here: both when a conflicting entry arrived,
    only ours when the other side's summary disagreed.
    """

    author: str
    seq: int
    hashes: tuple[str, str]
    evidence: tuple[JsonObject, ...]


class ForkError(ProtocolError):
    def __init__(self, fork: Fork) -> None:
        super().__init__(FORK, f"{fork.author} signed two entries at seq {fork.seq}")
        self.fork = fork


@dataclass(frozen=True, slots=True)
class PostView:
    """A post as shown: the latest edit applied; ``id`` is the hash of the original post."""

    id: str
    author: str
    seq: int
    created_at: int
    edited_at: int | None
    text: str
    attachments: tuple[str, ...]
    name: str


class AuthorLog:
    """One author's verified entries, contiguous from seq 0."""

    def __init__(self, author: str) -> None:
        if not PEER_ID_RE.fullmatch(author):
            raise ProtocolError(BAD_POST, "author is not a key-bound peer id")
        self.author = author
        self._entries: list[PostEntry] = []
        self._by_hash: dict[str, PostEntry] = {}
        self._deleted: set[str] = set()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def head(self) -> Head | None:
        if not self._entries:
            return None
        last = self._entries[-1]
        return Head(seq=last.seq, hash=last.hash)

    @property
    def entries(self) -> Sequence[PostEntry]:
        return tuple(self._entries)

    def entry_at(self, seq: int) -> PostEntry:
        return self._entries[seq]

    def entries_from(self, seq: int) -> list[PostEntry]:
        return self._entries[max(seq, 0) :]

    def append(self, entry: PostEntry) -> bool:
        """Add the next entry; False if it is already here.

        Raises ``gap`` (entries before it are missing: sync from ``len(log)``), ``fork``
        (:class:`ForkError`), ``broken_chain`` or ``bad_post`` (edit/delete of a non-post).
        """
        if entry.author != self.author:
            raise ProtocolError(BAD_POST, "entry belongs to another author's log")
        count = len(self._entries)
        if entry.seq < count:
            ours = self._entries[entry.seq]
            if ours.hash == entry.hash:
                return False
            raise ForkError(
                Fork(
                    author=self.author,
                    seq=entry.seq,
                    hashes=(ours.hash, entry.hash),
                    evidence=(ours.envelope, entry.envelope),
                )
            )
        if entry.seq > count:
            raise ProtocolError(GAP, f"seq {entry.seq} but the log has entries 0..{count - 1}")
        previous = self._entries[-1] if self._entries else None
        if entry.prev != (previous.hash if previous else None):
            raise ProtocolError(BROKEN_CHAIN, f"prev of seq {entry.seq} is not the entry before")
        if previous is not None and entry.created_at < previous.created_at:
            raise ProtocolError(BROKEN_CHAIN, f"seq {entry.seq} is older than the entry before")
        if entry.kind != KIND_POST:
            target = self._by_hash.get(entry.target or "")
            if target is None or target.kind != KIND_POST:
                raise ProtocolError(BAD_POST, f"{entry.kind} target is not a post of this log")
            if target.hash in self._deleted:
                raise ProtocolError(BAD_POST, f"{entry.kind} target is already deleted")
            if entry.kind == KIND_DELETE:
                self._deleted.add(target.hash)
        self._entries.append(entry)
        self._by_hash[entry.hash] = entry
        return True

    def posts(self) -> list[PostView]:
        """Visible posts in log order, with edits applied and deleted posts left out."""
        views: dict[str, PostView] = {}
        for entry in self._entries:
            if entry.kind == KIND_POST:
                views[entry.hash] = PostView(
                    id=entry.hash,
                    author=entry.author,
                    seq=entry.seq,
                    created_at=entry.created_at,
                    edited_at=None,
                    text=entry.text,
                    attachments=entry.attachments,
                    name=entry.name,
                )
            elif entry.kind == KIND_EDIT and entry.target in views:
                old = views[entry.target]
                views[entry.target] = PostView(
                    id=old.id,
                    author=old.author,
                    seq=old.seq,
                    created_at=old.created_at,
                    edited_at=entry.created_at,
                    text=entry.text,
                    attachments=entry.attachments,
                    name=entry.name,
                )
            elif entry.kind == KIND_DELETE:
                views.pop(entry.target or "", None)
        return list(views.values())


def verify_log(envelopes: Iterable[object], *, now: int | None = None) -> AuthorLog:
    """Verify a whole log given in seq order from seq 0 (every entry, then the chain)."""
    log: AuthorLog | None = None
    for envelope in envelopes:
        entry = verify_post(envelope, now=now)
        log = log or AuthorLog(entry.author)
        if not log.append(entry):
            raise ProtocolError(BROKEN_CHAIN, f"seq {entry.seq} appears twice")
    if log is None:
        raise ProtocolError(BAD_POST, "a log has at least one entry")
    return log


def next_post(
    log: AuthorLog,
    private_key: Ed25519PrivateKey,
    *,
    now: int,
    kind: str = KIND_POST,
    text: str = "",
    target: str | None = None,
    attachments: Sequence[str] = (),
    name: str = "",
) -> JsonObject:
    """Sign the entry that extends ``log`` (created_at never goes back in time)."""
    last = log.entry_at(len(log) - 1) if len(log) else None
    return make_post(
        private_key,
        seq=len(log),
        prev=last.hash if last else None,
        created_at=max(now, last.created_at) if last else now,
        kind=kind,
        text=text,
        target=target,
        attachments=attachments,
        name=name,
    )


def summarize(logs: Mapping[str, AuthorLog]) -> dict[str, Head]:
    """Author -> head of every non-empty log."""
    return {author: log.head for author, log in sorted(logs.items()) if log.head is not None}


def summary_to_json(summary: Mapping[str, Head]) -> JsonObject:
    return {author: {"seq": head.seq, "hash": head.hash} for author, head in summary.items()}


def parse_summary(value: object) -> dict[str, Head]:
    """A summary received from another peer; ``bad_sync`` when malformed or too large."""
    if not isinstance(value, dict):
        raise ProtocolError(BAD_SYNC, "summary must be a JSON object")
    if len(value) > MAX_SUMMARY_AUTHORS:
        raise ProtocolError(BAD_SYNC, f"summary lists more than {MAX_SUMMARY_AUTHORS} authors")
    out: dict[str, Head] = {}
    for author, head in value.items():
        if not isinstance(author, str) or not PEER_ID_RE.fullmatch(author):
            raise ProtocolError(BAD_SYNC, "summary keys are key-bound peer ids")
        if not isinstance(head, dict) or set(head) != {"seq", "hash"}:
            raise ProtocolError(BAD_SYNC, f"summary of {author} must be {{seq, hash}}")
        seq = head["seq"]
        if type(seq) is not int or seq < 0 or not is_digest_id(head["hash"]):
            raise ProtocolError(BAD_SYNC, f"summary of {author} has a bad seq or hash")
        out[author] = Head(seq=seq, hash=head["hash"])
    return out


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What to send the other side, forks seen, and where they are ahead (author -> from seq)."""

    send: list[JsonObject]
    forks: list[Fork]
    want: dict[str, int]
    complete: bool


def reconcile(
    mine: Mapping[str, AuthorLog],
    theirs: Mapping[str, Head],
    *,
    limit: int = MAX_SYNC_ENTRIES,
) -> Reconciliation:
    """Entries the other side lacks, given its summary, in author then seq order.

    When their head disagrees with our entry at that seq, it is a fork: our entry is sent
    as evidence instead of the rest of the log. ``complete`` is False when ``limit`` cut the
    list short; the other side summarises again after applying and asks for more.
    """
    send: list[JsonObject] = []
    forks: list[Fork] = []
    want: dict[str, int] = {}
    complete = True
    for author in sorted(set(mine) | set(theirs)):
        log = mine.get(author)
        have = len(log) if log is not None else 0
        head = theirs.get(author)
        if head is not None and head.seq >= have:
            want[author] = have  # they hold more: ask from our next seq
            continue
        if log is None:
            continue
        if head is None:
            pending = log.entries_from(0)
        elif log.entry_at(head.seq).hash == head.hash:
            pending = log.entries_from(head.seq + 1)
        else:
            ours = log.entry_at(head.seq)
            forks.append(
                Fork(
                    author=author,
                    seq=head.seq,
                    hashes=(ours.hash, head.hash),
                    evidence=(ours.envelope,),
                )
            )
            pending = [ours]
        for entry in pending:
            if len(send) >= limit:
                complete = False
                break
            send.append(entry.envelope)
    return Reconciliation(send=send, forks=forks, want=want, complete=complete)
