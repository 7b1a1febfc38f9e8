"""One decoder layer of a device comparison, compiled and timed on the engine: the roofline points
and the timelines of co-processing.

For every device, one MoE (or dense) decoder layer on one node is compiled for two stages and run
on the discrete-event engine:
- a decode-only stage (``batch`` requests at ``lin + lout // 2`` tokens of context): what almost
  every stage of a serving run is (1023 of the demo's 1031 stages);
- a mixed stage (``batch - 1`` decoding requests and one prompt chunk): where Duplex co-processes
  prefill attention on the xPU next to decode attention on the PIM.

Each gives a ``LayerTimeline``. The decode-only layer also gives the roofline points: every op's
Op/B (its compulsory traffic, ``Estimates.op_per_B``) and its attained FLOP/s, its FLOPs over its
time on the engine (the union of its instructions' intervals), so the distance below the roof is
what the engine charges beyond the roofline bound: launches, latencies, streams sharing a channel.
Ops fused into one dataflow kernel (SN40L) have no time of their own: the kernel is one point,
its ops' FLOPs and bytes summed, over the kernel's time.
"""

from __future__ import annotations

from dataclasses import dataclass

from opbsim.compiler import compile_graph
from opbsim.emulator.cluster import Cluster, node_share
from opbsim.emulator.engine import RunStats
from opbsim.emulator.engine import run as run_program
from opbsim.emulator.time_split import launch_class_shares
from opbsim.isa.spec import Opcode
from opbsim.isa.types import Unit
from opbsim.workloads.graph import ModelGraph, build_layer
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.stage import PrefillChunk, Stage

__all__ = ["FUSED", "OpPoint", "LayerTimeline", "decode_layer", "mixed_layer", "layer_graph"]

FUSED = "fused kernel"  # the class of a roofline point that stands for a whole dataflow kernel
_MATRIX_KINDS = {"gemm", "batched_gemm", "ffn", "attention"}


@dataclass(frozen=True, slots=True)
class OpPoint:
    """One op of the roofline layer, or one fused kernel (``op_class`` ``FUSED``): its Op/B,
    FLOPs, the unit its policy put it on, and ``time_s``, its time on the engine (s; 0 where it
    has none)."""

    name: str
    op_class: str
    kind: str
    op_per_B: float
    flops: int
    unit: Unit
    matrix: bool
    time_s: float = 0.0

    @property
    def attained_flop_per_s(self) -> float | None:
        """FLOPs over the engine's time of the op (FLOP/s); None without FLOPs or time."""
        return self.flops / self.time_s if self.flops and self.time_s > 0 else None


@dataclass(frozen=True, slots=True)
class LayerTimeline:
    """One decoder layer of one stage on the engine. ``kind``: "decode" or "mixed"; ``stage``
    says what was timed (or why it could not be: ``stats`` None). ``shares`` maps an instruction's
    index to the op classes its time goes to: one class with share 1, or, for a kernel fusing ops
    of several classes, each class's share of the kernel's modelled time
    (time_split.launch_class_shares)."""

    kind: str
    stage: str
    stats: RunStats | None
    shares: dict[int, dict[str, float]]


def layer_graph(model: ModelConfig, cluster: Cluster, stage: Stage) -> tuple[ModelGraph, str]:
    """The first MoE layer after layer 0 (else layer 1, else 0) for ``stage`` on one node."""
    node = node_share(stage, cluster.dp)
    candidates = [i for i in range(1, model.num_layers) if model.is_moe_layer(i)] or [min(1, model.num_layers - 1)]
    layer = candidates[0]
    graph = build_layer(model, node, layer, tp=cluster.tp)
    kind = "MoE" if model.is_moe_layer(layer) else "dense"
    return ModelGraph(model, node, cluster.tp, (), (graph,), ()), f"{kind} layer {layer}"


def _timed(model: ModelConfig, cluster: Cluster, stage: Stage):
    graph, what = layer_graph(model, cluster, stage)
    compiled = compile_graph(graph, cluster.device, cluster.policy)
    stats = run_program(compiled.program, cluster.device)
    op_class = {op.name: op.op_class for op in graph.ops}
    by_index = {i: op_class[name] for i, name in enumerate(compiled.op_of) if name in op_class}
    shares = {i: {c.value: 1.0} for i, c in by_index.items()}
    for i, split in launch_class_shares(compiled.program, cluster.device, by_index).items():
        shares[i] = {c.value: w for c, w in split.items()}
    return compiled, stats, shares, what


def decode_layer(batch: int, ctx: int, model: ModelConfig, cluster: Cluster) -> tuple[tuple[OpPoint, ...],
                                                                                      LayerTimeline]:
    """The roofline points and the timeline of the decode-only layer: ``batch`` requests at ``ctx``
    tokens of context. InputError when the layer cannot be compiled."""
    compiled, stats, shares, what = _timed(model, cluster, Stage.decode(batch, ctx))
    spans: dict[int, list[tuple[float, float]]] = {}
    for iv in stats.timeline:
        if iv.end_s > iv.start_s:
            spans.setdefault(iv.index, []).append((iv.start_s, iv.end_s))
    kernel_of = _kernels(compiled.program, spans)
    points: list[OpPoint] = []
    fused: dict[int, list] = {}
    for p in compiled.placement.ops:
        indices = [i for i, name in enumerate(compiled.op_of) if name == p.op.name]
        own = [s for i in indices for s in spans.get(i, [])]
        kernel = next((kernel_of[i] for i in indices if i in kernel_of), None)
        if not own and kernel is not None:
            fused.setdefault(kernel, []).append(p)
            continue
        e = p.analysis.estimates
        points.append(OpPoint(p.op.name, p.op.op_class.value, p.op.kind.value, e.op_per_B, e.flops, p.unit,
                              p.op.kind.value in _MATRIX_KINDS, _covered_s(own)))
    for kernel, ops in fused.items():
        flops, bytes_B = sum(p.analysis.estimates.flops for p in ops), sum(p.analysis.estimates.bytes_B for p in ops)
        points.append(OpPoint(compiled.op_of[kernel] or f"kernel {kernel}", FUSED, "kernel",
                              flops / bytes_B if bytes_B else 0.0, flops, compiled.program.instructions[kernel].unit,
                              any(p.op.kind.value in _MATRIX_KINDS for p in ops), _covered_s(spans.get(kernel, []))))
    stage = f"{what}, decode-only stage: {batch} requests at {ctx} tokens of context, per device"
    return tuple(points), LayerTimeline("decode", stage, stats, shares)


def mixed_layer(batch: int, ctx: int, chunk: int, model: ModelConfig, cluster: Cluster) -> LayerTimeline:
    """The timeline of the mixed layer: ``batch - 1`` decoding requests at ``ctx`` tokens of
    context and one ``chunk``-token prompt chunk. InputError when it cannot be compiled."""
    decode = max(batch - 1, 1)
    stage = Stage(prefill=(PrefillChunk(chunk),), decode_ctx_tokens=(ctx,) * decode)
    _, stats, shares, what = _timed(model, cluster, stage)
    return LayerTimeline("mixed", f"{what}, mixed stage: {decode} decode requests at {ctx} tokens of context + a "
                                  f"{chunk}-token prompt chunk, per device", stats, shares)


def _kernels(program, spans: dict[int, list]) -> dict[int, int]:
    """Body instruction -> its launch, for launches timed as one job (their body has no intervals)."""
    out = {}
    for i, inst in enumerate(program.instructions):
        if inst.opcode is Opcode.LAUNCH and i in spans:
            body = range(int(inst["body"]), int(inst["body"]) + int(inst["count"]))
            if not any(j in spans for j in body):
                out.update(dict.fromkeys(body, i))
    return out


def _covered_s(spans: list[tuple[float, float]]) -> float:
    """Time covered by the union of the intervals (s)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total
