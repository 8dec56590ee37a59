"""tests/vectors/wire.json is current and means what it says to Python's msgpack.

The browser checks the vectors with node --test (tests/js/wire.test.js); the Python wire
codec checks them in its own tests. Here: the generator is deterministic and every valid
vector unpacks (with Python's msgpack) to exactly its stated value.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import msgpack
import pytest

from tests.support.wire_vectors import ROOT, VECTORS, frame_bytes, native


def test_wire_vectors_are_what_the_generator_writes() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/make_wire_vectors.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_valid_vector_unpacks_to_its_value(case: dict[str, Any]) -> None:
    value = msgpack.unpackb(frame_bytes(case), raw=False, strict_map_key=True)
    assert value == native(case["frame"])
    if case.get("canonical", True):
        assert msgpack.packb(value, use_bin_type=True) == frame_bytes(case)


@pytest.mark.parametrize(
    "case",
    [c for c in VECTORS["invalid"] if c["error"] == "bad_msgpack"],
    ids=lambda c: c["name"],
)
def test_bad_msgpack_vector_does_not_unpack(case: dict[str, Any]) -> None:
    with pytest.raises((ValueError, msgpack.UnpackException)):
        msgpack.unpackb(frame_bytes(case), raw=False)


def test_oversized_vector_is_one_byte_over_the_limit() -> None:
    [case] = [c for c in VECTORS["invalid"] if c["error"] == "frame_too_large"]
    assert len(frame_bytes(case)) == VECTORS["max_frame_bytes"] + 1
