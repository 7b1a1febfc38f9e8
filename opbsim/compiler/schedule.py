"""Pass 4, schedule: kernels in issue order with the tokens that order them across units.

Units run their own queues in order, so only cross-unit hazards need tokens. Each directed pair
of units (P, C) has one counting token: P signals it after every kernel a C kernel depends on;
before such a C kernel, C waits until it has consumed as many signals as the producer's ordinal,
which is exactly "the producer and everything P ran before it are done". Kernels on different
units with no hazard between them (prefill attention on the xPU, decode attention on PIM; experts
split between the two) are free to overlap.
"""

from __future__ import annotations

import functools

from opbsim.compiler.ir import Kernel, Kernels, Schedule, Step, View
from opbsim.isa.hazards import Region, Scoreboard
from opbsim.isa.types import Unit

__all__ = ["schedule", "token_of", "regions_of_kernel"]


def token_of(producer: Unit, consumer: Unit) -> int:
    return int(producer) * 8 + int(consumer)


def _region(view: View, write: bool) -> Region:
    last = sum((d - 1) * s for d, s in zip(view.shape, view.strides))
    return Region(view.space, view.base_B, view.base_B + (last + 1) * view.dtype.itemsize_B, write)


def regions_of_kernel(kernel: Kernel) -> list[Region]:
    """The byte ranges a kernel reads and writes, overlapping ranges of one kind merged."""
    spans: dict[tuple, list[tuple[int, int]]] = {}
    for d in kernel.drafts:
        for v, written in zip(d.operands, _roles(d.mnemonic)):
            if isinstance(v, View):
                r = _region(v, written)
                spans.setdefault((r.space, r.write), []).append((r.lo_B, r.hi_B))
    out = []
    for (space, write), ranges in spans.items():
        ranges.sort()
        lo, hi = ranges[0]
        for a, b in ranges[1:]:
            if a > hi:
                out.append(Region(space, lo, hi, write))
                lo, hi = a, b
            else:
                hi = max(hi, b)
        out.append(Region(space, lo, hi, write))
    return out


@functools.cache
def _roles(mnemonic: str) -> tuple[bool, ...]:
    from opbsim.isa.spec import BY_MNEMONIC, Role

    return tuple(f.role in (Role.OUT, Role.INOUT) for f in BY_MNEMONIC[mnemonic].fields)


def _latest_per_unit(ks: tuple[Kernel, ...], deps: tuple[int, ...]) -> tuple[int, ...]:
    """Only the latest producer on each unit matters: the unit ran the others before it."""
    latest: dict[Unit, int] = {}
    for p in deps:
        latest[ks[p].unit] = max(latest.get(ks[p].unit, p), p)
    return tuple(sorted(latest.values()))


def schedule(kernels: Kernels) -> Schedule:
    ks = kernels.kernels
    board = Scoreboard()
    deps = [_latest_per_unit(ks, board.add(regions_of_kernel(k), i, k.unit)) for i, k in enumerate(ks)]
    signals: list[set[Unit]] = [set() for _ in ks]  # consumer units each kernel must signal
    for i, k in enumerate(ks):
        for p in deps[i]:
            signals[p].add(k.unit)
    ordinal: dict[int, dict[Unit, int]] = {}
    sent: dict[tuple[Unit, Unit], int] = {}
    consumed: dict[tuple[Unit, Unit], int] = {}
    steps = []
    for i, k in enumerate(ks):
        waits = []
        for p in deps[i]:
            pair = (ks[p].unit, k.unit)
            need = ordinal[p][k.unit]
            if need > consumed.get(pair, 0):
                waits.extend([(ks[p].unit, token_of(*pair))] * (need - consumed.get(pair, 0)))
                consumed[pair] = need
        ordinal[i] = {}
        for c in sorted(signals[i]):
            pair = (k.unit, c)
            sent[pair] = sent.get(pair, 0) + 1
            ordinal[i][c] = sent[pair]
        steps.append(Step(k, tuple(waits), tuple(token_of(k.unit, c) for c in sorted(signals[i]))))
    return Schedule(kernels, tuple(steps))
