"""MoE layers with exchanged experts under a given routing (stage_timer.py's ``routing``): every
MoE layer is routed on its own, and expert-parallel imbalance reaches the stage time through the
busiest device (expert_load.py).

Per MoE layer: the representative layer's non-expert part (attention, router, dispatch and
combine of the dp group's tokens, shared experts; compiled once), plus the busiest device's
experts over the rows routed to them from the whole stage (all dp groups), plus the dispatch and
combine all-to-alls sized by the busiest device's rows. Two-batch overlap as in
``StageTimer._layer_cost``: the first micro-batch is routed and counted twice.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from opbsim.emulator.cluster import micro_batch
from opbsim.emulator.energy import EnergyParts
from opbsim.emulator.expert_load import busiest_groups, group_counts
from opbsim.emulator.stage_acc import DeviceAcc
from opbsim.workloads import primitives as P
from opbsim.workloads.attention import Shard
from opbsim.workloads.graph import LayerGraph, ModelGraph
from opbsim.workloads.moe import moe_ops
from opbsim.workloads.ops import OpClass, OpKind
from opbsim.workloads.routing import expert_counts
from opbsim.workloads.stage import Stage

if TYPE_CHECKING:
    from opbsim.emulator.stage_timer import StageTimer

__all__ = ["routed_layers", "group_experts_graph"]


def routed_layers(timer: StageTimer, group: Stage, rep_layer: int) -> DeviceAcc:
    """All MoE layers of ``timer.model`` for a dp group's ``group`` (fill_s set for overlap)."""
    model, par = timer.model, timer.cluster.parallel
    halves = timer.overlap and group.tokens >= 2
    g = micro_batch(group, 2) if halves else group
    stage_tokens = g.tokens * par.dp
    base = DeviceAcc()
    timer._time(timer._layer(g, True, rep_layer), base, 1)
    out, fill = DeviceAcc(), 0.0
    for layer in (i for i in range(model.num_layers) if model.is_moe_layer(i)):
        counts = expert_counts(timer.routing.route(layer, stage_tokens), model.num_experts)
        compute = base.scaled(1)
        compute.merge(max((_group_experts(timer, counts, gr) for gr in busiest_groups(counts, par.ep)),
                          key=lambda a: a.time_s))
        comm, comm_J = timer._exchange(g, stage_tokens, counts)
        if not halves:
            compute.add_comm(comm, 1, comm_J)
            out.merge(compute)
            continue
        part = compute.scaled(2)
        part.energy = part.energy + EnergyParts(interconnect=2 * comm_J)
        exposed = max(0.0, 2 * comm - 2 * compute.time_s)
        part.time_s += exposed
        part.by_class[OpClass.COMM] += exposed
        part.exposed_s += exposed
        part.by_bound["communication"] += exposed
        fill = max(fill, min(compute.time_s, comm))
        out.merge(part)
    out.fill_s = fill
    return out


def group_experts_graph(timer: StageTimer, local: tuple[int, ...]) -> ModelGraph:
    """One device's experts with ``local[i]`` rows each (all > 0), at 1/etp width."""
    model = replace(timer.model, num_experts=len(local), top_k=1)
    rows = sum(local)
    x = P.act("L0.h_norm", (rows, model.hidden_size), model.dtype)
    ops = tuple(op for op in moe_ops(model, Shard(timer.cluster.parallel.etp, 1, 1), "L0", x, local)
                if op.kind is OpKind.FFN and "expert" in op.params)
    return ModelGraph(model, Stage.decode(rows, 1), 1, (), (LayerGraph(0, True, ops),), ())


def _group_experts(timer: StageTimer, counts: np.ndarray, group: int) -> DeviceAcc:
    """A device of expert group ``group``, memoised on the timer by its sorted row counts (the time
    does not depend on which expert has which rows)."""
    row = group_counts(counts, timer.cluster.parallel.ep)[group]
    local = tuple(sorted((int(n) for n in row if n), reverse=True))
    hit = timer._expert_memo.get(local)
    if hit is None:
        hit = timer._expert_memo[local] = DeviceAcc()
        if local:
            timer._time(group_experts_graph(timer, local), hit, 1)
    return hit.scaled(1)
