"""SN40L memory plan: every buffer of a compiled stage placed in SRAM, HBM or DDR.

Rules (after the SN40L paper, arXiv 2405.07518: SRAM, HBM and DDR tiers, as the dataflow device
model's ``tiers`` name them; docs/sn40l.md), over kernels in issue order:
- A buffer's lifetime is the kernels from its first to its last access. A buffer first read
  (weights, KV caches, inputs) or a constant table lives the whole program; a buffer never read
  after its last write is a result and lives to the end, so a caller can read it.
- Tile to SRAM: a buffer written and consumed inside one kernel is a stream between its stages
  and goes to the PMUs (SRAM), after the kernel-local scratch of the lowering; what does not fit
  the SRAM goes to HBM.
- Everything else goes to HBM; buffers with disjoint lifetimes share addresses (first fit,
  largest first). If the HBM footprint exceeds the budget, buffers move to DDR in order of
  increasing bandwidth need (bytes moved / lifetime, the lifetime timed by the analysis' cost
  of its kernels) until it fits.
A buffer read after the run is valid only if it is a result, an input or a constant: transients
may share their addresses with later buffers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from opbsim.compiler.ir import Draft, Kernel, Kernels, View
from opbsim.compiler.layout import ALIGN_B
from opbsim.errors import DoesNotFit, InputError
from opbsim.isa.spec import Role
from opbsim.isa.types import Space

__all__ = ["Lifetime", "accesses", "lifetimes", "plan_memory", "first_fit", "bandwidth_needs"]

_SCRATCH = "scratch"


def _align(n: int) -> int:
    return -(-n // ALIGN_B) * ALIGN_B


@dataclass(frozen=True, slots=True)
class Lifetime:
    """One buffer: ``first``..``last`` kernels it is live in, its size, the bytes its accesses move,
    and whether it is a stream inside one kernel (written first, read later, in that kernel only)."""

    name: str
    first: int
    last: int
    size_B: int
    moved_B: int
    internal: bool


def accesses(d: Draft):
    """(view, reads, writes) for each view operand of a draft."""
    for f, v in zip(d.spec.fields, d.operands):
        if isinstance(v, View):
            yield v, f.role in (Role.IN, Role.INOUT), f.role in (Role.OUT, Role.INOUT)


def _footprint(v: View) -> int:
    n = 1
    for dim in v.shape:
        n *= dim
    return n * v.dtype.itemsize_B


def lifetimes(kernels: Kernels) -> dict[str, Lifetime]:
    """The lifetime of every buffer the kernels touch, by the rules of this module."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    first_reads: dict[str, bool] = {}
    last_write: dict[str, int] = {}
    last_read: dict[str, int] = {}
    moved: dict[str, int] = {}
    step = 0
    for k, kernel in enumerate(kernels.kernels):
        for d in kernel.drafts:
            step += 1
            for v, reads, writes in accesses(d):
                name = v.buffer
                if name not in first:
                    first[name], first_reads[name] = k, reads
                last[name] = k
                moved[name] = moved.get(name, 0) + _footprint(v)
                if reads:
                    last_read[name] = step
                if writes:
                    last_write[name] = step
    end = len(kernels.kernels) - 1
    out = {}
    for name in first:
        if name not in kernels.buffers:
            raise InputError(f"buffer {name} is used by a kernel but has no layout")
        persistent = first_reads[name] or name in kernels.constants
        result = not persistent and last_read.get(name, -1) < last_write.get(name, -1)
        lo, hi = (0, end) if persistent else (first[name], end if result else last[name])
        internal = not persistent and not result and name != _SCRATCH and first[name] == last[name]
        out[name] = Lifetime(name, lo, hi, _align(_footprint(kernels.buffers[name])), moved[name], internal)
    for name, view in kernels.buffers.items():  # laid out but never touched: kept, as an input
        if name not in out:
            out[name] = Lifetime(name, 0, end, _align(_footprint(view)), 0, False)
    return out


def first_fit(items: list[Lifetime]) -> tuple[dict[str, int], int]:
    """Addresses for ``items`` (largest first, each at the lowest address free over its whole
    lifetime) and the footprint, in bytes."""
    placed: list[tuple[int, int, Lifetime]] = []
    where: dict[str, int] = {}
    for it in sorted(items, key=lambda x: (-x.size_B, x.first, x.name)):
        busy = sorted((a, a + p.size_B) for a, _, p in placed if p.first <= it.last and it.first <= p.last)
        addr = 0
        for lo, hi in busy:
            if addr + it.size_B <= lo:
                break
            addr = max(addr, hi)
        placed.append((addr, 0, it))
        where[it.name] = addr
    return where, max((a + p.size_B for a, _, p in placed), default=0)


def _kernel_seconds(kernels: Kernels) -> list[float]:
    """The analysis' estimate of each kernel: the cost of its ops on their units, at least 1 ns."""
    cost = {p.op.name: p.analysis.cost(p.unit).time_s for p in kernels.placement.ops}
    out = []
    for kernel in kernels.kernels:
        ops = {d.note or kernel.op for d in kernel.drafts}
        out.append(max(sum(cost.get(o, 0.0) for o in ops), 1e-9))
    return out


def bandwidth_needs(kernels: Kernels, lives: dict[str, Lifetime]) -> dict[str, float]:
    """Each buffer's bandwidth need, bytes per second: the bytes its accesses move over its
    lifetime, timed by the analysis' cost of its kernels."""
    prefix = [0.0]
    for s in _kernel_seconds(kernels):
        prefix.append(prefix[-1] + s)
    return {n: it.moved_B / (prefix[it.last + 1] - prefix[it.first]) for n, it in lives.items()}


def _spill(items: list[Lifetime], budget_B: int, need: dict[str, float]) -> tuple[list[Lifetime], list[Lifetime]]:
    """(kept in HBM, moved to DDR): the smallest bandwidth need moves first until HBM fits."""
    keep, spilled = list(items), []
    order = sorted(items, key=lambda it: (need[it.name], it.name))
    while first_fit(keep)[1] > budget_B and order:
        victim = order.pop(0)
        keep.remove(victim)
        spilled.append(victim)
    return keep, spilled


def plan_memory(kernels: Kernels, hbm_budget_B: int | None = None) -> Kernels:
    """The kernels with every buffer re-placed by the rules above. ``hbm_budget_B``: HBM the
    plan may use (default: the device's HBM)."""
    device = kernels.placement.target.device
    tiers = device.model.tiers  # SRAM, HBM and DDR on the dataflow model
    lives = lifetimes(kernels)
    sram_B = device.memory(tiers.stream).capacity_B
    budget = device.memory(tiers.main).capacity_B if hbm_budget_B is None else hbm_budget_B
    where: dict[str, tuple[Space, int]] = {}
    scratch = lives.get(_SCRATCH)
    sram_base = 0
    if scratch is not None and scratch.size_B <= sram_B:
        where[_SCRATCH] = (tiers.stream, 0)
        sram_base = scratch.size_B
    used: dict[int, int] = {}
    for it in sorted(lives.values(), key=lambda x: (x.first, x.name)):
        if it.internal and sram_base + used.get(it.first, 0) + it.size_B <= sram_B:
            where[it.name] = (tiers.stream, sram_base + used.get(it.first, 0))
            used[it.first] = used.get(it.first, 0) + it.size_B
    rest = [it for it in lives.values() if it.name not in where]
    keep, spilled = _spill(rest, budget, bandwidth_needs(kernels, lives))
    for space, items in ((tiers.main, keep), (tiers.spill, spilled)):
        addrs, footprint = first_fit(items)
        if footprint > device.memory(space).capacity_B:
            raise DoesNotFit(f"does not fit: the buffers of this stage need {footprint / 2**30:.1f} GiB of "
                             f"{space.name.lower()} on {device.name} "
                             f"({device.memory(space).capacity_B / 2**30:.1f} GiB)")
        where.update((name, (space, a)) for name, a in addrs.items())
    return _relocate(kernels, where)


def _relocate(kernels: Kernels, where: dict[str, tuple[Space, int]]) -> Kernels:
    old = {name: v.base_B for name, v in kernels.buffers.items()}

    def move(v):
        if not isinstance(v, View) or v.buffer not in where:
            return v
        space, base = where[v.buffer]
        return replace(v, space=space, base_B=base + v.base_B - old[v.buffer])

    def kernel(k: Kernel) -> Kernel:
        return replace(k, drafts=tuple(replace(d, operands=tuple(move(v) for v in d.operands)) for d in k.drafts))

    buffers = {name: move(v) for name, v in kernels.buffers.items()}
    constants = {name: (move(v), data) for name, (v, data) in kernels.constants.items()}
    return replace(kernels, kernels=tuple(kernel(k) for k in kernels.kernels), constants=constants, buffers=buffers)
