"""What a dial is for (peers/protocol/errand.py) against tests/vectors/errand.json, which
tests/js/errand.test.js checks against static/swarm/protocol/errand.js."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from peers.protocol.errand import DHT_ERRAND, content_errand, errand_of

VECTORS = json.loads((Path(__file__).parent / "vectors" / "errand.json").read_text())


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_errand_of_reads_the_metadata_as_the_vectors_say(case: dict[str, Any]) -> None:
    errand = errand_of(case["metadata"])
    assert (None if errand is None else errand.metadata()) == case["errand"]


def test_the_metadata_of_an_errand_reads_back_as_it() -> None:
    manifest = "M" * 42 + "A"
    assert errand_of(DHT_ERRAND.metadata()) == DHT_ERRAND
    assert errand_of(content_errand(manifest).metadata()) == content_errand(manifest)


def test_the_vectors_cover_both_errands_and_refusals() -> None:
    kinds = {None if c["errand"] is None else c["errand"]["errand"] for c in VECTORS["cases"]}
    assert kinds == {None, "dht", "content"}
