"""Which package may import which: the contracts in pyproject.toml, checked by
``lint-imports`` (import-linter) in ``make lint``. The tree keeps them all, and each one
breaks on the import it forbids (shown on a copy of the tree, one import added at a time)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("beacon", "ops", "page", "peers", "shared", "swarmweb")

LAYERS = "Layers: project wiring, the page, the apps, operations, shared helpers, the protocol"
BEACON_NOT_PEERS = "beacon/ uses nothing of peers/ but the protocol"
PEERS_NOT_BEACON = "peers/ uses nothing of beacon/"
PURE_PROTOCOL = "The protocol is pure: no Django, no IO frameworks"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache", "--no-logo"],
        cwd=root,
        # Wide enough that no contract name is wrapped in the report.
        env={**os.environ, "PYTHONPATH": str(root), "COLUMNS": "240"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("tree")
    shutil.copy(ROOT / "pyproject.toml", copy)
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package,
            copy / package,
            ignore=shutil.ignore_patterns("__pycache__", "static", "templates"),
        )
    return copy


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    for contract in (LAYERS, BEACON_NOT_PEERS, PEERS_NOT_BEACON, PURE_PROTOCOL):
        assert f"{contract} KEPT" in result.stdout


@pytest.mark.parametrize(
    ("module", "added", "contract", "reported"),
    [
        (
            "peers/signaling/node.py",
            "from beacon import selectors",
            PEERS_NOT_BEACON,
            "peers.signaling.node -> beacon.selectors",
        ),
        (
            "peers/superpeer/db.py",
            "def late() -> None:\n    from beacon.models import Community",
            PEERS_NOT_BEACON,
            "peers.superpeer.db -> beacon.models",
        ),
        (
            "beacon/capsules.py",
            "from peers.superpeer import services",
            BEACON_NOT_PEERS,
            "beacon.capsules -> peers.superpeer.services",
        ),
        (
            "ops/alerts.py",
            "from beacon import selectors",
            LAYERS,
            "ops.alerts -> beacon.selectors",
        ),
        (
            "shared/clock.py",
            "from ops import metrics",
            LAYERS,
            "shared.clock -> ops.metrics",
        ),
        (
            "beacon/views.py",
            "from page import views",
            LAYERS,
            "beacon.views -> page.views",
        ),
        (
            "peers/protocol/ticket.py",
            "from django.conf import settings",
            PURE_PROTOCOL,
            "peers.protocol.ticket -> django",
        ),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tree: Path, module: str, added: str, contract: str, reported: str
) -> None:
    path = tree / module
    original = path.read_text()
    path.write_text(f"{original}\n\n{added}\n")
    try:
        result = lint_imports(tree)
    finally:
        path.write_text(original)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{contract} BROKEN" in result.stdout
    assert reported in result.stdout
