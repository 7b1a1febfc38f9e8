"""The collective model held against published nccl-tests measurements, and the sensitivity of a
serving stage to the collective assumptions.

Every measured row (nccl_published.py) is an nccl-tests result (out-of-place time and bus
bandwidth) on 8 GPUs of one node; ours is the NCCL library model (links.py: NCCL's own cost
constants, no custom all-reduce, since nccl-tests runs NCCL) on the matching preset. A row is within
tolerance when ours / published bus bandwidth is in 1 +- TOLERANCE. Nothing here is fitted to the
measurements: the model's constants come from NCCL's source and the datasheets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from opbsim.hardware.collectives import Collective, Plan, bus_factor, candidates, plan
from opbsim.hardware.interconnect import Algorithm, Interconnect
from opbsim.hardware.links import NCCL, nvlink3_node, nvlink4_node
from opbsim.report.nccl_published import MEASURED, Measured

__all__ = ["TOLERANCE", "SYSTEMS", "CollectiveRow", "Sensitivity", "compare_collectives", "stage_sensitivity"]

TOLERANCE = 0.25

SYSTEMS: dict[str, Callable[[], Interconnect]] = {"dgx-h100": nvlink4_node, "dgx-a100": nvlink3_node}


@dataclass(frozen=True, slots=True)
class CollectiveRow:
    measured: Measured
    ours: Plan

    @property
    def ours_busbw_GBps(self) -> float:
        m = self.measured
        return m.size_B / self.ours.time_s * bus_factor(self.ours.collective, m.gpus) / 1e9

    @property
    def ratio(self) -> float:
        return self.ours_busbw_GBps / self.measured.busbw_GBps

    @property
    def within(self) -> bool:
        return abs(self.ratio - 1) <= TOLERANCE

    @property
    def cause(self) -> str:
        """Why a row misses, from which term of the model decides it."""
        if self.within:
            return ""
        p, m = self.ours, self.measured
        if p.latency_s >= p.transfer_s:
            return (f"latency-bound: the model's {p.name} call costs {p.latency_s * 1e6:.1f} us of latency "
                    f"(NCCL's base and per-hop constants) against {m.time_us:.1f} us measured")
        side = "faster" if self.ratio > 1 else "slower"
        return (f"bandwidth-bound: {p.name} streams {side} than measured "
                f"({self.ours_busbw_GBps:.0f} vs {m.busbw_GBps:.0f} GB/s bus bandwidth)")


def compare_collectives(rows: tuple[Measured, ...] = MEASURED) -> tuple[CollectiveRow, ...]:
    """Each measured row against the NCCL model on its system; a row whose run forced an
    algorithm (NCCL_ALGO) against the model's fastest plan of that algorithm."""
    out = []
    for m in rows:
        ic = replace(SYSTEMS[m.system](), library=NCCL)
        coll = Collective(m.collective)
        if m.algorithm:
            forced = [p for p in candidates(ic, coll, m.size_B, m.gpus) if p.algorithm is Algorithm(m.algorithm)]
            out.append(CollectiveRow(m, min(forced, key=lambda p: p.time_s)))
        else:
            out.append(CollectiveRow(m, plan(ic, coll, m.size_B, m.gpus)))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Sensitivity:
    """One decode stage's time under a variant of the collective assumptions."""

    variant: str
    decode_stage_ms: float
    comm_share: float


def stage_sensitivity(model_name: str = "mixtral-8x7b", device: str = "h100", tp: int = 4, batch: int = 64,
                      context: int = 1536) -> tuple[Sensitivity, ...]:
    """A decode stage of ``batch`` requests at ``context`` tokens on ``tp`` devices, with the
    preset's collectives, their latencies halved and doubled, and without the custom all-reduce."""
    from opbsim.emulator.cluster import Cluster
    from opbsim.emulator.stage_timer import Bucketing, StageTimer
    from opbsim.hardware import get_device
    from opbsim.hardware.params import apply_hw
    from opbsim.workloads import Stage, get_preset
    from opbsim.workloads.parallel import Parallelism

    spec = get_device(device)
    variants = (("preset", spec), ("latencies x 0.5", apply_hw(spec, {"collective_latency_scale": 0.5})),
                ("latencies x 2", apply_hw(spec, {"collective_latency_scale": 2.0})),
                ("NCCL only (no custom all-reduce)", replace(spec, interconnect=replace(spec.interconnect,
                                                                                        library=NCCL))))
    model, stage = get_preset(model_name), Stage.decode(batch, context)
    out = []
    for label, dev in variants:
        cluster = Cluster(device=dev, policy="xpu-only", parallel=Parallelism.of(tp=tp))
        cost = StageTimer(model, cluster, bucketing=Bucketing(0)).cost(stage)
        out.append(Sensitivity(label, cost.time_s * 1e3, cost.comm_exposed_s / cost.time_s))
    return tuple(out)
