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
    """Earlier accesses still visible to later ones, indexed by 1 MiB address bucket.

    A write that covers an earlier access replaces it: later accesses depend on the write, which
    itself waited for the earlier access, so the order is kept transitively.
    """

    _SHIFT = 20

    def __init__(self) -> None:
        self._buckets: dict[tuple[Space, int], list[tuple[Region, int, object]]] = {}

    def _keys(self, r: Region) -> range:
        return range(r.lo_B >> self._SHIFT, ((max(r.hi_B, r.lo_B + 1) - 1) >> self._SHIFT) + 1)

    def add(self, regions: Iterable[Region], seq: int, agent: object) -> tuple[int, ...]:
        """Record access ``seq`` by ``agent``; return the earlier ``seq``s of other agents it waits for."""
        keyed = [(r, [(r.space, b) for b in self._keys(r)]) for r in regions]
        buckets = self._buckets
        deps: set[int] = set()
        for r, keys in keyed:
            lo, hi, write = r.lo_B, r.hi_B, r.write
            for key in keys:
                for prev, j, who in buckets.get(key, ()):
                    if who != agent and (write or prev.write) and prev.lo_B < hi and lo < prev.hi_B:
                        deps.add(j)
        for r, keys in keyed:
            entry = (r, seq, agent)
            for key in keys:
                entries = buckets.get(key)
                if entries is None:
                    buckets[key] = [entry]
                    continue
                if r.write:
                    lo, hi = r.lo_B, r.hi_B
                    entries[:] = [e for e in entries if not (lo <= e[0].lo_B and e[0].hi_B <= hi)]
                entries.append(entry)
        return tuple(sorted(deps))
