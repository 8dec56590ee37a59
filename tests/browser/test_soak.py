"""The short soak (bench/soak.py) in `make test`: the whole `make run` process set (web,
worker, beat, super-peer under honcho, embedded default) driven by Chromium pages through
the real UI, one round of each size and disturbance (a reload mid-download, the only
holder leaving and coming back, two rounds at once, pages closing with and without a
goodbye). Every download must complete with the sharer's SHA-256. Figures are printed, not
asserted (the long soak is a benchmark: docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.live import ROOT

pytestmark = [pytest.mark.live]

ROUNDS = 8


def test_short_soak_on_the_make_run_stack_completes_every_download(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    command = [sys.executable, "bench/soak.py", "--rounds", str(ROUNDS), "--seed", "3"]
    proc = subprocess.run(
        [*command, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(proc.stdout[-6000:], proc.stderr[-3000:])
    assert out.exists(), "the soak did not finish"
    result = json.loads(out.read_text())
    downloads = result["downloads"]
    assert len(downloads) >= ROUNDS
    failures = [
        (d["round"], d["outcome"], d["reason"], (d["diagnostics"] or [])[:10])
        for d in downloads
        if d["outcome"] != "complete"
    ]
    assert failures == []
    events = {e for d in downloads for e in d["events"]}
    assert {"reload", "holder_left", "parallel"} <= events
    assert proc.returncode == 0
