"""What a program contains: instructions per group and unit, and the bytes its views span."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from opbsim.isa.program import Program
from opbsim.isa.types import OpGroup, Space, Unit

__all__ = ["ProgramSummary", "summarize"]


@dataclass(frozen=True, slots=True)
class ProgramSummary:
    """Counts of a program. ``span_B`` per space is the byte range its descriptors cover there
    (from the lowest base to the highest end), an upper bound on the memory the program touches."""

    instructions: int
    descriptors: int
    by_group: tuple[tuple[OpGroup, int], ...]
    by_unit: tuple[tuple[Unit, int], ...]
    span_B: tuple[tuple[Space, int], ...]


def summarize(program: Program) -> ProgramSummary:
    groups = Counter(inst.spec.group for inst in program.instructions)
    units = Counter(inst.unit for inst in program.instructions)
    lo: dict[Space, int] = {}
    hi: dict[Space, int] = {}
    for d in program.descriptors:
        lo[d.space] = min(lo.get(d.space, d.base_B), d.base_B)
        hi[d.space] = max(hi.get(d.space, 0), d.base_B + d.extent_B)
    return ProgramSummary(
        instructions=len(program.instructions),
        descriptors=len(program.descriptors),
        by_group=tuple((g, groups[g]) for g in OpGroup if groups[g]),
        by_unit=tuple((u, units[u]) for u in Unit if units[u]),
        span_B=tuple((s, hi[s] - lo[s]) for s in Space if s in lo),
    )
