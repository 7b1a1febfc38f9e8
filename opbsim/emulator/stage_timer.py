"""The time and energy of one serving stage on a cluster, memoised by stage shape.

A stage is costed by compiling it (opbsim.compiler) and timing the program on the engine, per
device (cluster.py says how several devices and nodes divide a stage). Compiling a whole model for
every stage of a long trace would take hours, so a stage is decomposed and memoised:

- ``prologue + epilogue``: the embedding, final norm, LM head and logits all-gather, compiled
  and timed once per shape;
- one decoder layer per layer kind (MoE or dense FFN), compiled for a representative layer (the
  first of its kind after layer 0, so it carries the residual add every later layer has) and
  timed once; its time and energy count once per layer of that kind;
- when experts are exchanged (cluster.py), a MoE layer is the layer without its expert FFNs
  (attention, router, dispatch and combine of the group's tokens, shared experts) plus the
  device's own experts over the rows routed to them, plus the collectives that move the rows
  (timed by the collective library; ``COMM`` in the class split);
- with ``overlap`` (two-batch overlap, as DeepSeek's serving does), a MoE layer with exchanged
  experts runs as two micro-batches whose communication hides behind the other's computation:
  max(2 C, 2 M) per layer for micro-batch compute C and communication M, plus one C or M (the
  smaller) to fill the pipeline per stage;
- pipeline stages (pp > 1) cost every layer at the micro-batch size plus pp hand-overs;
- with exchanged experts and a routing (``routing``), every MoE layer is routed on its own: its
  experts part is the busiest device's experts over their routed rows and its all-to-alls move the
  busiest device's rows (expert_load.py); the rest of the layer is the representative's.

Energy: each compiled part's instructions by mechanism (emulator/energy.py) times the layers of
its kind; the collectives that move exchanged rows at the link energy of their plans; and every
device's static power over the stage's wall-clock time, the waits included (two-batch overlap's
fill, pipeline hand-overs, exposed communication).

Kernel launches: a compiled part's time is its kernels replayed as a CUDA graph (each kernel pays
its unit's ``issue_ns`` on the device). ``StageCost.eager_extra_s`` is what launching them one by
one from the host would add: per compiled part, max(0, kernels x ``host_launch_s`` - its time), the
host issuing back to back while the device runs (a part whose kernels outlast their launches hides
them). Counted on units with a GPU kernel-efficiency model (CUDA kernels); the serving loop adds it
to stages that do not replay a graph (serving.py).

Layers are serially dependent through the residual stream, so summing per-layer times leaves out
only the overlap of one layer's tail with the next layer's head (measured in
tests/unit/serving/test_stage_timer.py and docs/serving.md).

Shape buckets (``Bucketing``, emulator/bucketing.py): stages are costed by the representative of their
shape bucket (a grid of ``steps_per_octave`` points per power of two).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from opbsim.compiler import Source, Target, compile_graph, run_passes
from opbsim.emulator.bucketing import DEFAULT_STEPS_PER_OCTAVE, Bucketing
from opbsim.emulator.cluster import Cluster, local_experts, micro_batch, node_share
from opbsim.emulator.energy import EnergyParts, plan_energy, static_energy
from opbsim.emulator.engine import run as run_program
from opbsim.emulator.expert_load import alltoall_rows
from opbsim.emulator.serving_engines import EAGER_LAUNCH_US
from opbsim.emulator.stage_acc import DeviceAcc
from opbsim.emulator.stage_routed import routed_layers
from opbsim.emulator.time_split import exposed_comm_s, launch_class_shares, split_by_bound, split_by_class
from opbsim.errors import DoesNotFit, InputError
from opbsim.hardware.collectives import Collective, plan
from opbsim.isa.types import Unit
from opbsim.workloads import primitives as P
from opbsim.workloads.attention import Shard
from opbsim.workloads.graph import LayerGraph, ModelGraph, build_layer, build_model
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.moe import moe_ops
from opbsim.workloads.ops import OpClass, OpKind
from opbsim.workloads.routing import BalancedRouting, Routing, expert_counts
from opbsim.workloads.stage import PrefillChunk, Stage

__all__ = ["DEFAULT_STEPS_PER_OCTAVE", "Bucketing", "StageCost", "StageTimer", "split_by_class"]

_BUCKETS = Bucketing()  # the default grid


@dataclass(frozen=True, slots=True)
class StageCost:
    """One stage on the whole cluster. ``energy_J`` sums every device (``energy`` by component);
    ``busy_s_by_unit`` is per device (of the busiest node); ``time_s_by_class`` splits ``time_s``
    (wall clock) over op classes: each moment is shared equally by the instructions running then,
    a fused kernel's share split over its ops' classes (time_split.launch_class_shares)."""

    time_s: float
    energy_J: float
    busy_s_by_unit: tuple[tuple[Unit, float], ...]
    time_s_by_class: tuple[tuple[OpClass, float], ...]
    comm_exposed_s: float = 0.0  # wall clock with a collective in flight and no other instruction
    time_s_by_bound: tuple[tuple[str, float], ...] = ()  # compute / memory / communication / idle
    energy: EnergyParts | None = None  # by component; None (a cost made by hand): all of energy_J as compute
    eager_extra_s: float = 0.0  # launched eagerly (no CUDA graph): the time the host's launches add (module doc)

    @property
    def energy_parts(self) -> EnergyParts:
        return self.energy if self.energy is not None else EnergyParts(compute=self.energy_J)



class StageTimer:
    """Costs stages of ``model`` on ``cluster``; every distinct bucketed shape is compiled and timed
    once (``memo=False`` recomputes each call: the reference the memo is tested against).

    ``routing`` decides the expert token counts of a shape, drawn once per shape: from the
    representative layer's stream when experts are not exchanged, from every MoE layer's when they
    are (the whole stage's tokens, all dp groups); by default the balanced counts, which are the
    expected counts under uniform routing. ``overlap`` turns on two-batch overlap.
    """

    def __init__(self, model: ModelConfig, cluster: Cluster, *, routing: Routing | None = None,
                 bucketing: Bucketing = _BUCKETS, memo: bool = True, overlap: bool = False,
                 host_launch_s: float = EAGER_LAUNCH_US * 1e-6):
        cluster.check(model)
        par = cluster.parallel
        if routing is not None and (routing.num_experts, routing.top_k) != (model.num_experts, model.top_k):
            raise InputError(f"routing has {routing.num_experts} experts, top-{routing.top_k}; the model "
                             f"{model.num_experts}, top-{model.top_k}")
        if routing is not None and hasattr(routing, "check_model"):
            routing.check_model(model)
        self._routed = routing is not None and not isinstance(routing, BalancedRouting) and par.experts_exchanged
        self._expert_memo: dict[tuple[int, ...], DeviceAcc] = {}
        self.model = model
        self.cluster = cluster
        self.routing = routing
        self.bucketing = bucketing
        self.memo = memo
        self.overlap = overlap
        if isinstance(host_launch_s, bool) or not isinstance(host_launch_s, int | float) or \
                not (math.isfinite(host_launch_s) and host_launch_s >= 0):
            raise InputError(f"host_launch_s must be a finite number >= 0, got {host_launch_s!r}")
        self.host_launch_s = host_launch_s
        self._fabric = cluster.fabric_device.interconnect
        self._cache: dict[Stage, StageCost] = {}
        self._eager: dict[int, tuple[StageCost, StageCost]] = {}  # id(cost) -> (cost, launched eagerly)
        self.compiled_shapes = 0
        kinds: dict[bool, list[int]] = {}
        for i in range(model.num_layers):
            kinds.setdefault(model.is_moe_layer(i), []).append(i)
        self._layers = tuple((moe, next((i for i in idx if i > 0), idx[0]), len(idx)) for moe, idx in kinds.items())
        self._head_model = replace(model, num_layers=model.first_dense_layers + model.moe_every) if model.is_moe \
            else replace(model, num_layers=1)
        probe = Stage.decode(1, 1)  # the policy must exist and suit the device: the compiler's own check
        self.routing = None  # the probe draws no routing: every layer's token stream starts at the first stage
        run_passes(Source(self._layer(probe, *self._layers[0][:2]), Target(cluster.device, cluster.policy)), "place")
        self.routing = routing

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

    def launched(self, cost: StageCost, graphed: bool) -> StageCost:
        """``cost`` as it runs: itself when it replays a CUDA graph (or its launches are hidden),
        else longer by ``eager_extra_s``, the devices idle meanwhile (static energy, ``idle`` bound)."""
        if graphed or cost.eager_extra_s <= 0:
            return cost
        hit = self._eager.get(id(cost))
        if hit is None or hit[0] is not cost:
            extra = cost.eager_extra_s
            static = static_energy(self.cluster.fabric_device, extra).scaled(self.cluster.devices)
            bounds = dict(cost.time_s_by_bound)
            bounds["idle"] = bounds.get("idle", 0.0) + extra
            eager = replace(cost, time_s=cost.time_s + extra, energy_J=cost.energy_J + static.total_J,
                            energy=cost.energy_parts + static, time_s_by_bound=tuple(bounds.items()))
            hit = self._eager[id(cost)] = (cost, eager)
        return hit[1]

    def lowering_errors(self, stage: Stage) -> tuple[str, ...]:
        """What stops ``stage`` from compiling: the compiler's message for the prologue/epilogue and
        for each layer kind that fails, in that order, each distinct message once (empty when it
        compiles)."""
        group = node_share(stage, self.cluster.dp)
        parts = [lambda: self._time(self._head(group), DeviceAcc(), 1)]
        parts += [lambda moe=moe, layer=layer: self._layer_cost(group, moe, layer) for moe, layer, _ in self._layers]
        errors = []
        for part in parts:
            try:
                part()
            except InputError as e:
                if str(e) not in errors:  # a model-wide refusal fails every part with one message
                    errors.append(str(e))
        return tuple(errors)

    # -- graphs ------------------------------------------------------------------------------------

    def part(self, stage: Stage, which: str, layer: int) -> ModelGraph:
        """One graph a device runs for ``stage``: ``head`` (embedding, final norm, LM head),
        ``layer`` (decoder layer ``layer``; without its expert FFNs when experts are exchanged) or
        ``experts`` (the device's experts of MoE layer ``layer``)."""
        par = self.cluster.parallel
        micro = micro_batch(node_share(stage, par.dp), par.pp)
        if not 0 <= layer < self.model.num_layers:
            raise InputError(f"layer {layer} is outside 0..{self.model.num_layers - 1}")
        moe = self.model.is_moe_layer(layer)
        if which == "head":
            return self._head(micro)
        if which == "layer":
            return self._layer(micro, moe, layer)
        if which == "experts" and self._exchanged(moe):
            return self._experts(micro.tokens * par.dp, layer)
        raise InputError(f"layer {layer} has no separate experts part under {par.label} (experts are exchanged "
                         "only in MoE layers with ep > 1 or dp > 1)")

    def parts(self, stage: Stage) -> tuple[tuple[ModelGraph, int], ...]:
        """The graphs one device runs for ``stage`` (not bucketed) and how many times each: the
        prologue and epilogue, and per layer kind its representative layer (and, with exchanged
        experts, the device's experts) times the layers of that kind, per pipeline micro-batch."""
        par = self.cluster.parallel
        group = node_share(stage, par.dp)
        micro = micro_batch(group, par.pp)
        out = [(self._head(micro), 1)]
        for moe, layer, count in self._layers:
            out.append((self._layer(micro, moe, layer), count))
            if self._exchanged(moe):
                out.append((self._experts(micro.tokens * par.dp, layer), count))
        return tuple(out)

    def _exchanged(self, moe: bool) -> bool:
        return moe and self.cluster.parallel.experts_exchanged

    def _head(self, group: Stage) -> ModelGraph:
        head = build_model(self._head_model, group, tp=self.cluster.tp)
        return replace(head, model=self.model, layers=())

    def _layer(self, group: Stage, moe: bool, layer: int) -> ModelGraph:
        """The whole layer on one device; with exchanged experts, without its expert FFNs and
        without the expert all-reduce (``_experts`` and ``_exchange`` cost those)."""
        tp = self.cluster.tp
        counts = self._counts(group, layer) if moe and not self._exchanged(moe) else None  # else: experts dropped
        graph = build_layer(self.model, group, layer, expert_tokens=counts, tp=tp)
        if self._exchanged(moe):
            drop = f"L{layer}.ffn_all_reduce"
            graph = LayerGraph(layer, moe, tuple(op for op in graph.ops
                                                 if op.name != drop and "expert" not in op.params))
        return ModelGraph(self.model, group, tp, (), (graph,), ())

    def _experts(self, stage_tokens: int, layer: int) -> ModelGraph:
        """One device's E/ep experts at 1/etp width over their rows of a stage of ``stage_tokens``."""
        par = self.cluster.parallel
        local, tokens, counts = local_experts(self.model, stage_tokens, par.ep)
        x = P.act(f"L{layer}.h_norm", (tokens, local.hidden_size), local.dtype)
        ops = tuple(op for op in moe_ops(local, Shard(par.etp, 1, 1), f"L{layer}", x, counts)
                    if op.kind is OpKind.FFN and "expert" in op.params)
        return ModelGraph(local, Stage.decode(tokens, 1), 1, (), (LayerGraph(layer, True, ops),), ())

    def _exchange(self, group: Stage, stage_tokens: int, counts=None) -> tuple[float, float]:
        """Seconds of the collectives that move one MoE layer's rows (cluster.py), and the joules
        one device spends on the links for them; with the layer's expert ``counts``, the
        all-to-alls move the busiest device's rows (expert_load.py)."""
        par, m = self.cluster.parallel, self.model
        row_B = m.hidden_size * m.dtype.itemsize_B
        n = par.stage_devices
        calls: list[tuple[Collective, int, int, int]] = []
        if par.ep > 1:
            send = -(-group.tokens * m.top_k // par.tp) * par.etp * row_B if counts is None else \
                alltoall_rows(counts, par.ep, par.etp, par.tp, group.tokens, m.top_k) * row_B
            calls += [(Collective.ALLTOALL, send, n, 1)] * 2
            if par.tp > 1:
                calls.append((Collective.ALLGATHER, group.tokens * row_B, par.tp, 1))
        else:
            calls.append((Collective.ALLGATHER, par.dp * group.tokens * row_B, par.dp, par.tp))
            calls.append((Collective.ALLREDUCE, stage_tokens * row_B, n, 1))
        costs = [self._collective(*call) for call in calls]
        return sum(t for t, _ in costs), sum(j for _, j in costs)

    def _collective(self, kind: Collective, size_B: int, devices: int, stride: int) -> tuple[float, float]:
        """(seconds, joules one device spends on the links) of one collective call."""
        if devices < 2:
            return 0.0, 0.0
        ic = replace(self._fabric, node_devices=self.cluster.group_local(devices, stride))
        p = plan(ic, kind, size_B, devices)
        return p.time_s, plan_energy(ic, p)

    # -- costing -----------------------------------------------------------------------------------

    def _layer_cost(self, group: Stage, moe: bool, layer: int) -> DeviceAcc:
        """One layer on the busiest device: its compiled part(s) and, with exchanged experts, the
        collectives (two-batch overlap applied when enabled)."""
        acc = DeviceAcc()
        if not self._exchanged(moe):
            self._time(self._layer(group, moe, layer), acc, 1)
            return acc
        if self.overlap and group.tokens >= 2:
            half = micro_batch(group, 2)
            compute, (comm, comm_J) = self._layer_parts(half, half.tokens * self.cluster.dp, layer)
            c_s, m_s = compute.time_s, comm
            out = compute.scaled(2)
            out.energy = out.energy + EnergyParts(interconnect=2 * comm_J)
            out.time_s = max(2 * c_s, 2 * m_s)
            out.by_class[OpClass.COMM] += max(0.0, out.time_s - 2 * c_s)
            out.exposed_s += max(0.0, out.time_s - 2 * c_s)
            out.by_bound["communication"] += max(0.0, out.time_s - 2 * c_s)
            out.fill_s = min(c_s, m_s)
            return out
        compute, (comm, comm_J) = self._layer_parts(group, group.tokens * self.cluster.dp, layer)
        compute.add_comm(comm, 1, comm_J)
        return compute

    def _layer_parts(self, group: Stage, stage_tokens: int, layer: int) -> tuple[DeviceAcc, tuple[float, float]]:
        acc = DeviceAcc()
        self._time(self._layer(group, True, layer), acc, 1)
        self._time(self._experts(stage_tokens, layer), acc, 1)
        return acc, self._exchange(group, stage_tokens)

    def _compute(self, stage: Stage) -> StageCost:
        cluster, par = self.cluster, self.cluster.parallel
        group = node_share(stage, par.dp)
        micro = micro_batch(group, par.pp)
        self.compiled_shapes += 1
        acc = DeviceAcc()
        self._time(self._head(micro), acc, par.pp, energy_times=1)
        fill = 0.0
        for moe, layer, count in self._layers:
            part = routed_layers(self, micro, layer) if self._routed and moe else \
                self._layer_cost(micro, moe, layer)
            fill = max(fill, part.fill_s)
            acc.merge(part if self._routed and moe else part.scaled(count))
        acc.time_s += fill
        acc.by_bound["communication"] += fill
        if par.pp > 1:
            row_B = self.model.hidden_size * self.model.dtype.itemsize_B
            hand_over, hand_over_J = self._collective(Collective.ALLTOALL, 2 * micro.tokens * row_B, 2,
                                                      par.stage_devices)
            acc.add_comm(hand_over, par.pp, hand_over_J)
        energy = (acc.energy + static_energy(cluster.fabric_device, acc.time_s)).scaled(cluster.devices)
        return StageCost(
            time_s=acc.time_s,
            energy_J=energy.total_J,
            energy=energy,
            busy_s_by_unit=tuple(sorted(acc.busy.items())),
            time_s_by_class=tuple((c, t) for c, t in acc.by_class.items() if t > 0),
            comm_exposed_s=acc.exposed_s,
            time_s_by_bound=tuple((k, t) for k, t in acc.by_bound.items() if t > 0),
            eager_extra_s=acc.eager_s,
        )

    def _counts(self, group: Stage, layer: int) -> tuple[int, ...] | None:
        if self.routing is None or isinstance(self.routing, BalancedRouting):
            return None
        counts = expert_counts(self.routing.route(layer, group.tokens), self.model.num_experts)
        return tuple(int(n) for n in counts)

    def _time(self, graph: ModelGraph, acc: DeviceAcc, times: int, energy_times: float | None = None) -> None:
        cluster = self.cluster
        try:
            compiled = compile_graph(graph, cluster.fabric_device, cluster.policy)
        except DoesNotFit as e:
            raise DoesNotFit(f"{e}: a stage of {graph.stage.tokens} tokens per device is too large "
                             f"(bound it with chunked prefill or a smaller batch)") from None
        stats = run_program(compiled.program, cluster.fabric_device)
        device = cluster.fabric_device
        kernels = sum(n for u, n in stats.kernels_by_unit if device.compute(u).efficiency is not None)
        acc.eager_s += max(0.0, kernels * self.host_launch_s - stats.time_s) * times
        op_class = {op.name: op.op_class for op in graph.ops}
        by_index = {i: op_class.get(name, OpClass.OTHER) for i, name in enumerate(compiled.op_of) if name}
        shares = launch_class_shares(compiled.program, cluster.fabric_device, by_index)
        acc.add(stats, split_by_class(stats, by_index, shares), times, energy_times)
        acc.exposed_s += exposed_comm_s(stats, by_index) * times
        for k, t in split_by_bound(stats, compiled.program, cluster.fabric_device).items():
            acc.by_bound[k] += t * times
