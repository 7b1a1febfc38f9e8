"""Each layer written once: the instructions every graph op computes, against ``Builder``.

``DEFINITIONS[op.kind](builder, op)`` defines an op. The compiler interprets the definitions to
emit a program (compiler/lower.py); the numerics interpreter executes them on numerics.py
(emulator/layer_values.py). A new layer kind is one definition here plus, where it needs one, a
new instruction in the ISA table.
"""

from __future__ import annotations

from collections.abc import Callable

from opbsim.layers import attention, basic, ffn, long_conv, mla
from opbsim.layers.builder import Builder
from opbsim.layers.view import View
from opbsim.workloads.ops import Op, OpKind

__all__ = ["DEFINITIONS", "Builder", "Definition", "View", "definition_of"]

Definition = Callable[[Builder, Op], None]

DEFINITIONS: dict[OpKind, Definition] = {
    OpKind.EMBED: basic.embed, OpKind.NORM: basic.norm, OpKind.GEMM: basic.linear,
    OpKind.ALL_REDUCE: basic.all_reduce, OpKind.ALL_GATHER: basic.all_gather,
    OpKind.QK_NORM: attention.qk_norm,
    OpKind.ROPE: attention.rope, OpKind.Q_SCALE: attention.q_scale,
    OpKind.KV_STORE: attention.kv_store, OpKind.ATTENTION: attention.attention,
    OpKind.TOPK: ffn.topk, OpKind.DISPATCH: ffn.dispatch, OpKind.FFN: ffn.ffn, OpKind.COMBINE: ffn.combine,
    OpKind.LONG_CONV: long_conv.long_conv,
}
"""The definition of each op kind the compiler can lower; a kind without one is refused by name."""


def definition_of(op: Op) -> Definition | None:
    """The definition of ``op``: its MLA part's where it has one (``op.params["mla"]``), else its
    kind's; None for a kind nothing defines."""
    part = op.params.get("mla")
    if part is not None:
        return mla.DEFINITIONS[part]
    return DEFINITIONS.get(op.kind)
