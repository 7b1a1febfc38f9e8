"""SN40L dataflow kernels: a ``launch.pcu`` is a spatial pipeline whose stages are its body
instructions, streaming tiles from HBM and DDR through PMUs (DEVICES.md "SN40L").

The plan of one kernel of S stages on a device with ``dataflow`` parameters:
- stage i needs c_i seconds of the whole socket's compute (work.compute_s) and moves b_i bytes;
- the launch's ``pcus`` are shared in proportion to c_i and its ``pmus`` in proportion to b_i
  (largest remainder, at least one each to every stage that computes / moves bytes);
- stage i then takes s_i = max(c_i * P / p_i, b_i / (m_i * pmu_GBps)) over the whole kernel
  (P: the socket's PCUs; p_i, m_i: its shares);
- the bottleneck T = max(max_i s_i, each channel's bytes / its bandwidth (the HBM stream, the DDR
  stream, the PMU fabric), link bytes / link bandwidth (the network));
- the kernel streams n tiles, each crossing the S stages; per tile the bottleneck takes T / n.
  Filling and draining the pipeline leaves stages idle: one tile's work of every stage,
  sum_i s_i / n, is not overlapped (the HBM and DDR streams are, as each stage prefetches its
  next tiles into its double-buffered PMUs). Each tile also pays h, a stage's hand-over
  (``hop_cycles``), at the n tiles' pace and once per stage: (n + S - 1) h;
- tiles: at least n_min = max_i ceil(2 b_i / (m_i * pmu_B)), so a tile of every stage fits its
  PMUs twice; the kernel runs n = max(n_min, round(sqrt(sum_i s_i / h))), the count that
  minimises fill, drain and hand-overs;
- time = launch + sum_i s_i / n + (n + S - 1) h + T.

The engine (kernel_models.py) pays the launch, fill, drain and hand-overs as the fixed cost and
streams the kernel's bytes no faster than max_i s_i, sharing each channel with other streams, so a
kernel alone on the socket takes exactly the time above and never beats its roofline bound
max(FLOPs / peak, bytes / bandwidth): some stage has at most its FLOP share of the PCUs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from opbsim.emulator.kernel_models import KernelCost, register_kernel_model
from opbsim.emulator.work import Work, channel_bytes, compute_s, link_s
from opbsim.errors import InputError
from opbsim.hardware.spec import DataflowSpec, DeviceSpec
from opbsim.isa.program import Instruction
from opbsim.isa.types import Space, Unit

__all__ = ["DataflowPlan", "plan_kernel", "share_units", "dataflow_kernel"]


@dataclass(frozen=True, slots=True)
class DataflowPlan:
    """One dataflow kernel as the model sees it. Per stage: ``compute_s`` (at the whole socket),
    ``bytes_B``, ``pcus``, ``pmus`` and ``stage_s`` (over the whole kernel at its shares).
    ``bottleneck_s`` is T and ``bound`` what sets it ("stage i", a channel name, or "link")."""

    stages: int
    compute_s: tuple[float, ...]
    bytes_B: tuple[int, ...]
    pcus: tuple[int, ...]
    pmus: tuple[int, ...]
    stage_s: tuple[float, ...]
    bottleneck_s: float
    bound: str
    tiles: int
    min_tiles: int
    launch_s: float
    fill_drain_s: float
    hand_over_s: float
    hbm_B: int

    @property
    def slowest_stage_s(self) -> float:
        return max(self.stage_s, default=0.0)

    @property
    def fixed_s(self) -> float:
        return self.launch_s + self.fill_drain_s + self.hand_over_s

    @property
    def time_s(self) -> float:
        """The kernel's time alone on the socket: fixed costs plus the bottleneck stream."""
        return self.fixed_s + self.bottleneck_s


def share_units(weights: Sequence[float], total: int, what: str) -> tuple[int, ...]:
    """``total`` units shared in proportion to ``weights``: one to each positive weight first, the
    rest by largest remainder (ties to the earlier stage); a zero weight gets none.

    The shares sum to ``total`` when any weight is positive, so some stage's share of the units
    is at most its share of the weight.
    """
    positive = [i for i, w in enumerate(weights) if w > 0]
    if len(positive) > total:
        raise InputError(f"a dataflow kernel of {len(positive)} stages that need {what} has only {total} {what}")
    out = [0] * len(weights)
    if not positive:
        return tuple(out)
    for i in positive:
        out[i] = 1
    spare = total - len(positive)
    weight = sum(weights[i] for i in positive)
    quota = {i: spare * weights[i] / weight for i in positive}
    for i in positive:
        out[i] += int(quota[i])
    left = total - sum(out)
    for i in sorted(positive, key=lambda i: (-(quota[i] - int(quota[i])), i))[:left]:
        out[i] += 1
    return tuple(out)


def _dataflow(device: DeviceSpec) -> DataflowSpec:
    if device.dataflow is None:
        raise InputError(f"device {device.name} has no dataflow parameters for a pcu kernel")
    return device.dataflow


def plan_kernel(device: DeviceSpec, launch: Instruction, works: Sequence[Work]) -> DataflowPlan:
    """The plan of the kernel ``launch`` whose stages do ``works`` (one per body instruction)."""
    df = _dataflow(device)
    pcus, pmus, hw = int(launch["pcus"]), int(launch["pmus"]), bool(launch["hw"])
    if not 1 <= pcus <= df.pcus or not 1 <= pmus <= df.pmus:
        raise InputError(f"launch.pcu asks for pcus={pcus}, pmus={pmus}; device {device.name} has "
                         f"1..{df.pcus} pcus and 1..{df.pmus} pmus")
    stage_compute = tuple(compute_s(device, launch, w) for w in works)
    stage_bytes = tuple(w.total_B for w in works)
    p = share_units(stage_compute, pcus, "pcus")
    m = share_units(stage_bytes, pmus, "pmus")
    pmu_Bps = df.pmu_GBps * 1e9
    stage_s = tuple(max(c * df.pcus / p_i if c else 0.0, b / (m_i * pmu_Bps) if b else 0.0)
                    for c, b, p_i, m_i in zip(stage_compute, stage_bytes, p, m))
    bounds = [(s, f"stage {i}") for i, s in enumerate(stage_s)]
    total = _merge(works)
    for channel, n in sorted(channel_bytes(device, launch, total).items()):
        bounds.append((n / (device.channel_bw_GBps(channel) * 1e9), channel))
    link = sum(link_s(device, w) for w in works)
    if link:
        bounds.append((link, "link"))
    bottleneck, bound = max(bounds, key=lambda x: x[0], default=(0.0, "nothing"))
    S = len(works)
    min_tiles = max((math.ceil(2 * b / (m_i * df.pmu_B)) for b, m_i in zip(stage_bytes, m) if b), default=1)
    h, idle = df.hop_s, sum(stage_s)
    tiles = max(min_tiles, round(math.sqrt(idle / h)) if h > 0 else min_tiles, 1)
    if h <= 0 and idle > 0:
        raise InputError(f"device {device.name}: a dataflow kernel needs hop_cycles > 0 to choose its tiles")
    return DataflowPlan(
        stages=S, compute_s=stage_compute, bytes_B=stage_bytes, pcus=p, pmus=m, stage_s=stage_s,
        bottleneck_s=bottleneck, bound=bound, tiles=tiles, min_tiles=min_tiles, launch_s=df.launch_s(hw),
        fill_drain_s=idle / tiles, hand_over_s=(tiles + S - 1) * h,
        hbm_B=dict(total.bytes_by_space).get(Space.HBM, 0),
    )


def _merge(works: Sequence[Work]) -> Work:
    by_space: dict[Space, int] = {}
    for w in works:
        for space, n in w.bytes_by_space:
            by_space[space] = by_space.get(space, 0) + n
    return Work(matrix_flops=sum(w.matrix_flops for w in works), vector_flops=sum(w.vector_flops for w in works),
                bytes_by_space=tuple(sorted(by_space.items())))


def dataflow_kernel(device: DeviceSpec, launch: Instruction, body: tuple[Instruction, ...],
                    works: tuple[Work, ...]) -> KernelCost:
    """The engine's view of ``plan_kernel``: fixed costs, and the slowest stage as the least
    streaming time."""
    plan = plan_kernel(device, launch, works)
    return KernelCost(plan.fixed_s, plan.slowest_stage_s)


register_kernel_model(Unit.PCU, dataflow_kernel)
