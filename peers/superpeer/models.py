"""What super-peers hold and are asked to hold (docs/superpeer.md "Database").

Chunks live on disk (``$SWARM_VAR_DIR/chunks``); the database keeps verified manifests,
each super-peer's holdings and status, the pins (what to keep) and the fetch jobs with
their progress, and verified post entries. Several super-peers may share one database:
rows that belong to one say whose they are by peer id.
"""

from __future__ import annotations

from django.db import models


class SuperPeer(models.Model):
    """One super-peer process identity and its latest status (written by the process)."""

    RUNNING = "running"
    STOPPED = "stopped"
    STATES = [(RUNNING, "running"), (STOPPED, "stopped")]

    peer_id = models.CharField(max_length=33, unique=True)
    community = models.CharField(max_length=63)
    state = models.CharField(max_length=8, choices=STATES, default=STOPPED)
    agent = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    storage_budget = models.BigIntegerField(default=0, help_text="quota in bytes")
    storage_used = models.BigIntegerField(default=0, help_text="bytes of chunks on disk")
    pinned_bytes = models.BigIntegerField(default=0)
    chunk_count = models.IntegerField(default=0)
    connections = models.JSONField(default=list, blank=True, help_text="open peer connections")
    stats = models.JSONField(default=dict, blank=True)
    last_scan = models.JSONField(default=dict, blank=True, help_text="store scan at start")

    class Meta:
        ordering = ["peer_id"]
        verbose_name = "super-peer"

    def __str__(self) -> str:
        return self.peer_id


class FileManifest(models.Model):
    """A verified file manifest (the signed envelope and its fields)."""

    manifest_id = models.CharField(max_length=43, unique=True)
    envelope = models.JSONField()
    file_id = models.CharField(max_length=22)
    name = models.CharField(max_length=255)
    mime = models.CharField(max_length=129)
    size = models.BigIntegerField()
    chunk_count = models.IntegerField()
    author = models.CharField(max_length=33, db_index=True)
    created_at_ms = models.BigIntegerField()
    first_seen = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-first_seen"]
        verbose_name = "file manifest"

    def __str__(self) -> str:
        return f"{self.name} ({self.manifest_id[:10]})"

    @property
    def stored_size(self) -> int:
        """Bytes of a full copy in a store: the ciphertext, 16 bytes of tag per chunk."""
        return self.size + 16 * self.chunk_count


class Holding(models.Model):
    """What one super-peer stores of one manifest."""

    superpeer = models.ForeignKey(SuperPeer, on_delete=models.CASCADE, related_name="holdings")
    manifest = models.ForeignKey(FileManifest, on_delete=models.CASCADE, related_name="holdings")
    chunks_held = models.IntegerField(default=0)
    bytes_held = models.BigIntegerField(default=0)
    complete = models.BooleanField(default=False)
    pinned = models.BooleanField(default=False)
    stored_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-stored_at"]
        constraints = [
            models.UniqueConstraint(fields=["superpeer", "manifest"], name="one_holding")
        ]

    def __str__(self) -> str:
        return f"{self.manifest} on {self.superpeer}"


class Pin(models.Model):
    """A request to keep a manifest: on one super-peer, or on every one (``peer_id`` empty)."""

    ADMIN = "admin"
    REPLICATION = "replication"
    API = "api"
    SOURCES = [(ADMIN, "admin"), (REPLICATION, "replication"), (API, "api")]

    manifest_id = models.CharField(max_length=43)
    peer_id = models.CharField(max_length=33, blank=True, help_text="empty = every super-peer")
    source = models.CharField(max_length=16, choices=SOURCES, default=ADMIN)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["manifest_id", "peer_id"], name="one_pin")]

    def __str__(self) -> str:
        return f"pin {self.manifest_id[:10]} on {self.peer_id or 'every super-peer'}"


class FetchJob(models.Model):
    """Fetching a manifest into a super-peer: for a pin, or a replication job."""

    PIN = "pin"
    REPLICATION = "replication"
    KINDS = [(PIN, "pin"), (REPLICATION, "replication")]
    QUEUED = "queued"
    FETCHING = "fetching"
    WAITING = "waiting"  # no holder reachable yet
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    STATES = [
        (QUEUED, "queued"),
        (FETCHING, "fetching"),
        (WAITING, "waiting for a holder"),
        (DONE, "done"),
        (FAILED, "failed"),
        (CANCELLED, "cancelled"),
    ]
    ACTIVE = (QUEUED, FETCHING, WAITING)

    job_id = models.CharField(max_length=96, unique=True)
    kind = models.CharField(max_length=12, choices=KINDS)
    peer_id = models.CharField(max_length=33, db_index=True, help_text="the fetching super-peer")
    manifest_id = models.CharField(max_length=43)
    state = models.CharField(max_length=10, choices=STATES, default=QUEUED)
    chunks_total = models.IntegerField(default=0)
    chunks_done = models.IntegerField(default=0)
    sources = models.JSONField(default=list, blank=True)
    failed_sources = models.JSONField(default=list, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    attempt = models.IntegerField(default=1)
    deadline_ms = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-updated_at"]
        verbose_name = "fetch job"

    def __str__(self) -> str:
        return self.job_id

    @property
    def progress(self) -> str:
        if not self.chunks_total:
            return "manifest?" if self.state in self.ACTIVE else "-"
        percent = 100 * self.chunks_done // self.chunks_total
        return f"{self.chunks_done}/{self.chunks_total} ({percent}%)"


class Post(models.Model):
    """A verified post entry (``swarm/post/v1``) held for the swarm."""

    entry_hash = models.CharField(max_length=43, unique=True)
    author = models.CharField(max_length=33)
    seq = models.BigIntegerField()
    kind = models.CharField(max_length=8)
    envelope = models.JSONField()
    created_at_ms = models.BigIntegerField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["author", "seq"]
        constraints = [models.UniqueConstraint(fields=["author", "seq"], name="one_entry_per_seq")]

    def __str__(self) -> str:
        return f"{self.author}#{self.seq}"


class MailboxMessage(models.Model):
    """A signed envelope held for a peer who is away (docs/superpeer.md "Mailboxes").

    Only verified envelopes are stored; the super-peer sees the recipient, the sender, the
    size and what the signed body says in clear (shares themselves are sealed). Super-peers
    that share a database share one mailbox: whichever the recipient connects to delivers.
    """

    SHARD = "shard"  # one swarm/shard/v1 message (frame shard_msg)
    MAIL = "mail"  # one swarm/mail/v1 mail (frame mail): kept until its recipient acks it
    ACK = "ack"  # one swarm/mail/v1 ack for the mails' sender (frame mail)
    KINDS = [(SHARD, "shard message"), (MAIL, "mail"), (ACK, "mail ack")]

    kind = models.CharField(max_length=16, choices=KINDS, default=SHARD)
    recipient = models.CharField(max_length=33, db_index=True)
    sender = models.CharField(max_length=33, db_index=True, help_text="the peer that handed it in")
    signer = models.CharField(max_length=33, help_text="the peer id that signed the envelope")
    message_id = models.CharField(
        max_length=43, help_text="a mail's id; else base64url SHA-256 of the envelope's JCS"
    )
    envelope = models.JSONField()
    size = models.IntegerField(help_text="bytes of canonical JSON")
    received_by = models.CharField(max_length=33, blank=True, help_text="the super-peer")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "mailbox message"
        constraints = [
            # A mail's id is its sender's choice: one sender cannot take another's id.
            models.UniqueConstraint(
                fields=["recipient", "signer", "message_id"], name="one_message_per_signer"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.message_id[:10]} for {self.recipient}"


class KeyAnnouncement(models.Model):
    """The newest verified X25519 key announcement (``swarm/xkey/v1``) heard of one peer,
    kept so a super-peer can answer ``xkey-req`` for a peer that is away (docs/superpeer.md
    "Key directory"). Shared by the super-peers that share the database."""

    peer_id = models.CharField(max_length=33, unique=True)
    envelope = models.JSONField()
    created_at_ms = models.BigIntegerField(help_text="the announcement's created_at")
    heard_at = models.DateTimeField(db_index=True, help_text="last heard (rows not heard expire)")

    class Meta:
        ordering = ["peer_id"]
        verbose_name = "key announcement"

    def __str__(self) -> str:
        return f"X25519 key of {self.peer_id}"


class GuardianState(models.Model):
    """A super-peer's guardian store (shares it holds for owners), as its snapshot
    (docs/superpeer.md "The super-peer as a guardian"); the shares are sealed to it."""

    peer_id = models.CharField(max_length=33, unique=True)
    snapshot = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "guardian store"

    def __str__(self) -> str:
        return f"guardian store of {self.peer_id}"


class GuardianRequest(models.Model):
    """A recovery request for an owner a super-peer guards, for the operator to decide.

    The super-peer writes it (with the verification code the owner reads out); the admin
    sets ``decision``; the super-peer applies it at its next sync and writes ``state``."""

    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"
    STATES = [(PENDING, "pending"), (APPROVED, "approved"), (REFUSED, "refused")]
    APPROVE = "approve"
    REFUSE = "refuse"
    DECISIONS = [("", "none"), (APPROVE, "approve"), (REFUSE, "refuse")]

    guardian = models.CharField(max_length=33, db_index=True, help_text="the super-peer")
    request_id = models.CharField(max_length=43)
    for_peer = models.CharField(max_length=33, help_text="the identity to recover")
    temp = models.CharField(max_length=33, help_text="the new device's temporary identity")
    code = models.CharField(max_length=8, help_text="the verification code")
    conflict = models.BooleanField(default=False, help_text="another request shows this code")
    state = models.CharField(max_length=8, choices=STATES, default=PENDING)
    decision = models.CharField(max_length=8, choices=DECISIONS, blank=True)
    error = models.CharField(max_length=200, blank=True, help_text="why a decision failed")
    received_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at"]
        verbose_name = "recovery request"
        constraints = [
            models.UniqueConstraint(fields=["guardian", "request_id"], name="one_request_each")
        ]

    def __str__(self) -> str:
        return f"recovery of {self.for_peer} ({self.code})"
