"""Pass 3, tile: each placed op lowered to instructions over buffer views, split to fit buffers.

``Lowerer`` is the emitting interpreter of the layer definitions (opbsim/layers): what each op
computes is defined there once; here its buffers get addresses in the device's layout, its
scratch a place on the unit, and its PIM GEMMs row tiles that fit the Logic-PIM buffers. The
values (docs/compiler.md): weights are stored [in, out] row-major; every activation is bf16
except the router logits, routing probabilities and weights (fp32); each instruction rounds its
result to its destination dtype.
"""

from __future__ import annotations

import numpy as np

from opbsim.compiler.ir import Draft, Kernel, Kernels, Placement, View
from opbsim.compiler.layout import Layout
from opbsim.compiler.routing_tables import RoutingTables
from opbsim.errors import DoesNotFit, InputError
from opbsim.isa.program import AttentionPart
from opbsim.isa.types import DType, Space, Unit
from opbsim.layers import definition_of
from opbsim.layers.view import rows as view_rows
from opbsim.workloads.attention import make_shard
from opbsim.workloads.ops import Op

__all__ = ["tile", "Lowerer"]


class Lowerer:
    """Lowers ops one by one (a ``layers.Builder``); holds the layout and the constants."""

    def __init__(self, placement: Placement):
        graph = placement.graph
        self.placement = placement
        self.model = graph.model
        self.stage = graph.stage
        self.tp = graph.tp
        self.shard = make_shard(graph.model, graph.tp)
        self.device = placement.target.device
        self.layout = Layout(self.device)
        self.constants: dict[str, tuple[View, np.ndarray]] = {}
        self.routing = RoutingTables(placement)
        self._drafts: list[Draft] = []
        self._unit = Unit.XPU
        self._op = ""
        self._named: dict[str, int] = {}
        self.layer: int | None = None  # the decoder layer of the op being lowered

    # -- helpers used by every lowering ------------------------------------------------------

    def buf(self, name: str, dtype: DType, shape: tuple[int, ...], *, expert: int | None = None,
            kv_layer: int | None = None) -> View:
        """The HBM buffer ``name`` (``Layout.buffer``: ``expert`` and ``kv_layer`` choose its section)."""
        return self.layout.buffer(name, dtype, shape, expert=expert, kv_layer=kv_layer)

    def const(self, name: str, values: np.ndarray, dtype: DType = DType.I32, *, expert: int | None = None) -> View:
        """A constant table the program reads (routing indices, positions, zeros, DFT factors as bf16
        bits); ``expert``: a routed expert's table, kept in that expert's section."""
        data = np.ascontiguousarray(values, dtype={DType.I32: np.int32, DType.FP32: np.float32,
                                                   DType.BF16: np.uint16}[dtype])  # bf16: raw bits
        if name in self.constants:
            view, old = self.constants[name]
            if not np.array_equal(old, data):
                raise ValueError(f"constant {name} defined twice with different values")
            return view
        view = self.layout.buffer(name, dtype, data.shape, expert=expert)
        self.constants[name] = (view, data)
        return view

    def scratch(self, name: str, dtype: DType, shape: tuple[int, ...]) -> View:
        """A kernel-local intermediate. A dataflow chip's PCU has no kernel-local scratch: each
        intermediate is a buffer of its own (``<op>.<name>``, ``.<n>`` from the second on) that the
        policy's memory plan places (SRAM when it stays inside one kernel, else HBM)."""
        if self.device.model.scratch_is_buffer(self._unit):
            n = self._named.get(name, 0)
            self._named[name] = n + 1
            return self.layout.buffer(f"{self._op}.{name}" + (f".{n}" if n else ""), dtype, shape)
        return self.layout.scratch(self._unit, name, dtype, shape)

    def emit(self, mnemonic: str, *operands: View | int | float, grouped: bool = False,
             attention: AttentionPart | None = None) -> None:
        self._drafts.append(Draft(mnemonic, self._unit, tuple(operands), grouped=grouped, attention=attention))

    def new_part(self) -> None:
        self.layout.reset_scratch()

    def row_tile(self, k: int, n: int, *, partial_B: int = 4) -> int | None:
        """Rows per tile so that a PIM GEMM's inputs (rows x k bf16) and partial sums (rows x n of
        ``partial_B`` bytes: gemm_fp8 keeps a block's sum beside the scaled accumulator) each fit half
        of the Logic-PIM buffers; None off PIM (the xPU tiles inside its kernel)."""
        if self._unit is not Unit.PIM:
            return None
        half = self.device.memory(Space.PIMBUF).capacity_B // 2
        rows = min(half // (2 * k), half // (partial_B * n))
        if rows < 1:
            raise DoesNotFit(f"does not fit: one row of a {k} x {n} GEMM exceeds the Logic-PIM buffers")
        return rows

    def gemm(self, out: View, x: View, w: View, *, grouped: bool = False) -> None:
        """out = x w, split into row tiles on PIM (each tile streams the weights again)."""
        step = self.row_tile(x.shape[-1], w.shape[-1]) or x.shape[0]
        for r in range(0, x.shape[0], step):
            n = min(step, x.shape[0] - r)
            self.emit("gemm", view_rows(out, r, n), view_rows(x, r, n), w, grouped=grouped)

    # -- driver -------------------------------------------------------------------------------

    def lower(self, op: Op, unit: Unit, layer: int | None = None) -> Kernel:
        """``op``'s kernel on ``unit``; ``layer``: the decoder layer ``op`` belongs to (None outside)."""
        self._drafts, self._unit, self._op, self._named, self.layer = [], unit, op.name, {}, layer
        self.layout.reset_scratch()
        definition = definition_of(op)
        if definition is None:
            raise InputError(f"{op.name}: the compiler cannot lower {op.kind.value} ops yet")
        definition(self, op)
        buffers = {v.buffer for d in self._drafts for v in d.operands if isinstance(v, View)}
        writes = {v.buffer for d in self._drafts for f, v in zip(d.spec.fields, d.operands)
                  if isinstance(v, View) and f.name in d.spec.writes}
        return Kernel(op.name, unit, tuple(self._drafts), frozenset(buffers - writes), frozenset(writes),
                      layer=layer)


def tile(placement: Placement) -> Kernels:
    lowerer = Lowerer(placement)
    layer_of = placement.graph.layer_of
    kernels = tuple(lowerer.lower(p.op, p.unit, layer_of.get(p.op.name)) for p in placement.ops)
    base = lowerer.layout.finish()
    kernels = tuple(_rebase(k, base) for k in kernels)
    return Kernels(placement, kernels, lowerer.constants, lowerer.layout.buffers)


def _rebase(kernel: Kernel, scratch_base: int) -> Kernel:
    from dataclasses import replace

    from opbsim.compiler.layout import SCRATCH

    def fix(v):
        if isinstance(v, View) and v.buffer == SCRATCH:
            return replace(v, buffer="scratch", base_B=v.base_B + scratch_base)
        return v

    drafts = tuple(replace(d, operands=tuple(fix(v) for v in d.operands)) for d in kernel.drafts)
    rename = lambda names: frozenset("scratch" if n == SCRATCH else n for n in names)  # noqa: E731
    return replace(kernel, drafts=drafts, reads=rename(kernel.reads), writes=rename(kernel.writes))
