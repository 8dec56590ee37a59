"""Print requirements.txt without the development-only packages of deploy/dev-only.txt.

The container image installs exactly this list with ``pip install --no-deps`` (the file is a
full freeze, so nothing else is needed); tests/test_deploy.py installs the same list into a
fresh virtual environment and runs the image's commands on it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_requirements() -> list[str]:
    dev_lines = (ROOT / "deploy" / "dev-only.txt").read_text().splitlines()
    dev = {canonical(line) for line in dev_lines if line.strip() and not line.startswith("#")}
    out = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if not spec:
            continue
        name = re.split(r"[=<>!~\[; ]", spec, maxsplit=1)[0]
        if canonical(name) not in dev:
            out.append(spec)
    return out


if __name__ == "__main__":
    sys.stdout.write("".join(f"{line}\n" for line in runtime_requirements()))
