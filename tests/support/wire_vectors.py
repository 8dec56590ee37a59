"""tests/vectors/wire.json and its JSON spelling of binary values, for the wire tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VECTORS: dict[str, Any] = json.loads((ROOT / "tests" / "vectors" / "wire.json").read_text())


def frame_bytes(case: dict[str, Any]) -> bytes:
    """A case's frame: its hex, then zero bytes up to ``pad_to``."""
    data = bytes.fromhex(case["hex"])
    return data + bytes(case.get("pad_to", len(data)) - len(data))


def native(value: Any) -> Any:
    """A vector value with {"$bin": hex} and {"$zeros": n} turned into bytes."""
    if isinstance(value, list):
        return [native(v) for v in value]
    if isinstance(value, dict):
        if "$bin" in value:
            return bytes.fromhex(value["$bin"])
        if "$zeros" in value:
            return bytes(value["$zeros"])
        return {k: native(v) for k, v in value.items()}
    return value
