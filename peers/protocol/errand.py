"""What a dial is for (docs/protocol.md "Errands"), carried in the DataConnection's PeerJS
metadata: ``{"errand": "content", "manifest": id}`` (to download that manifest from the peer
dialed) or ``{"errand": "dht"}`` (to ask it DHT requests). A node at its maximum still takes
such a connection (:mod:`peers.protocol.mesh`, within its spare) when it holds the manifest
or runs a DHT.

Mirror of static/swarm/protocol/errand.js; shared vectors in tests/vectors/errand.json.
"""

from __future__ import annotations

from dataclasses import dataclass

from .chunks import is_digest_id
from .envelope import JsonObject

ERRAND_CONTENT = "content"
ERRAND_DHT = "dht"


@dataclass(frozen=True, slots=True)
class Errand:
    kind: str  # ERRAND_CONTENT or ERRAND_DHT
    manifest: str | None = None  # the manifest a content errand downloads

    def metadata(self) -> JsonObject:
        """The PeerJS metadata that names this errand (what :func:`errand_of` reads)."""
        if self.kind == ERRAND_CONTENT:
            return {"errand": ERRAND_CONTENT, "manifest": self.manifest}
        return {"errand": self.kind}


DHT_ERRAND = Errand(ERRAND_DHT)


def content_errand(manifest: str) -> Errand:
    return Errand(ERRAND_CONTENT, manifest)


def errand_of(metadata: object) -> Errand | None:
    """The errand a DataConnection's metadata names; anything else (malformed included) is
    None: an ordinary dial."""
    if not isinstance(metadata, dict):
        return None
    kind = metadata.get("errand")
    if kind == ERRAND_DHT and len(metadata) == 1:
        return DHT_ERRAND
    manifest = metadata.get("manifest")
    if kind == ERRAND_CONTENT and len(metadata) == 2 and is_digest_id(manifest):
        assert isinstance(manifest, str)
        return Errand(ERRAND_CONTENT, manifest)
    return None
