"""Which way a dial goes while the signaling server is up: through the server, or through
the mesh when the mesh has been faster (docs/protocol.md "The path of a dial").

Sans-IO and deterministic (no clock, no randomness), with a JS twin
(static/swarm/protocol/dialpath.js) and shared vectors (tests/vectors/dialpath.json). The
adapter asks :meth:`DialPaths.choose` before each dial and reports how long the dial took
to open its data channel, or that it failed (:meth:`DialPaths.record`).

- Server down: the mesh (the adapter dials through it only when a neighbour relays).
- Server up, no known route to the peer through the mesh (no neighbour's ``reach`` lists
  it, no learned route): the server. A flooded offer is not worth it while the server is up.
- Server up and a route known: while either path has fewer than ``min_samples`` results,
  the one with fewer goes first (the server on a tie): the choice needs both figures. Then
  the mesh when its moving average is below the server's by more than ``margin_pct``
  percent, else the server; and every ``explore_every``-th dial with a route takes the
  other path, so that a figure gone stale (a slower server, a relay that left) is renewed.
- The moving average: ``avg += (ms - avg) / 4`` per result (the first result sets it). A
  failed dial counts as ``fail_ms``, what an unanswered dial costs before it is given up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .errors import ProtocolError

Path = Literal["server", "mesh"]
SERVER: Path = "server"
MESH: Path = "mesh"
PATHS: tuple[Path, Path] = (SERVER, MESH)

BAD_PATH = "bad_path"
BAD_DURATION = "bad_duration"
MAX_DIAL_MS = 600_000  # a result longer than this is not a dial time


@dataclass(frozen=True, slots=True)
class DialPathConfig:
    min_samples: int = 3
    margin_pct: int = 10
    explore_every: int = 16
    fail_ms: int = 20_000


@dataclass(slots=True)
class PathFigures:
    samples: int = 0  # results recorded (failures included)
    failures: int = 0
    avg_ms: float = 0.0  # the moving average (0 until the first result)
    chosen: int = 0  # dials with a route sent this way while the server was up

    def data(self) -> dict[str, float | int]:
        return {
            "samples": self.samples,
            "failures": self.failures,
            "avg_ms": round(self.avg_ms, 1),
            "chosen": self.chosen,
        }


@dataclass(slots=True)
class DialPaths:
    config: DialPathConfig = field(default_factory=DialPathConfig)
    figures: dict[str, PathFigures] = field(
        default_factory=lambda: {path: PathFigures() for path in PATHS}
    )
    routed: int = 0  # dials with the server up and a route known

    def faster(self) -> Path:
        """The path with the better figures (the server unless the mesh wins by the margin)."""
        server, mesh = self.figures[SERVER], self.figures[MESH]
        if server.samples == 0 or mesh.samples == 0:
            return SERVER
        cut = server.avg_ms * (100 - self.config.margin_pct) / 100
        return MESH if mesh.avg_ms < cut else SERVER

    def choose(self, *, server_up: bool, route_known: bool) -> Path:
        if not server_up:
            return MESH
        if not route_known:
            return SERVER
        self.routed += 1
        server, mesh = self.figures[SERVER], self.figures[MESH]
        low = self.config.min_samples
        if server.samples < low or mesh.samples < low:
            path = MESH if mesh.samples < server.samples else SERVER
        else:
            path = self.faster()
            if self.routed % self.config.explore_every == 0:
                path = MESH if path == SERVER else SERVER
        self.figures[path].chosen += 1
        return path

    def record(self, path: str, ms: int | None) -> None:
        """A dial through ``path`` opened after ``ms`` milliseconds, or failed (None)."""
        if path not in PATHS:
            raise ProtocolError(BAD_PATH, f"no dial path {path!r}")
        if ms is not None and (
            not isinstance(ms, int) or isinstance(ms, bool) or not 0 <= ms <= MAX_DIAL_MS
        ):
            raise ProtocolError(BAD_DURATION, "a dial time is whole milliseconds, 0..600000")
        figures = self.figures[path]
        value = self.config.fail_ms if ms is None else ms
        if ms is None:
            figures.failures += 1
        if figures.samples == 0:
            figures.avg_ms = float(value)
        else:
            figures.avg_ms += (value - figures.avg_ms) / 4
        figures.samples += 1

    def data(self) -> dict[str, object]:
        """For status and diagnostics."""
        return {
            "server": self.figures[SERVER].data(),
            "mesh": self.figures[MESH].data(),
            "routed": self.routed,
            "faster": self.faster(),
        }
