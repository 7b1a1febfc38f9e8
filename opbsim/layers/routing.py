"""A MoE layer's routing as the index tables its definition reads.

Expert e's rows are its tokens in increasing order; ``slots[e]`` the flat index t * k + j of each
of those choices in the [T, k] top-k arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LayerRouting", "layer_routing"]


@dataclass(frozen=True, slots=True)
class LayerRouting:
    """``ids`` [T, k]; ``tokens[e]`` (ascending) the rows routed to expert e; ``slots[e]`` the flat
    index t * k + j of each of those choices."""

    ids: np.ndarray
    tokens: tuple[np.ndarray, ...]
    slots: tuple[np.ndarray, ...]


def layer_routing(ids: np.ndarray, experts: int) -> LayerRouting:
    """The tables of int32 expert ids [T, k] (each in 0..experts-1)."""
    ids = np.asarray(ids, dtype=np.int32)
    k = ids.shape[1]
    tokens, slots = [], []
    for e in range(experts):
        t, j = np.nonzero(ids == e)
        order = np.argsort(t, kind="stable")
        tokens.append(t[order].astype(np.int32))
        slots.append((t[order] * k + j[order]).astype(np.int32))
    return LayerRouting(ids, tuple(tokens), tuple(slots))
