"""The super-peer's configuration, read once from Django settings (docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from peers.peerjs.ice import IceConfig
from peers.peerjs.signaling import ServerAddress
from peers.protocol.ticket import is_valid_community
from peers.protocol.transfer import TransferOptions

# "shard" and "mail": it takes shard_msg and mail frames for peers who are away
# (docs/superpeer.md "Mailboxes"); "signal": it relays signal and reach frames and takes
# connections signaled through the mesh (docs/superpeer.md "Signaling through the mesh").
SUPERPEER_CAPS = ("gossip", "pex", "superpeer", "chunks", "shard", "mail", "signal", "dht")
AGENT = "swarm-superpeer/1"


class ConfigError(ValueError):
    """A setting the super-peer cannot run with (the message names it)."""


def signal_address(url: str, key: str) -> ServerAddress:
    """``http(s)://host:port/path/`` of a PeerJS server -> :class:`ServerAddress`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise ConfigError(f"SWARM_SUPERPEER_SIGNAL_URL: {url!r} is not an http(s) URL")
    secure = parts.scheme in ("https", "wss")
    port = parts.port or (443 if secure else 80)
    return ServerAddress(parts.hostname, port, path=parts.path or "/", key=key, secure=secure)


def door_address(value: str) -> tuple[str, int] | None:
    """``host:port`` (SWARM_SUPERPEER_DOOR) -> (host, port); empty -> None (no door)."""
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"SWARM_SUPERPEER_DOOR: {value!r} is not host:port")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class MailboxLimits:
    """What the mailbox holds (docs/superpeer.md "Mailboxes"): messages live at most
    ``ttl_ms`` (less when their own expiry is sooner); counts per sender (the peer that
    handed them in), per recipient and in all (in the database, shared by the super-peers
    that share it)."""

    ttl_ms: int = 7 * 86_400_000
    per_sender: int = 128
    per_recipient: int = 256
    total: int = 20_000
    upkeep_s: float = 30.0
    # the key directory forgets announcements not heard for this long
    keys_ttl_ms: int = 30 * 86_400_000

    def __post_init__(self) -> None:
        if self.keys_ttl_ms <= 0:
            raise ConfigError("SWARM_SUPERPEER_KEYS_TTL_S must be positive")
        if min(self.ttl_ms, self.per_sender, self.per_recipient, self.total) <= 0:
            raise ConfigError("SWARM_SUPERPEER_MAILBOX_* limits must be positive")
        if self.upkeep_s <= 0:
            raise ConfigError("SWARM_SUPERPEER_MAILBOX_UPKEEP_S must be positive")


@dataclass(frozen=True)
class RepairSettings:
    """Repair by peers on the super-peer (docs/replication.md "Repair by peers"): it
    volunteers with ``slots`` repair fetches at a time and its storage budget left; it
    decides every ``tick_s`` and announces itself every ``announce_s``. ``warmup_ms`` and
    ``worker_grace_ms`` are the core's (``RepairConfig``); tests shorten them."""

    enabled: bool = True
    slots: int = 4
    tick_s: float = 5.0
    announce_s: float = 60.0
    warmup_ms: int = 75_000
    worker_grace_ms: int = 180_000
    target: int = 3  # a manifest's target, as the planner's SWARM_REPLICATION_TARGET

    def __post_init__(self) -> None:
        if not 0 <= self.slots <= 64:
            raise ConfigError("SWARM_SUPERPEER_REPAIR_SLOTS must be in 0..64")
        if self.tick_s <= 0 or self.announce_s <= 0:
            raise ConfigError("SWARM_REPAIR_TICK_S and _ANNOUNCE_S must be positive")
        if self.warmup_ms < 0 or self.worker_grace_ms <= 0:
            raise ConfigError("SWARM_REPAIR_WARMUP_S must be >= 0, _WORKER_GRACE_S positive")
        if not 0 <= self.target <= 32:
            raise ConfigError("SWARM_REPLICATION_TARGET must be in 0..32 for repair by peers")


@dataclass(frozen=True)
class SuperPeerConfig:
    community: str
    signal_url: str
    signal_key: str
    beacon_urls: tuple[str, ...]
    store_dir: Path
    key_path: Path
    storage_bytes: int
    ice: IceConfig = field(default_factory=IceConfig)
    seeds: tuple[str, ...] = ()
    mesh_target: int = 8
    max_connections: int = 64
    max_jobs: int = 4
    announce_s: float = 60.0
    sync_s: float = 10.0
    status_s: float = 5.0
    tick_s: float = 0.25
    ticket_ttl_ms: int = 180_000
    # adverts heard by gossip expire this long after they were issued (the backfill's
    # SWARM_REPLICATION_HOLDING_TTL_S, so both agree on when they are stale)
    gossip_holding_ttl_ms: int = 600_000
    send_buffer: int = 1024 * 1024  # a connection gets chunks while its buffer is below this
    download: TransferOptions = field(default_factory=TransferOptions)
    mailbox: MailboxLimits = field(default_factory=MailboxLimits)
    # hold shares of identities for owners who choose it (docs/superpeer.md "The super-peer
    # as a guardian"); off unless the operator allows it
    guardian: bool = False
    use_channel_layer: bool = True
    # host:port of the door pages reach with the signaling server gone (docs/superpeer.md
    # "The door"); None: no door
    door: tuple[str, int] | None = None
    repair: RepairSettings = field(default_factory=RepairSettings)

    def __post_init__(self) -> None:
        if not is_valid_community(self.community):
            raise ConfigError(f"SWARM_SUPERPEER_COMMUNITY: {self.community!r} is not valid")
        if self.storage_bytes <= 0:
            raise ConfigError("SWARM_SUPERPEER_STORAGE_BYTES must be positive")
        signal_address(self.signal_url, self.signal_key)

    @property
    def signal(self) -> ServerAddress:
        return signal_address(self.signal_url, self.signal_key)

    @classmethod
    def from_settings(cls, settings: Any) -> SuperPeerConfig:
        layers = getattr(settings, "CHANNEL_LAYERS", {})
        backend = layers.get("default", {}).get("BACKEND", "")
        return cls(
            community=settings.SWARM_SUPERPEER_COMMUNITY,
            signal_url=settings.SWARM_SUPERPEER_SIGNAL_URL,
            signal_key=settings.SWARM_SIGNAL_KEY,
            beacon_urls=tuple(u for u in settings.SWARM_SUPERPEER_BEACON_URLS if u),
            store_dir=Path(settings.SWARM_SUPERPEER_STORE_DIR),
            key_path=Path(settings.VAR_DIR) / "keys" / "superpeer.pem",
            storage_bytes=settings.SWARM_SUPERPEER_STORAGE_BYTES,
            ice=IceConfig.from_settings(
                settings.SWARM_SUPERPEER_ICE_SERVERS,
                settings.SWARM_SUPERPEER_HOST_ADDRESSES,
                getattr(settings, "SWARM_TURN_URLS", ()),
                getattr(settings, "SWARM_TURN_SECRET", ""),
                getattr(settings, "SWARM_TURN_TTL_S", 3600),
                getattr(settings, "SWARM_SUPERPEER_ICE_TRANSPORT_POLICY", "all"),
            ),
            seeds=tuple(settings.SWARM_SUPERPEER_SEEDS),
            mesh_target=settings.SWARM_SUPERPEER_MESH_TARGET,
            max_connections=settings.SWARM_SUPERPEER_MAX_CONNECTIONS,
            max_jobs=settings.SWARM_SUPERPEER_MAX_JOBS,
            announce_s=settings.SWARM_SUPERPEER_ANNOUNCE_S,
            sync_s=settings.SWARM_SUPERPEER_SYNC_S,
            status_s=settings.SWARM_SUPERPEER_STATUS_S,
            send_buffer=settings.SWARM_SUPERPEER_SEND_BUFFER_BYTES,
            gossip_holding_ttl_ms=max(1, int(settings.SWARM_REPLICATION_HOLDING_TTL_S * 1000)),
            download=TransferOptions(
                request_timeout_ms=int(settings.SWARM_SUPERPEER_REQUEST_TIMEOUT_S * 1000)
            ),
            mailbox=MailboxLimits(
                ttl_ms=settings.SWARM_SUPERPEER_MAILBOX_TTL_S * 1000,
                per_sender=settings.SWARM_SUPERPEER_MAILBOX_PER_SENDER,
                per_recipient=settings.SWARM_SUPERPEER_MAILBOX_PER_RECIPIENT,
                total=settings.SWARM_SUPERPEER_MAILBOX_TOTAL,
                upkeep_s=settings.SWARM_SUPERPEER_MAILBOX_UPKEEP_S,
                keys_ttl_ms=settings.SWARM_SUPERPEER_KEYS_TTL_S * 1000,
            ),
            guardian=settings.SWARM_SUPERPEER_GUARDIAN,
            door=door_address(getattr(settings, "SWARM_SUPERPEER_DOOR", "")),
            repair=RepairSettings(
                enabled=settings.SWARM_SUPERPEER_REPAIR,
                slots=settings.SWARM_SUPERPEER_REPAIR_SLOTS,
                tick_s=settings.SWARM_REPAIR_TICK_S,
                announce_s=settings.SWARM_REPAIR_ANNOUNCE_S,
                warmup_ms=int(settings.SWARM_REPAIR_WARMUP_S * 1000),
                worker_grace_ms=int(settings.SWARM_REPAIR_WORKER_GRACE_S * 1000),
                target=min(32, settings.SWARM_REPLICATION_TARGET),
            ),
            # The in-process layer cannot reach another process: sync from the database only.
            use_channel_layer="InMemory" not in backend,
        )
