"""The ``dataflow`` device model (SN40L): a ``launch.pcu`` is a spatial pipeline whose stages are its body
instructions, streaming tiles from HBM and DDR through PMUs (SN40L paper,
arXiv 2405.07518; docs/sn40l.md).

The plan of one kernel of S stages on a device of this model (``DataflowParams``):
- stage i needs c_i seconds of the whole socket's compute and moves b_i bytes (``KernelStage``);
- the launch's ``pcus`` are shared in proportion to c_i and its ``pmus`` in proportion to b_i
  (largest remainder, at least one each to every stage that computes / moves bytes);
- stage i then takes s_i = max(c_i * P / p_i, b_i / (m_i * pmu_GBps)) over the whole kernel
  (P: the socket's PCUs; p_i, m_i: its shares);
- the bottleneck T = max(max_i s_i, each channel's bytes / its bandwidth (the HBM stream, the DDR
  stream, the PMU fabric), the collectives' transfers / link bandwidth (the network));
- the kernel streams n tiles, each crossing the S stages; per tile the bottleneck takes T / n.
  Filling and draining the pipeline leaves stages idle: one tile's work of every stage,
  sum_i s_i / n, is not overlapped (the HBM and DDR streams are, as each stage prefetches its
  next tiles into its double-buffered PMUs). Each tile also pays h, a stage's hand-over
  (``hop_cycles``), at the n tiles' pace and once per stage: (n + S - 1) h;
- tiles: at least n_min = max_i ceil(2 b_i / (m_i * pmu_B)), so a tile of every stage fits its
  PMUs twice; the kernel runs n = max(n_min, round(sqrt(sum_i s_i / h))), the count that
  minimises fill, drain and hand-overs;
- a collective stage (an all-reduce streamed between the sockets) puts its transfer in T and its
  step latencies once on the pipeline's critical path: a tile crosses it before the stages after
  it can start (the weights they stream are prefetched meanwhile);
- the kernel boundary, part by part (``DataflowParams``):
  memory latency: 2 * ``memory_latency_ns`` when the kernel touches HBM or DDR (its first tile
  waits for a read, a dependent kernel for its last write);
  orchestration: hardware, ``hw_launch_us`` and, when ``sync`` > 1 sockets end the kernel
  together, a barrier over their links (the collective model's time for a 4-byte all-reduce);
  software, ``sync`` x ``host_launch_us`` (the host issues to each socket in turn) and
  ``host_sync_us`` (it waits for them all);
  configuration: (pcus + pmus) * ``config_B_per_unit`` at ``config_GBps``; software-orchestrated
  it is loaded before the kernel, hardware-orchestrated it is prefetched while the previous kernel
  runs and only what outlasts it is exposed, the previous kernel taken to last at least this one's
  other boundary costs;
- time = boundary + sum_i s_i / n + (n + S - 1) h + collective latencies + T.

The engine (emulator/kernel_models.py) pays everything but T as the fixed cost and streams the kernel's
bytes no faster than max_i s_i, sharing each channel with other streams, so a kernel alone on the
socket takes exactly the time above and never beats its roofline bound max(FLOPs / peak,
bytes / bandwidth): some stage has at most its FLOP share of the PCUs.

Memory and store semantics: the PCUs have no kernel-local scratch (every intermediate is a buffer
the memory plan places); buffers stream through SRAM (the PMUs) inside a kernel, live in HBM, and
spill to DDR by bandwidth need (compiler/sn40l_memory.py). Its devices run the ``sn40l`` policy
(compiler/sn40l.py); collectives may run on the PCUs, as stages streaming over the socket links.
Its knobs: every ``DataflowParams`` field, by name (``--hw hop_cycles=64``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from opbsim.errors import InputError
from opbsim.hardware.collectives import Collective, Plan, plan
from opbsim.hardware.device_model import DeviceModel, KernelCost, KernelStage, MemoryTiers
from opbsim.hardware.interconnect import Interconnect
from opbsim.hardware.params import HwParam
from opbsim.isa.program import Instruction
from opbsim.isa.types import Space, Unit

if TYPE_CHECKING:
    from opbsim.hardware.spec import DeviceSpec

__all__ = ["BOUNDARY_PARTS", "DataflowModel", "DataflowParams", "DataflowPlan", "plan_kernel", "share_units",
           "barrier_s"]


def _positive(**values: float) -> None:
    for name, value in values.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise InputError(f"dataflow: {name} must be a positive number, got {value!r}")


def _non_negative(**values: float) -> None:
    for name, value in values.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise InputError(f"dataflow: {name} must be a non-negative number, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DataflowParams:
    """The spatial-dataflow parameters of a device whose PCU runs fused kernels (SN40L).

    A kernel's stages share ``pcus`` pattern compute units and ``pmus`` pattern memory units of
    ``pmu_B`` bytes each, every PMU streaming ``pmu_GBps``. A tile crossing one stage costs
    ``hop_cycles`` at ``clock_MHz`` beyond its work.

    What a kernel boundary costs, part by part (``plan_kernel`` below):
    - ``memory_latency_ns``: an off-chip (HBM, DDR) access; a kernel's first tile waits for one
      read and its last result for one write before a dependent kernel may read it;
    - ``config_B_per_unit`` bytes of configuration per PCU and PMU the kernel uses, loaded at
      ``config_GBps`` before it runs;
    - orchestration: hardware-orchestrated, the on-chip sequencer dispatches the kernel in
      ``hw_launch_us``, prefetches its configuration while the previous kernel runs, and the
      sockets of a tensor-parallel group meet at a barrier over their links; software-orchestrated,
      the host issues the kernel to each socket in turn (``host_launch_us`` each), loads its
      configuration first, and waits for every socket to finish (``host_sync_us``).
    """

    pcus: int
    pmus: int
    pmu_B: int
    pmu_GBps: float
    clock_MHz: float
    hop_cycles: float
    memory_latency_ns: float
    config_B_per_unit: int
    config_GBps: float
    hw_launch_us: float
    host_launch_us: float
    host_sync_us: float

    def __post_init__(self) -> None:
        _positive(pcus=self.pcus, pmus=self.pmus, pmu_B=self.pmu_B, pmu_GBps=self.pmu_GBps,
                  clock_MHz=self.clock_MHz, config_GBps=self.config_GBps)
        _non_negative(hop_cycles=self.hop_cycles, memory_latency_ns=self.memory_latency_ns,
                      config_B_per_unit=self.config_B_per_unit, hw_launch_us=self.hw_launch_us,
                      host_launch_us=self.host_launch_us, host_sync_us=self.host_sync_us)
        for name in ("pcus", "pmus", "pmu_B", "config_B_per_unit"):
            if not isinstance(getattr(self, name), int):
                raise InputError(f"dataflow: {name} must be an integer, got {getattr(self, name)!r}")

    @property
    def hop_s(self) -> float:
        return self.hop_cycles / (self.clock_MHz * 1e6)

    def config_s(self, units: int) -> float:
        """Time to load the configuration of ``units`` PCUs and PMUs."""
        return units * self.config_B_per_unit / (self.config_GBps * 1e9)


BOUNDARY_PARTS = ("launch", "barrier", "configuration", "memory latency", "fill and drain", "collective latency")
"""The parts of a kernel's fixed cost, in the order ``DataflowPlan.boundary`` gives them."""


@dataclass(frozen=True, slots=True)
class DataflowPlan:
    """One dataflow kernel as the model sees it. Per stage: ``compute_s`` (at the whole socket),
    ``bytes_B``, ``pcus``, ``pmus`` and ``stage_s`` (over the whole kernel at its shares).
    ``bottleneck_s`` is T and ``bound`` what sets it ("stage i", a channel name, or "link").
    The boundary parts, in seconds: ``launch_s`` (orchestration: the sequencer's dispatch, or the
    host's issue to every socket), ``barrier_s`` (the sockets' barrier, or the host's completion
    wait), ``config_s`` (exposed configuration load), ``memory_latency_s``, ``fill_drain_s`` and
    ``hand_over_s`` (the pipeline's fill and drain), ``collective_s`` (collective latencies)."""

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
    barrier_s: float
    config_s: float
    memory_latency_s: float
    fill_drain_s: float
    hand_over_s: float
    collective_s: float
    hbm_B: int

    @property
    def slowest_stage_s(self) -> float:
        return max(self.stage_s, default=0.0)

    @property
    def boundary(self) -> dict[str, float]:
        """The fixed cost by part (``BOUNDARY_PARTS``), in seconds."""
        return dict(zip(BOUNDARY_PARTS, (self.launch_s, self.barrier_s, self.config_s, self.memory_latency_s,
                                         self.fill_drain_s + self.hand_over_s, self.collective_s)))

    @property
    def fixed_s(self) -> float:
        return sum(self.boundary.values())

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


def _dataflow(device: DeviceSpec) -> DataflowParams:
    if not isinstance(device.model, DataflowModel):
        raise InputError(f"device {device.name} has no dataflow parameters for a pcu kernel")
    return device.model.params


def plan_kernel(device: DeviceSpec, launch: Instruction, works: Sequence[KernelStage]) -> DataflowPlan:
    """The plan of the kernel ``launch`` whose stages are ``works`` (one per body instruction)."""
    df = _dataflow(device)
    pcus, pmus, hw = int(launch["pcus"]), int(launch["pmus"]), bool(launch["hw"])
    if not 1 <= pcus <= df.pcus or not 1 <= pmus <= df.pmus:
        raise InputError(f"launch.pcu asks for pcus={pcus}, pmus={pmus}; device {device.name} has "
                         f"1..{df.pcus} pcus and 1..{df.pmus} pmus")
    stage_compute = tuple(w.compute_s for w in works)
    stage_bytes = tuple(w.total_B for w in works)
    p = share_units(stage_compute, pcus, "pcus")
    m = share_units(stage_bytes, pmus, "pmus")
    pmu_Bps = df.pmu_GBps * 1e9
    stage_s = tuple(max(c * df.pcus / p_i if c else 0.0, b / (m_i * pmu_Bps) if b else 0.0)
                    for c, b, p_i, m_i in zip(stage_compute, stage_bytes, p, m))
    bounds = [(s, f"stage {i}") for i, s in enumerate(stage_s)]
    total = _merge(works)
    for channel, n in sorted(device.channel_bytes(launch.unit, total.bytes_by_space).items()):
        bounds.append((n / (device.channel_bw_GBps(channel) * 1e9), channel))
    plans = [w.link for w in works if w.link is not None]
    if plans:
        bounds.append((sum(q.transfer_s for q in plans), "link"))
    bottleneck, bound = max(bounds, key=lambda x: x[0], default=(0.0, "nothing"))
    S = len(works)
    min_tiles = max((math.ceil(2 * b / (m_i * df.pmu_B)) for b, m_i in zip(stage_bytes, m) if b), default=1)
    h, idle = df.hop_s, sum(stage_s)
    tiles = max(min_tiles, round(math.sqrt(idle / h)) if h > 0 else min_tiles, 1)
    if h <= 0 and idle > 0:
        raise InputError(f"device {device.name}: a dataflow kernel needs hop_cycles > 0 to choose its tiles")
    by_space = dict(total.bytes_by_space)
    off_chip = by_space.get(Space.HBM, 0) + by_space.get(Space.DDR, 0)
    sockets = int(launch["sync"])
    fill, hops = idle / tiles, (tiles + S - 1) * h
    memory, collectives = (2 * df.memory_latency_ns * 1e-9 if off_chip else 0.0), sum(q.latency_s for q in plans)
    if hw:
        launch_s, barrier = df.hw_launch_us * 1e-6, barrier_s(device, sockets)
        hidden = launch_s + barrier + memory + fill + hops + collectives
        config = max(df.config_s(pcus + pmus) - hidden, 0.0)
    else:
        launch_s, barrier = max(sockets, 1) * df.host_launch_us * 1e-6, df.host_sync_us * 1e-6
        config = df.config_s(pcus + pmus)
    return DataflowPlan(
        stages=S, compute_s=stage_compute, bytes_B=stage_bytes, pcus=p, pmus=m, stage_s=stage_s,
        bottleneck_s=bottleneck, bound=bound, tiles=tiles, min_tiles=min_tiles, launch_s=launch_s,
        barrier_s=barrier, config_s=config, memory_latency_s=memory, fill_drain_s=fill, hand_over_s=hops,
        collective_s=collectives, hbm_B=by_space.get(Space.HBM, 0),
    )


_FLAG_B = 4  # a barrier: an all-reduce of one fp32 flag


def barrier_s(device: DeviceSpec, sockets: int) -> float:
    """A barrier across ``sockets`` devices over their links: the collective model's time for an
    all-reduce of a 4-byte flag (0 for one socket)."""
    if sockets < 2:
        return 0.0
    return _barrier_plan(device.interconnect, sockets).time_s


@functools.lru_cache(maxsize=256)
def _barrier_plan(ic: Interconnect, sockets: int) -> Plan:
    return plan(ic, Collective.ALLREDUCE, _FLAG_B, sockets)


def _merge(works: Sequence[KernelStage]) -> KernelStage:
    by_space: dict[Space, int] = {}
    for w in works:
        for space, n in w.bytes_by_space:
            by_space[space] = by_space.get(space, 0) + n
    return KernelStage(compute_s=sum(w.compute_s for w in works), bytes_by_space=tuple(sorted(by_space.items())))


_KNOB_DOCS = {
    "pcus": "pattern compute units per socket", "pmus": "pattern memory units per socket",
    "pmu_B": "bytes of one PMU", "pmu_GBps": "bandwidth of one PMU, GB/s", "clock_MHz": "PCU clock, MHz",
    "hop_cycles": "a tile's hand-over between two stages, cycles",
    "memory_latency_ns": "an off-chip (HBM, DDR) access, ns",
    "config_B_per_unit": "configuration per PCU or PMU, bytes",
    "config_GBps": "configuration load bandwidth, GB/s", "hw_launch_us": "sequencer dispatch of a kernel, us",
    "host_launch_us": "host issue of a kernel to one socket, us", "host_sync_us": "host completion wait, us",
}


def _knob(name: str) -> HwParam:
    def apply(spec: DeviceSpec, value: float) -> DeviceSpec:
        params = spec.model.params
        if isinstance(getattr(params, name), int) and float(value).is_integer():
            value = int(value)
        return replace(spec, model=replace(spec.model, params=replace(params, **{name: value})))
    return HwParam(name, f"dataflow: {_KNOB_DOCS[name]}", apply, lambda spec: getattr(spec.model.params, name))


@dataclass(frozen=True, slots=True)
class DataflowModel(DeviceModel):
    """PCUs running spatial dataflow kernels with ``params``; every launch on a PCU is one kernel."""

    params: DataflowParams

    name = "dataflow"
    default_policy = "sn40l"
    needs = (Unit.PCU,)
    collective_units = (Unit.DMA, Unit.PCU)
    tiers = MemoryTiers(main=Space.HBM, stream=Space.SRAM, spill=Space.DDR)
    fuses_ops = True

    def check(self, device: DeviceSpec) -> None:
        if not isinstance(self.params, DataflowParams):
            raise InputError(f"device {device.name}: device model dataflow needs dataflow parameters")
        if Unit.PCU not in {u.unit for u in device.units}:
            raise InputError(f"device {device.name}: dataflow parameters need a pcu unit")

    def scratch_is_buffer(self, unit: Unit) -> bool:
        return unit is Unit.PCU

    def times_launch(self, unit: Unit) -> bool:
        return unit is Unit.PCU

    def kernel_cost(self, device: DeviceSpec, launch: Instruction, stages: tuple[KernelStage, ...]) -> KernelCost:
        """The engine's view of ``plan_kernel``: fixed costs, and the slowest stage as the least
        streaming time."""
        plan_ = plan_kernel(device, launch, stages)
        return KernelCost(plan_.fixed_s, plan_.slowest_stage_s)

    def knobs(self) -> dict[str, HwParam]:
        return {name: _knob(name) for name in _KNOB_DOCS}
