"""Pass 1, analyze: each op's estimates and its roofline cost on every unit that could run it.

Matrix-class ops (GEMMs, FFNs, attention) run at a unit's matrix throughput, the rest at its
vector throughput; memory time is the op's compulsory traffic over the unit's path to HBM;
collectives run over the device's links on the units its device model names (the DMA engine; on a
dataflow device also the PCU, as a stage of a dataflow kernel that streams over the links).
"""

from __future__ import annotations

from opbsim.compiler.ir import Analysis, OpAnalysis, Source, UnitCost
from opbsim.hardware.collectives import Collective, plan
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.types import Space, Unit
from opbsim.workloads.ops import Op, OpKind

__all__ = ["analyze", "candidate_units", "MATRIX_KINDS", "COLLECTIVE_KINDS"]

MATRIX_KINDS = frozenset({OpKind.GEMM, OpKind.BATCHED_GEMM, OpKind.FFN, OpKind.ATTENTION, OpKind.LONG_CONV})
COLLECTIVE_KINDS = frozenset({OpKind.ALL_REDUCE, OpKind.ALL_GATHER})
_COMPUTE_UNITS = (Unit.XPU, Unit.PIM, Unit.PCU)


def candidate_units(device: DeviceSpec, op: Op) -> tuple[Unit, ...]:
    if op.kind in COLLECTIVE_KINDS:
        return device.model.collective_units
    return tuple(u.unit for u in device.units if u.unit in _COMPUTE_UNITS and u.matrix_TFLOPS > 0)


def unit_cost(device: DeviceSpec, op: Op, unit: Unit) -> UnitCost:
    spec = device.compute(unit)
    est = op.estimates
    launch_s = spec.issue_ns * 1e-9
    if op.kind in COLLECTIVE_KINDS:
        kind = Collective.ALLREDUCE if op.kind is OpKind.ALL_REDUCE else Collective.ALLGATHER
        size = op.inputs[0].nbytes if kind is Collective.ALLREDUCE else op.outputs[0].nbytes
        return UnitCost(unit, 0.0, plan(device.interconnect, kind, size, op.params["devices"]).time_s, launch_s)
    tflops = spec.matrix_TFLOPS if op.kind in MATRIX_KINDS else spec.vector_TFLOPS
    compute_s = est.flops / (tflops * 1e12) if est.flops else 0.0
    bw_GBps = min(device.channel_bw_GBps(c) for c in device.path(unit, Space.HBM).channels)
    return UnitCost(unit, compute_s, est.bytes_B / (bw_GBps * 1e9), launch_s)


def analyze(source: Source) -> Analysis:
    graph, target = source.graph, source.target
    device = target.device
    layer_of = graph.layer_of
    ops = tuple(
        OpAnalysis(op, op.estimates, tuple(unit_cost(device, op, u) for u in candidate_units(device, op)),
                   layer_of.get(op.name))
        for op in graph.ops
    )
    return Analysis(graph, target, ops)
