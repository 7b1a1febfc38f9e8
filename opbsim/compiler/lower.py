"""Pass 3, tile: each placed op lowered to instructions over buffer views, split to fit buffers.

The values a compiled stage computes (the layer's numerics definition, docs/compiler.md):
token rows are the prefill chunks' tokens in order, then one row per decoding request; weights
are stored [in, out] row-major; every activation is bf16 except the router logits, routing
probabilities and weights (fp32); each instruction rounds its result to its destination dtype.
Attention lowerings live in lower_attention.py, feed-forward ones in lower_ffn.py.
"""

from __future__ import annotations

import numpy as np

from opbsim.compiler.ir import Draft, Kernel, Kernels, Placement, View
from opbsim.compiler.layout import Layout
from opbsim.compiler.routing_tables import RoutingTables
from opbsim.errors import DoesNotFit, InputError
from opbsim.isa.program import AttentionPart
from opbsim.isa.spec import Opcode
from opbsim.isa.types import DType, Space, Unit
from opbsim.workloads.attention import make_shard
from opbsim.workloads.models import Norm
from opbsim.workloads.ops import Op, OpKind, Role

__all__ = ["tile", "Lowerer"]


class Lowerer:
    """Lowers ops one by one; holds the layout, the constants and the stage's row bookkeeping."""

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

    def broadcast(self, view: View, shape: tuple[int, ...]) -> View:
        """``view`` broadcast to ``shape`` as numpy does: new leading axes and size-1 axes get stride 0."""
        lead = len(shape) - len(view.shape)
        strides = [0] * lead
        for have, want, stride in zip(view.shape, shape[lead:], view.strides):
            if have not in (want, 1):
                raise ValueError(f"cannot broadcast {view.shape} to {shape}")
            strides.append(stride if have == want else 0)
        return View(view.buffer, view.space, view.base_B, view.dtype, shape, tuple(strides))

    def emit(self, mnemonic: str, *operands: View | int | float, grouped: bool = False,
             attention: AttentionPart | None = None) -> None:
        self._drafts.append(Draft(mnemonic, self._unit, tuple(operands), grouped=grouped, attention=attention))

    def rows(self, view: View, start: int, count: int) -> View:
        """Rows [start, start + count) of a view whose first axis is rows."""
        return View(view.buffer, view.space, view.base_B + start * view.strides[0] * view.dtype.itemsize_B,
                    view.dtype, (count, *view.shape[1:]), view.strides)

    def pim_rows(self, k: int, n: int) -> int | None:
        """Rows per tile so that a PIM GEMM's inputs (rows x k bf16) and partial sums (rows x n fp32)
        each fit half of the Logic-PIM buffers; None off PIM (the xPU tiles inside its kernel)."""
        if self._unit is not Unit.PIM:
            return None
        half = self.device.memory(Space.PIMBUF).capacity_B // 2
        rows = min(half // (2 * k), half // (4 * n))
        if rows < 1:
            raise DoesNotFit(f"does not fit: one row of a {k} x {n} GEMM exceeds the Logic-PIM buffers")
        return rows

    def gemm(self, out: View, x: View, w: View) -> None:
        """out = x w, split into row tiles on PIM (each tile streams the weights again)."""
        step = self.pim_rows(x.shape[-1], w.shape[-1]) or x.shape[0]
        for r in range(0, x.shape[0], step):
            n = min(step, x.shape[0] - r)
            self.emit("gemm", self.rows(out, r, n), self.rows(x, r, n), w)

    # -- driver -------------------------------------------------------------------------------

    def lower(self, op: Op, unit: Unit, layer: int | None = None) -> Kernel:
        """``op``'s kernel on ``unit``; ``layer``: the decoder layer ``op`` belongs to (None outside)."""
        from opbsim.compiler.lower_attention import lower_attention, lower_kv_store, lower_rope
        from opbsim.compiler.lower_ffn import lower_combine, lower_dispatch, lower_ffn, lower_topk
        from opbsim.compiler.lower_fftconv import lower_long_conv

        self._drafts, self._unit, self._op, self._named, self.layer = [], unit, op.name, {}, layer
        self.layout.reset_scratch()
        handler = {
            OpKind.EMBED: _embed, OpKind.NORM: _norm, OpKind.GEMM: _gemm_op, OpKind.ROPE: lower_rope,
            OpKind.KV_STORE: lower_kv_store, OpKind.ATTENTION: lower_attention, OpKind.TOPK: lower_topk,
            OpKind.DISPATCH: lower_dispatch, OpKind.FFN: lower_ffn, OpKind.COMBINE: lower_combine,
            OpKind.ALL_REDUCE: _all_reduce, OpKind.ALL_GATHER: _all_gather, OpKind.LONG_CONV: lower_long_conv,
        }.get(op.kind)
        if handler is None:
            raise InputError(f"{op.name}: the compiler cannot lower {op.kind.value} ops yet")
        handler(self, op)
        buffers = {v.buffer for d in self._drafts for v in d.operands if isinstance(v, View)}
        writes = {d.operands[0].buffer for d in self._drafts if isinstance(d.operands[0], View)}
        if any(d.opcode is Opcode.TOPK for d in self._drafts):
            writes |= {d.operands[1].buffer for d in self._drafts if d.opcode is Opcode.TOPK}
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


# -- the simple ops -------------------------------------------------------------------------------


def _embed(lw: Lowerer, op: Op) -> None:
    """x0 = embed_tokens[token_ids] (+ embed_positions[position] with learned positions, one bf16 add)."""
    from opbsim.compiler.lower_attention import positions

    m = lw.model
    T, h = lw.stage.tokens, m.hidden_size
    table = lw.buf("embed_tokens", m.dtype, (m.vocab_size, h))
    x0 = lw.buf("x0", m.dtype, (T, h))
    if not m.learned_positions:
        lw.emit("gather", x0, table, lw.buf("token_ids", DType.I32, (T,)))
        return
    pos = positions(lw.stage)
    if pos.max(initial=0) >= m.learned_positions:
        raise InputError(f"{op.name}: position {int(pos.max())} is past the {m.learned_positions} learned positions")
    tokens = lw.scratch("token_rows", m.dtype, (T, h))
    rows = lw.scratch("position_rows", m.dtype, (T, h))
    lw.emit("gather", tokens, table, lw.buf("token_ids", DType.I32, (T,)))
    lw.emit("gather", rows, lw.buf("embed_positions", m.dtype, (m.learned_positions, h)), lw.const("positions", pos))
    lw.emit("add", x0, tokens, rows)


def _norm(lw: Lowerer, op: Op) -> None:
    m = lw.model
    x_spec, out_spec = op.inputs[0], op.outputs[0]
    rows, h = x_spec.shape
    T = lw.stage.tokens
    x = lw.buf(x_spec.name, m.dtype, (T, h))
    residual = lw.buf(op.inputs[1].name, m.dtype, (T, h)) if op.params["residual"] else None
    weights = [lw.buf(t.name, m.dtype, (h,)) for t in op.inputs if t.role is Role.WEIGHT]
    if rows != T:  # the final norm sees only the rows that sample a token
        sel = lw.const("logit_rows", logit_rows(lw.stage))
        picked = lw.scratch("final_rows", m.dtype, (rows, h))
        lw.emit("gather", picked, x, sel)
        x = picked
        if residual is not None:
            picked_r = lw.scratch("final_residual", m.dtype, (rows, h))
            lw.emit("gather", picked_r, residual, sel)
            residual = picked_r
    if residual is not None:
        total = lw.buf(op.outputs[1].name, m.dtype, (rows, h)) if len(op.outputs) > 1 else \
            lw.scratch("residual_sum", m.dtype, (rows, h))
        lw.emit("add", total, x, residual)
        x = total
    out, eps = lw.buf(out_spec.name, m.dtype, (rows, h)), float(np.float32(m.norm_eps))
    if m.norm is Norm.RMS:
        lw.emit("rmsnorm", out, x, weights[0], eps)
    else:  # LayerNorm; without a bias parameter the bias is +0
        bias = weights[1] if len(weights) > 1 else lw.broadcast(lw.const("zero", np.zeros(1, np.float32), DType.FP32),
                                                                 (h,))
        lw.emit("layernorm", out, x, weights[0], bias, eps)


def logit_rows(stage) -> np.ndarray:
    """The token rows that sample a token: each final chunk's last row, then every decode row."""
    rows, start = [], 0
    for c in stage.prefill:
        start += c.new_tokens
        if c.final:
            rows.append(start - 1)
    rows.extend(range(start, start + stage.decode_tokens))
    return np.asarray(rows, dtype=np.int32)


def _gemm_op(lw: Lowerer, op: Op) -> None:
    """y = x W; with a bias, y = round(fp32(x W) + b): the bias is added before the one rounding."""
    m = lw.model
    x_spec, w_spec, y_spec = op.inputs[0], op.inputs[1], op.outputs[0]
    k, n = w_spec.shape
    rows = x_spec.numel // k
    x = lw.buf(x_spec.name, x_spec.dtype, (rows, k))
    if w_spec.name == "embed_tokens":  # tied LM head: the embedding table, transposed by its strides
        table = lw.buf("embed_tokens", m.dtype, (m.vocab_size, k))
        w = View(table.buffer, table.space, table.base_B, m.dtype, (k, n), (1, k))
    else:
        w = lw.buf(w_spec.name, w_spec.dtype, (k, n))
    y = lw.buf(y_spec.name, y_spec.dtype, (rows, n))
    if len(op.inputs) == 2:
        lw.gemm(y, x, w)
        return
    acc = lw.scratch("gemm_acc", DType.FP32, (rows, n))
    lw.gemm(acc, x, w)
    lw.emit("add", y, acc, lw.broadcast(lw.buf(op.inputs[2].name, m.dtype, (n,)), (rows, n)))


def _all_reduce(lw: Lowerer, op: Op) -> None:
    x = op.inputs[0]
    view = lw.buf(x.name, x.dtype, x.shape)
    lw.emit("allreduce", lw.buf(op.outputs[0].name, x.dtype, x.shape), view, lw.tp)


def _all_gather(lw: Lowerer, op: Op) -> None:
    x, y = op.inputs[0], op.outputs[0]
    lw.emit("allgather", lw.buf(f"{y.name}.gathered", x.dtype, (lw.tp, *x.shape)), lw.buf(x.name, x.dtype, x.shape),
            lw.tp)
