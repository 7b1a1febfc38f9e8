"""The time and energy of one serving stage on a cluster, memoised by stage shape.

A stage is costed by compiling it (opbsim.compiler) and timing the program on the engine, per
device (cluster.py says how several devices and nodes divide a stage). Compiling a whole model for
every stage of a long trace would take hours, so a stage is decomposed and memoised:

- ``prologue + epilogue``: the embedding, final norm, LM head and logits all-gather, compiled
  and timed once per shape;
- one decoder layer per layer kind (MoE or dense FFN), compiled for a representative layer (the
  first of its kind after layer 0, so it carries the residual add every later layer has) and
  timed once; its time and energy count once per layer of that kind;
- under expert parallelism, two scale-out all-to-alls per MoE layer (``alltoall_stats``).

Layers are serially dependent through the residual stream, so summing per-layer times leaves out
only the overlap of one layer's tail with the next layer's head (measured in
tests/unit/serving/test_stage_timer.py and docs/serving.md).

Shape buckets (``Bucketing``): the decode requests of a stage are represented by their count and
their mean context, both rounded to a grid of ``steps_per_octave`` points per power of two; each
prefill chunk's new and past tokens are rounded the same way. Decode attention reads every
request's KV cache once, so its cost is linear in the summed context and the mean loses nothing
but the (small) per-request fixed costs; rounding to a grid of 8 steps per octave moves a
dimension by at most 1/16 (6.25%), by 2.2% on average over evenly spread values, up or down, so
the errors of successive stages largely cancel: benchmarks/bucketing_error.py measures the
effect on whole runs against unbucketed ones (docs/serving.md). ``steps_per_octave = 0``
disables bucketing (every distinct stage is compiled as it is).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from opbsim.compiler import Source, Target, compile_graph, run_passes
from opbsim.emulator.cluster import Cluster, alltoall_stats, node_expert_tokens, node_share
from opbsim.emulator.engine import RunStats
from opbsim.emulator.engine import run as run_program
from opbsim.errors import InputError
from opbsim.isa.types import Unit
from opbsim.workloads.graph import ModelGraph, build_layer, build_model
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.ops import OpClass
from opbsim.workloads.routing import BalancedRouting, Routing, expert_counts
from opbsim.workloads.stage import PrefillChunk, Stage

__all__ = ["Bucketing", "StageCost", "StageTimer", "split_by_class"]


@dataclass(frozen=True, slots=True)
class Bucketing:
    """Rounds token counts to ``steps_per_octave`` grid points per power of two (0: exact).
    Values up to ``steps_per_octave`` are kept as they are (the grid step there is below 1)."""

    steps_per_octave: int = 8

    def __post_init__(self) -> None:
        n = self.steps_per_octave
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InputError(f"steps_per_octave must be an integer >= 0, got {n!r}")

    def round(self, n: int) -> int:
        """``n`` rounded to the nearest grid point (ties upward); 0 stays 0."""
        s = self.steps_per_octave
        if s == 0 or n <= s:
            return n
        step = max(2 ** (n.bit_length() - 1) // s, 1)
        return (n + step // 2) // step * step

    def stage(self, stage: Stage) -> Stage:
        """The representative of ``stage``'s bucket (``stage`` itself when disabled)."""
        if self.steps_per_octave == 0:
            return stage
        return self.representative(stage.prefill, len(stage.decode_ctx_tokens), sum(stage.decode_ctx_tokens))

    def representative(self, prefill: tuple[PrefillChunk, ...], decode_count: int, decode_ctx_sum: int) -> Stage:
        """The bucket's representative stage: ``round(decode_count)`` decode requests at the
        rounded mean context, and the prefill chunks rounded and sorted (largest first)."""
        chunks = tuple(sorted((PrefillChunk(max(self.round(c.new_tokens), 1), self.round(c.past_tokens), c.final)
                               for c in prefill), key=lambda c: (-c.new_tokens, -c.past_tokens, not c.final)))
        decode: tuple[int, ...] = ()
        if decode_count:
            mean = max(round(decode_ctx_sum / decode_count), 1)
            decode = (self.round(mean),) * self.round(decode_count)
        return Stage(prefill=chunks, decode_ctx_tokens=decode)


@dataclass(frozen=True, slots=True)
class StageCost:
    """One stage on the whole cluster. ``energy_J`` sums every device; ``busy_s_by_unit`` is per
    device (of the busiest node); ``time_s_by_class`` splits ``time_s`` (wall clock) over op
    classes: each moment is shared equally by the instructions running then."""

    time_s: float
    energy_J: float
    busy_s_by_unit: tuple[tuple[Unit, float], ...]
    time_s_by_class: tuple[tuple[OpClass, float], ...]


def split_by_class(stats: RunStats, class_of_index: dict[int, OpClass]) -> dict[OpClass, float]:
    """Wall-clock time of ``stats`` by op class: every moment is divided equally among the
    instructions running then (by the class of the op each comes from; unknown: OTHER); moments
    with none running go to OTHER. The parts sum to ``stats.time_s``."""
    events: list[tuple[float, int, OpClass]] = []
    for iv in stats.timeline:
        if iv.end_s > iv.start_s:
            cls = class_of_index.get(iv.index, OpClass.OTHER)
            events += [(iv.start_s, 1, cls), (iv.end_s, -1, cls)]
    events.sort(key=lambda e: (e[0], e[1]))
    out = dict.fromkeys(OpClass, 0.0)
    active = dict.fromkeys(OpClass, 0)
    running, last = 0, 0.0
    for t, delta, cls in events:
        if t > last:
            seg = t - last
            if running == 0:
                out[OpClass.OTHER] += seg
            else:
                for c, n in active.items():
                    if n:
                        out[c] += seg * n / running
            last = t
        active[cls] += delta
        running += delta
    if stats.time_s > last:
        out[OpClass.OTHER] += stats.time_s - last
    return out


@dataclass(slots=True)
class _Acc:
    time_s: float = 0.0
    energy_J: float = 0.0
    busy: dict[Unit, float] = field(default_factory=dict)
    by_class: dict[OpClass, float] = field(default_factory=lambda: dict.fromkeys(OpClass, 0.0))

    def add(self, stats: RunStats, classes: dict[OpClass, float], times: int) -> None:
        self.time_s += stats.time_s * times
        self.energy_J += stats.energy_J * times
        for u, b in stats.busy_s_by_unit:
            self.busy[u] = self.busy.get(u, 0.0) + b * times
        for c, t in classes.items():
            self.by_class[c] += t * times


class StageTimer:
    """Costs stages of ``model`` on ``cluster``; every distinct bucketed shape is compiled and timed
    once (``memo=False`` recomputes each call: the reference the memo is tested against).

    ``routing`` (one node only) decides the expert token counts of a shape, drawn once per shape
    from the representative layer's stream; by default the balanced counts, which are the expected
    counts under uniform routing.
    """

    def __init__(self, model: ModelConfig, cluster: Cluster, *, routing: Routing | None = None,
                 bucketing: Bucketing = Bucketing(), memo: bool = True):
        cluster.check(model)
        if routing is not None and cluster.nodes > 1:
            raise InputError("a routing other than balanced is supported on one node only")
        if routing is not None and (routing.num_experts, routing.top_k) != (model.num_experts, model.top_k):
            raise InputError(f"routing has {routing.num_experts} experts, top-{routing.top_k}; the model "
                             f"{model.num_experts}, top-{model.top_k}")
        self.model = model
        self.cluster = cluster
        self.routing = routing
        self.bucketing = bucketing
        self.memo = memo
        self._cache: dict[Stage, StageCost] = {}
        self.compiled_shapes = 0
        kinds: dict[bool, list[int]] = {}
        for i in range(model.num_layers):
            kinds.setdefault(model.is_moe_layer(i), []).append(i)
        self._layers = tuple((moe, next((i for i in idx if i > 0), idx[0]), len(idx)) for moe, idx in kinds.items())
        self._head_model = replace(model, num_layers=model.first_dense_layers + model.moe_every) if model.is_moe \
            else replace(model, num_layers=1)
        probe = Stage.decode(1, 1)  # the policy must exist and suit the device: the compiler's own check
        run_passes(Source(self._layer(probe, *self._layers[0][:2]), Target(cluster.device, cluster.policy)), "place")

    def cost(self, stage: Stage) -> StageCost:
        """The cost of ``stage`` (of its bucket's representative)."""
        return self._lookup(self.bucketing.stage(stage))

    def cost_of(self, prefill: tuple[PrefillChunk, ...], decode_count: int, decode_ctx_sum: int) -> StageCost:
        """The cost of a stage given by its prefill chunks and its decode requests' count and summed
        context (bucketing must be enabled: the exact contexts are not known)."""
        if self.bucketing.steps_per_octave == 0:
            raise InputError("cost_of needs bucketing: without it, give the exact stage to cost()")
        return self._lookup(self.bucketing.representative(prefill, decode_count, decode_ctx_sum))

    def _lookup(self, key: Stage) -> StageCost:
        if not self.memo:
            return self._compute(key)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._compute(key)
        return hit

    def lowering_errors(self, stage: Stage) -> tuple[str, ...]:
        """What stops ``stage`` from compiling: the compiler's message for the prologue/epilogue and
        for each layer kind that fails, in that order (empty when it compiles)."""
        node = node_share(stage, self.cluster.nodes)
        parts = [lambda: self._time(self._head(node), _Acc(), 1)]
        parts += [lambda moe=moe, layer=layer: self._time(self._layer(node, moe, layer), _Acc(), 1)
                  for moe, layer, _ in self._layers]
        errors = []
        for part in parts:
            try:
                part()
            except InputError as e:
                errors.append(str(e))
        return tuple(errors)

    def _head(self, node: Stage) -> ModelGraph:
        head = build_model(self._head_model, node, tp=self.cluster.tp)
        return replace(head, model=self.model, layers=())

    def _layer(self, node: Stage, moe: bool, layer: int) -> ModelGraph:
        graph = build_layer(self.model, node, layer, expert_tokens=self._counts(node, layer) if moe else None,
                            tp=self.cluster.tp)
        return ModelGraph(self.model, node, self.cluster.tp, (), (graph,), ())

    def _compute(self, stage: Stage) -> StageCost:
        model, cluster = self.model, self.cluster
        node = node_share(stage, cluster.nodes)
        self.compiled_shapes += 1
        acc = _Acc()
        self._time(self._head(node), acc, 1)
        for moe, layer, count in self._layers:
            self._time(self._layer(node, moe, layer), acc, count)
            if moe and cluster.nodes > 1:
                rows = math.ceil(node.tokens * model.top_k / cluster.tp)
                a2a = alltoall_stats(cluster.device, rows, model.hidden_size, cluster.nodes)
                acc.add(a2a, {OpClass.COMM: a2a.time_s}, 2 * count)
        return StageCost(
            time_s=acc.time_s,
            energy_J=acc.energy_J * cluster.devices,
            busy_s_by_unit=tuple(sorted(acc.busy.items())),
            time_s_by_class=tuple((c, t) for c, t in acc.by_class.items() if t > 0),
        )

    def _counts(self, node: Stage, layer: int) -> tuple[int, ...] | None:
        if self.cluster.nodes > 1:
            return node_expert_tokens(self.model, node.tokens, self.cluster.nodes)
        if self.routing is None or isinstance(self.routing, BalancedRouting):
            return None
        counts = expert_counts(self.routing.route(layer, node.tokens), self.model.num_experts)
        return tuple(int(n) for n in counts)

    def _time(self, graph: ModelGraph, acc: _Acc, times: int) -> None:
        cluster = self.cluster
        try:
            compiled = compile_graph(graph, cluster.device, cluster.policy)
        except InputError as e:
            if str(e).startswith("does not fit"):
                raise InputError(f"{e}: a stage of {graph.stage.tokens} tokens per device is too large "
                                 f"(bound it with chunked prefill or a smaller batch)") from None
            raise
        stats = run_program(compiled.program, cluster.device)
        op_class = {op.name: op.op_class for op in graph.ops}
        by_index = {i: op_class.get(name, OpClass.OTHER) for i, name in enumerate(compiled.op_of) if name}
        acc.add(stats, split_by_class(stats, by_index), times)
