"""Content crypto throughput in Python: what the super-peer spends per byte it serves.

Seals a 64 MiB file into 64 KiB AES-256-GCM chunks and hashes each (the sender's work),
then checks each chunk id and opens it (the receiver's work), through the public API of
peers/protocol/chunks.py; the bare AES-GCM and SHA-256 rates are printed next to it.

    .venv/bin/python bench/content_crypto.py [--mib 64] [--repeat 3]

The browser figures come from bench/content_crypto.mjs (WebCrypto in Node).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench.common import git_revision, machine
from peers.protocol.chunks import (
    CHUNK_SIZE,
    check_chunk_id,
    decrypt_chunk,
    digest_id,
    encrypt_chunk,
    new_file_id,
    new_file_key,
)


def best_rate(label: str, size: int, repeat: int, work: object) -> float:
    assert callable(work)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    rate = size / best / 1e6
    print(f"  {label:<34} {rate:8.1f} MB/s  ({best * 1000:.0f} ms for {size / 2**20:.0f} MiB)")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    size = args.mib * 2**20
    data = os.urandom(size)
    plains = [data[i : i + CHUNK_SIZE] for i in range(0, size, CHUNK_SIZE)]
    key, file_id = new_file_key(), new_file_id()
    sealed = [encrypt_chunk(key, file_id, i, p) for i, p in enumerate(plains)]
    ids = [digest_id(c) for c in sealed]
    print(f"content crypto, Python ({machine()}, rev {git_revision()})")
    print(f"  {len(plains)} chunks of {CHUNK_SIZE} bytes, best of {args.repeat}")

    def encrypt_and_hash() -> None:
        for i, plain in enumerate(plains):
            digest_id(encrypt_chunk(key, file_id, i, plain))

    def verify_and_decrypt() -> None:
        for i, chunk in enumerate(sealed):
            check_chunk_id(ids[i], chunk)
            decrypt_chunk(key, file_id, i, chunk)

    aes = AESGCM(key)
    nonce = bytes(12)

    def bare_aes() -> None:
        for plain in plains:
            aes.encrypt(nonce, plain, None)

    def bare_sha256() -> None:
        for chunk in sealed:
            hashlib.sha256(chunk).digest()

    best_rate("encrypt + hash (sender)", size, args.repeat, encrypt_and_hash)
    best_rate("verify id + decrypt (receiver)", size, args.repeat, verify_and_decrypt)
    best_rate("bare AES-256-GCM encrypt", size, args.repeat, bare_aes)
    best_rate("bare SHA-256", size, args.repeat, bare_sha256)


if __name__ == "__main__":
    main()
