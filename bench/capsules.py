"""Capsule costs: the publisher's verify-dedupe-sign step and a consumer's verification.

Pure protocol code (no database, no network), so the figures are the CPU floor of a
publishing run and of a client taking a capsule in.

    .venv/bin/python bench/capsules.py [--candidates 300] [--seconds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.common import git_revision, machine
from peers.protocol.capsule import (
    TrustedKey,
    capsule_tickets,
    make_capsule,
    select_tickets,
    verify_capsule,
)
from peers.protocol.encoding import b64url_encode
from peers.protocol.ticket import make_ticket

NOW = 1_900_000_000_000


def key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def rate(fn: object, seconds: float) -> tuple[float, int]:
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()  # type: ignore[operator]
        count += 1
    return (time.perf_counter() - start) / count, count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidates", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    # 200 local tickets and the rest from remotes, a tenth of them duplicates of local peers
    candidates = [
        make_ticket(key(f"b-{i % (args.candidates * 9 // 10)}"), community="main", now=NOW - i)
        for i in range(args.candidates)
    ]
    signer = key("capsule")
    trusted = [TrustedKey(b64url_encode(signer.public_key().public_bytes_raw()))]

    def publish() -> dict[str, object]:
        selection = select_tickets(candidates, community="main", now=NOW)
        return make_capsule(signer, community="main", now=NOW, peers=selection.envelopes)

    capsule = publish()

    def consume() -> int:
        verified = verify_capsule(capsule, trusted=trusted, now=NOW + 1, community="main")
        return len(capsule_tickets(verified, now=NOW + 1).tickets)

    pub_s, pub_n = rate(publish, args.seconds)
    con_s, con_n = rate(consume, args.seconds)
    size = len(str(capsule).encode())
    print(f"machine: {machine()}")
    print(f"revision: {git_revision()}")
    print(f"capsule: {consume()} peers, ~{size / 1024:.0f} KiB as JSON")
    print(
        f"publish (verify {args.candidates} candidates, dedupe, keep 100, sign): "
        f"{pub_s * 1000:.1f} ms per run ({pub_n} runs)"
    )
    print(
        f"consume (verify capsule + re-verify its 100 tickets): "
        f"{con_s * 1000:.1f} ms per capsule ({con_n} runs)"
    )


if __name__ == "__main__":
    main()
