"""Data hazards between accesses to byte ranges: who must wait for whom.

Used by the compiler (to place signal/wait tokens between units) and by the timing engine (as the
hardware scoreboard). An access depends on every earlier access of another unit that overlaps it
where at least one of the two writes: read-after-write, write-after-read, write-after-write.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from opbsim.isa.types import Space

__all__ = ["Region", "Scoreboard"]


@dataclass(frozen=True, slots=True)
class Region:
    """A byte range ``[lo_B, hi_B)`` of one space that an access reads or writes."""

    space: Space
    lo_B: int
    hi_B: int
    write: bool


class Scoreboard:
    """Earlier accesses still visible to later ones, per space.

    A write that covers an earlier access replaces it: later accesses depend on the write, which
    itself waited for the earlier access, so the order is kept transitively.
    """

    def __init__(self) -> None:
        self._live: dict[Space, list[tuple[Region, int, object]]] = {}

    def add(self, regions: Iterable[Region], seq: int, agent: object) -> tuple[int, ...]:
        """Record access ``seq`` by ``agent``; return the earlier ``seq``s of other agents it waits for."""
        regions = tuple(regions)
        deps: set[int] = set()
        for r in regions:
            for prev, j, who in self._live.get(r.space, ()):
                if who != agent and (r.write or prev.write) and prev.lo_B < r.hi_B and r.lo_B < prev.hi_B:
                    deps.add(j)
        for r in regions:
            entries = self._live.setdefault(r.space, [])
            if r.write:
                entries[:] = [e for e in entries if not (r.lo_B <= e[0].lo_B and e[0].hi_B <= r.hi_B)]
            entries.append((r, seq, agent))
        return tuple(sorted(deps))
