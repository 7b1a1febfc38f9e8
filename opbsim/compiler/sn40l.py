"""The SN40L policies: every op on the PCUs as stages of spatial dataflow kernels.

``sn40l`` fuses each decoder layer into one dataflow kernel: its ops, the all-reduces between the
sockets included (a collective on the PCU is a stage that streams over the socket links while the
next block's weights are prefetched), become one kernel, every instruction a pipeline stage, at
most as many stages as the socket has PCUs and PMUs (a longer run is cut into several kernels).
The embedding and the head (final norm, LM head, logits all-gather) are kernels of their own.
``sn40l-unfused`` launches one kernel per operator, as a framework without fusion would: the
instructions of an op split by dependency level and kind (``operators``: attention is three
kernels, a SwiGLU FFN four, each batched over the requests), every collective a kernel of its own,
and every intermediate in HBM. Both launch hardware-orchestrated kernels; ``sn40l-sw`` and
``sn40l-unfused-sw`` the same kernels, issued by the host (software-orchestrated). Every launch
names the tensor-parallel group's sockets (``sync``), which end each kernel together.

Every launch asks for all the socket's PCUs and PMUs; the dataflow model shares them among the
stages, PCUs in proportion to FLOPs and PMUs to bytes (hardware/device_models/dataflow.py). Buffers are
then placed by sn40l_memory.py: streams inside a kernel in SRAM, the rest in HBM with addresses
shared by disjoint lifetimes, spilling to DDR by bandwidth need.
"""

from __future__ import annotations

from dataclasses import replace

from opbsim.compiler.analyze import COLLECTIVE_KINDS
from opbsim.compiler.ir import Analysis, Draft, Kernel, Kernels, LaunchResources, PlacedOp, View
from opbsim.compiler.sn40l_memory import accesses, plan_memory
from opbsim.errors import InputError
from opbsim.hardware.device_models.dataflow import DataflowModel
from opbsim.isa.types import Unit

__all__ = ["SN40L_POLICIES", "FUSERS", "place_sn40l", "group_kernels", "operators"]

def _place(analysis: Analysis) -> tuple[PlacedOp, ...]:
    out = []
    for a in analysis.ops:
        if a.op.kind in COLLECTIVE_KINDS:
            out.append(PlacedOp(a, Unit.PCU, "collective: a dataflow stage streaming over the socket links"))
        else:
            out.append(PlacedOp(a, Unit.PCU, f"dataflow stage(s) at Op/B {a.estimates.op_per_B:.1f}"))
    return tuple(out)


def group_kernels(kernels: tuple[Kernel, ...], *, fused: bool, max_stages: int) -> list[list[Kernel]]:
    """Runs of PCU kernels to launch together: with ``fused``, consecutive kernels of one layer
    (a new layer or another unit ends a run), else each kernel alone; a run is cut so that no
    launch has more than ``max_stages`` instructions. Other units' kernels stay alone."""
    groups: list[list[Kernel]] = []
    for k in kernels:
        last = groups[-1] if groups else None
        joins = (fused and last is not None and last[-1].unit is Unit.PCU and k.unit is Unit.PCU
                 and last[-1].layer == k.layer
                 and sum(len(x.drafts) for x in last) + len(k.drafts) <= max_stages)
        if joins:
            last.append(k)
        else:
            groups.append([k])
    return groups


def _extent(v: View) -> tuple[int, int]:
    last = sum((d - 1) * st for d, st in zip(v.shape, v.strides))
    return v.base_B, v.base_B + (last + 1) * v.dtype.itemsize_B


def _touches(d: Draft) -> list[tuple[str, int, int, bool, bool]]:
    return [(v.buffer, *_extent(v), reads, writes) for v, reads, writes in accesses(d)]


def _depends(later: list, earlier: list) -> bool:
    """Whether an instruction touching ``later`` must follow one touching ``earlier``: both touch
    overlapping bytes of one buffer and one of them writes them."""
    return any(a == b and lo < e_hi and e_lo < hi and (w or e_w)
               for a, lo, hi, _, w in later for b, e_lo, e_hi, _, e_w in earlier)


def operators(kernel: Kernel) -> list[Kernel]:
    """An op's kernel split into one kernel per operator, as a framework without fusion launches
    them: an instruction's level is the highest level among the earlier instructions it depends
    on, plus one where that instruction is of another kind; the instructions of one kind at one
    level form one kernel (the same operator batched over requests, heads or experts). Kernels go
    in order of level, so every dependency is met; each instruction keeps its op's name as note."""
    touches = [_touches(d) for d in kernel.drafts]
    level: list[int] = []
    for i, d in enumerate(kernel.drafts):
        level.append(max((level[j] + (kernel.drafts[j].mnemonic != d.mnemonic) for j in range(i)
                          if _depends(touches[i], touches[j])), default=0))
    groups: dict[tuple[int, str], list[int]] = {}
    for i, d in enumerate(kernel.drafts):
        groups.setdefault((level[i], d.mnemonic), []).append(i)
    if len(groups) == 1:
        return [kernel]
    out, seen = [], {}
    for (_, mnemonic), members in sorted(groups.items(), key=lambda g: (g[0][0], g[1][0])):
        n = seen[mnemonic] = seen.get(mnemonic, 0) + 1
        drafts = tuple(replace(kernel.drafts[i], note=kernel.drafts[i].note or kernel.op) for i in members)
        buffers = {t[0] for i in members for t in touches[i]}
        writes = {t[0] for i in members for t in touches[i] if t[4]}
        name = f"{kernel.op}/{mnemonic}" + (f".{n}" if n > 1 else "")
        out.append(replace(kernel, op=name, drafts=drafts, reads=frozenset(buffers - writes),
                           writes=frozenset(writes)))
    return out


def _chunks(kernel: Kernel, max_stages: int) -> list[Kernel]:
    """A kernel longer than the socket can hold, cut into launches of at most ``max_stages``."""
    if len(kernel.drafts) <= max_stages:
        return [kernel]
    n = -(-len(kernel.drafts) // max_stages)
    return [replace(kernel, op=f"{kernel.op}#{i}", drafts=kernel.drafts[i * max_stages:(i + 1) * max_stages])
            for i in range(n)]


def _merge(group: list[Kernel], resources: LaunchResources) -> Kernel:
    if group[0].unit is not Unit.PCU:
        return group[0]
    name = group[0].op if len(group) == 1 else f"{group[0].op}..{group[-1].op}"
    drafts = tuple(replace(d, note=d.note or k.op) for k in group for d in k.drafts)
    writes = frozenset().union(*(k.writes for k in group))
    reads = frozenset().union(*(k.reads for k in group)) - writes
    return Kernel(name, Unit.PCU, drafts, reads, writes, resources, layer=group[0].layer)


def _fuser(policy: str, *, fused: bool, hw: bool):
    def fuse(kernels: Kernels) -> Kernels:
        device = kernels.placement.target.device
        if not isinstance(device.model, DataflowModel):
            raise InputError(f"policy {policy} needs a device with dataflow parameters; {device.name} has none")
        df = device.model.params
        cap = min(df.pcus, df.pmus)
        ops = kernels.kernels if fused else tuple(o for k in kernels.kernels for o in operators(k))
        split = tuple(c for k in ops for c in _chunks(k, cap))
        tp = kernels.placement.graph.tp
        resources = LaunchResources(pcus=df.pcus, pmus=df.pmus, hw=hw, sync=tp if tp > 1 else 0)
        merged = tuple(_merge(g, resources) for g in group_kernels(split, fused=fused, max_stages=cap))
        return plan_memory(replace(kernels, kernels=merged))
    return fuse


SN40L_POLICIES = {"sn40l": (True, True), "sn40l-unfused": (False, True), "sn40l-sw": (True, False),
                  "sn40l-unfused-sw": (False, False)}
"""policy name -> (fused, hardware-orchestrated)"""

place_sn40l = _place
"""The placement of every SN40L policy (policies.py registers it under each name)."""

FUSERS = {name: _fuser(name, fused=fused, hw=hw) for name, (fused, hw) in SN40L_POLICIES.items()}
"""policy name -> its kernel grouping (fusion.py's table)."""
