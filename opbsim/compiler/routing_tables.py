"""The routing a MoE layer is specialised on, as the index tables its program reads.

The ISA has no data-dependent shapes, so a compiled MoE layer is specialised on its routing, as a
GPU runtime sizes its expert kernels after reading the router's output: ``Target.routing[layer]``
(int32 [tokens, top_k], e.g. the top-k ids of a reference run), or else an assignment consistent
with the graph's per-expert token counts (see ``assignment_from_counts``). Expert e's rows are its
tokens in increasing order.
"""

from __future__ import annotations

import numpy as np

from opbsim.compiler.ir import Placement
from opbsim.errors import InputError
from opbsim.layers.routing import LayerRouting, layer_routing
from opbsim.workloads.ops import OpKind

__all__ = ["LayerRouting", "RoutingTables", "assignment_from_counts"]


def assignment_from_counts(counts: np.ndarray, tokens: int) -> np.ndarray:
    """An int32 [tokens, k] assignment whose expert e appears counts[e] times, distinct per row.

    Experts are laid out in runs (largest count first) over the T*k slots column by column:
    token t takes slots t, t + T, ..., so a run of length <= T never gives a token an expert twice.
    """
    counts = np.asarray(counts, dtype=np.int64)
    k = int(counts.sum()) // tokens
    order = sorted(range(len(counts)), key=lambda e: (-counts[e], e))
    slots = np.concatenate([np.full(counts[e], e, dtype=np.int32) for e in order]) if k else np.zeros(0, np.int32)
    return slots.reshape(k, tokens).T.copy()


class RoutingTables:
    def __init__(self, placement: Placement):
        self._given = placement.target.routing or {}
        self._graph = placement.graph
        self._cache: dict[int, LayerRouting] = {}

    def layer(self, layer: int) -> LayerRouting:
        if layer not in self._cache:
            self._cache[layer] = self._build(layer)
        return self._cache[layer]

    def _counts(self, layer: int) -> np.ndarray:
        model = self._graph.model
        counts = np.zeros(model.num_experts, dtype=np.int64)
        layer_graph = next(lg for lg in self._graph.layers if lg.layer == layer)
        for op in layer_graph.ops:
            if op.kind is OpKind.FFN and "expert" in op.params:
                counts[op.params["expert"]] = op.params["tokens"]
        return counts

    def _build(self, layer: int) -> LayerRouting:
        T, k, E = self._graph.stage.tokens, self._graph.model.top_k, self._graph.model.num_experts
        counts = self._counts(layer)
        if layer in self._given:
            ids = np.asarray(self._given[layer])
            if ids.shape != (T, k) or ids.min(initial=0) < 0 or ids.max(initial=0) >= E:
                raise InputError(f"routing for layer {layer}: expected int expert ids in 0..{E - 1} of shape "
                                 f"({T}, {k}), got shape {ids.shape}")
            if not np.array_equal(np.bincount(ids.ravel(), minlength=E), counts):
                raise InputError(f"routing for layer {layer} disagrees with the graph's expert token counts")
            ids = ids.astype(np.int32)
        else:
            ids = assignment_from_counts(counts, T)
        return layer_routing(ids, E)
