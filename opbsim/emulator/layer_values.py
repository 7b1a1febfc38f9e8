"""The numerics definition of a stage: the layer definitions (opbsim/layers) executed at once.

``NumericsBuilder`` interprets the same definitions the compiler lowers, but executes each
instruction as it is stated, on buffers held apart by name: no layout, no placement, no tiling,
no scheduling. A compiled program of the stage must reproduce these values bit for bit, whatever
the device and policy did to it. Products are ordered_gemm's (numerics.gemm's k-ordered sums,
sharing no code with the executor's GEMM kernels, which they check); every other instruction
runs the executor's per-instruction semantics (emulator/ops.py: the operand checks, then
numerics.py).

Every graph op runs in graph order. A MoE layer's routing is read from its top-k instruction's
output once that has run (``routed(layer, ids)`` is told then, before any expert weight is read),
and the rest of the layer is the graph of that routing, as a runtime sizes its expert kernels
after reading the router. Tensor parallelism is not interpreted (tp 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from opbsim.emulator import ordered_gemm
from opbsim.emulator.context import OpContext
from opbsim.emulator.ops import HANDLERS
from opbsim.isa import numerics as N
from opbsim.isa.fp8 import FP8_TO_BF16_BITS
from opbsim.isa.program import AttentionPart
from opbsim.isa.spec import BY_MNEMONIC, Opcode
from opbsim.isa.types import Descriptor, DType, Space, Unit
from opbsim.layers import definition_of
from opbsim.layers.routing import LayerRouting, layer_routing
from opbsim.layers.stage_rows import cache_buffers
from opbsim.layers.view import View
from opbsim.workloads.attention import make_shard
from opbsim.workloads.graph import build_layer, build_model
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.ops import Op, OpKind, Role
from opbsim.workloads.stage import Stage

__all__ = ["NumericsBuilder", "LayerTables", "StageValues", "stage_values", "run_stage", "run_op", "WeightBits"]

WeightBits = Callable[[str], "np.ndarray | None"]
"""A weight's raw storage by buffer name (bf16 bits, shaped as the buffer), None if not a weight."""


class _Buffers:
    """Named flat storage; the memory the executor's handlers read and write (a DataMemory's API)."""

    def __init__(self) -> None:
        self.store: dict[str, np.ndarray] = {}

    def raw(self, desc: Descriptor) -> np.ndarray:
        flat = self.store[desc.name]
        size = flat.itemsize
        if desc.base_B % size:
            raise ValueError(f"{desc.name}: offset {desc.base_B} B is not a whole element")
        first = desc.base_B // size
        last = first + sum((n - 1) * s for n, s in zip(desc.shape, desc.strides_elems))
        if last >= flat.size:
            raise ValueError(f"{desc.name}: a view up to element {last} of a {flat.size}-element buffer")
        return np.lib.stride_tricks.as_strided(flat[first:], desc.shape,
                                               tuple(s * size for s in desc.strides_elems), writeable=True)

    def write_raw(self, desc: Descriptor, raw) -> None:
        self.raw(desc)[...] = raw

    def load(self, desc: Descriptor) -> np.ndarray:
        return np.array(N.widen(self.raw(desc), desc.dtype), copy=True)


@dataclass(frozen=True, slots=True)
class _Inst:
    opcode: Opcode
    unit: Unit


@dataclass(frozen=True, slots=True)
class _DraftContext(OpContext):
    """An instruction as a definition states it: operands by field name, no program."""

    operands: Mapping[str, View | int | float] = None  # type: ignore[assignment]

    def desc(self, field: str) -> Descriptor:
        return self.operands[field].descriptor()

    def imm(self, field: str):
        return self.operands[field]


class LayerTables:
    """``routing.layer(l)``: the tables of the ids layer l's top-k wrote."""

    def __init__(self) -> None:
        self.tables: dict[int, LayerRouting] = {}

    def layer(self, layer: int) -> LayerRouting:
        return self.tables[layer]


class NumericsBuilder:
    """A ``layers.Builder`` that executes each instruction at once (see the module docstring)."""

    def __init__(self, model: ModelConfig, stage: Stage, weights: WeightBits,
                 routed: Callable[[int, np.ndarray], None] | None = None):
        self.model, self.stage, self.tp = model, stage, 1
        self.shard = make_shard(model, 1)
        self.layer: int | None = None
        self.weight_names: set[str] = set()  # a buffer by one of these names must come from ``weights``
        self.routing = LayerTables()
        self._weights, self._routed = weights, routed
        self._memory = _Buffers()
        self._dtypes: dict[str, DType] = {}
        self._op, self._scratch = "", 0

    # -- Builder ------------------------------------------------------------------------------

    def buf(self, name: str, dtype: DType, shape: tuple[int, ...], *, expert: int | None = None,
            kv_layer: int | None = None) -> View:
        if name not in self._memory.store:
            bits = self._weights(name)
            if bits is None and name in self.weight_names:
                raise KeyError(f"no bits for weight {name}")
            if bits is None:
                bits = np.zeros(math.prod(shape), N.STORAGE[dtype])
            elif bits.dtype != N.STORAGE[dtype]:
                raise ValueError(f"weight {name} is {dtype.name.lower()}, given as numpy {bits.dtype}")
            self._hold(name, dtype, bits)
        elif self._dtypes[name] is not dtype or self._memory.store[name].size < math.prod(shape):
            raise ValueError(f"buffer {name} reused as {dtype.name} {shape}")
        return View(name, Space.HBM, 0, dtype, shape)

    def const(self, name: str, values: np.ndarray, dtype: DType = DType.I32, *, expert: int | None = None) -> View:
        data = np.ascontiguousarray(values, dtype=N.STORAGE[dtype])
        if name in self._memory.store and not np.array_equal(self._memory.store[name], data.reshape(-1)):
            raise ValueError(f"constant {name} defined twice with different values")
        self._hold(name, dtype, data)
        return View(name, Space.HBM, 0, dtype, data.shape)

    def scratch(self, name: str, dtype: DType, shape: tuple[int, ...]) -> View:
        self._scratch += 1
        full = f"scratch.{self._op}.{name}.{self._scratch}"
        self._hold(full, dtype, np.zeros(math.prod(shape), N.STORAGE[dtype]))
        return View(full, Space.HBM, 0, dtype, shape)

    def new_part(self) -> None:
        """Scratch is never reused here: each part's is its own."""

    def emit(self, mnemonic: str, *operands: View | int | float, grouped: bool = False,
             attention: AttentionPart | None = None) -> None:
        spec = BY_MNEMONIC[mnemonic]
        fields = {f.name: v for f, v in zip(spec.fields, operands)}
        if spec.opcode in (Opcode.GEMM, Opcode.GEMM_ACC):
            self._product(spec.opcode, *(fields[n].descriptor() for n in ("dst", "a", "b")))
            return
        if spec.opcode is Opcode.GEMM_FP8:
            self._product_fp8(*(fields[n].descriptor() for n in ("dst", "a", "b", "sa", "sb")),
                              int(fields["block_k"]), int(fields["block_n"]))
            return
        HANDLERS[spec.opcode](_DraftContext(None, self._memory, _Inst(spec.opcode, Unit.XPU), fields))

    def _product(self, opcode: Opcode, dst: Descriptor, a: Descriptor, b: Descriptor) -> None:
        """numerics.gemm by ordered_gemm. Where b repeats along a batch axis (stride 0: keys shared by
        a query group), that axis joins a's rows, one product instead of one per repeat: each
        output row's sums are its own, so the values are the same."""
        if a.dtype is not DType.BF16 or b.dtype is not DType.BF16:
            raise ValueError(f"gemm of {a.name} ({a.dtype.name}) and {b.name} ({b.dtype.name}): bf16 operands only")
        lead = len(a.shape) - 2
        if len(b.shape) != len(a.shape) or b.shape[:lead] != a.shape[:lead] or b.shape[-2] != a.shape[-1] \
                or dst.shape != (*a.shape[:-1], b.shape[-1]):
            raise ValueError(f"gemm of {a.shape} and {b.shape} into {dst.name} {dst.shape}")
        av, bv = N.widen(self._memory.raw(a), DType.BF16), self._memory.raw(b)
        acc = self._memory.load(dst) if opcode is Opcode.GEMM_ACC else None
        shared = [i for i in range(lead) if b.strides_elems[i] == 0 and b.shape[i] > 1][:1]
        if not shared:
            out = ordered_gemm.gemm_bf16(av, bv, acc)
        else:
            z = shared[0]
            fold = lambda t: np.moveaxis(t, z, -3).reshape(*np.delete(t.shape, z)[:-2], -1, t.shape[-1])  # noqa: E731
            folded = ordered_gemm.gemm_bf16(fold(av), bv[(slice(None),) * z + (0,)], None if acc is None else fold(acc))
            moved = (*np.delete(dst.shape, z)[:-2], dst.shape[z], *dst.shape[-2:])
            out = np.moveaxis(folded.reshape(moved), -3, z)
        self._memory.write_raw(dst, N.store(out, dst.dtype))

    def _product_fp8(self, dst: Descriptor, a: Descriptor, b: Descriptor, sa: Descriptor, sb: Descriptor,
                     block_k: int, block_n: int) -> None:
        """numerics_fp8.gemm_fp8 with each k block's partial sums by ordered_gemm (every e4m3 value
        is exact in bf16, so a block's sums are numerics.gemm's of the bf16 forms), then scaled and
        added in block order. The executor runs the operand checks first (its handler's)."""
        if a.dtype not in (DType.BF16, DType.FP8_E4M3) or b.dtype is not DType.FP8_E4M3 or a.shape[-1] != b.shape[-2] \
                or sa.shape[-1] != -(-a.shape[-1] // block_k) or sb.shape[-1] != -(-b.shape[-1] // block_n):
            raise ValueError(f"gemm_fp8 of {a.name} {a.dtype.name} {a.shape} and {b.name} {b.dtype.name} {b.shape}")
        ra = self._memory.raw(a)
        av = N.widen(ra if a.dtype is DType.BF16 else FP8_TO_BF16_BITS[ra], DType.BF16)
        bits = FP8_TO_BF16_BITS[self._memory.raw(b)]
        scale_a, scale_b = self._memory.load(sa), self._memory.load(sb)
        k_dim, col_block = a.shape[-1], np.arange(b.shape[-1]) // block_n
        acc = np.zeros(dst.shape, np.float32)
        with np.errstate(all="ignore"):
            for j in range(-(-k_dim // block_k)):
                ks = slice(j * block_k, min(k_dim, (j + 1) * block_k))
                p = ordered_gemm.gemm_bf16(np.ascontiguousarray(av[..., ks]), bits[..., ks, :])
                s = scale_a[..., :, j, None] * scale_b[..., None, j, col_block]
                acc = acc + s * p
        self._memory.write_raw(dst, N.store(acc, dst.dtype))

    def gemm(self, out: View, x: View, w: View, *, grouped: bool = False) -> None:
        self.emit("gemm", out, x, w, grouped=grouped)

    def row_tile(self, k: int, n: int, *, partial_B: int = 4) -> int | None:
        return None

    # -- driver -------------------------------------------------------------------------------

    def hold(self, name: str, dtype: DType, raw: np.ndarray) -> None:
        """Give buffer ``name`` these contents (raw storage; kept, not copied, where contiguous)."""
        self._hold(name, dtype, np.asarray(raw, N.STORAGE[dtype]))

    def run(self, op: Op, layer: int | None) -> None:
        self._op = op.name
        run_op(self, op, layer, self._routed)

    def raw(self, name: str) -> np.ndarray:
        """Buffer ``name``'s raw storage, flat."""
        return self._memory.store[name]

    def dtype(self, name: str) -> DType:
        return self._dtypes[name]

    def _hold(self, name: str, dtype: DType, data: np.ndarray) -> None:
        self._memory.store[name] = data.reshape(-1)
        self._dtypes[name] = dtype


class StageValues(Mapping[str, np.ndarray]):
    """A stage's buffers after the run: ``raw(name)`` their storage (shaped as the graph's tensor
    where known), ``values[name]`` their values (float32 for bf16 / fp32, int32 for i32)."""

    def __init__(self, builder: NumericsBuilder, shapes: Mapping[str, tuple[int, ...]]):
        self._b, self._shapes = builder, shapes

    def raw(self, name: str) -> np.ndarray:
        flat = self._b.raw(name)
        shape = self._shapes.get(name)
        return flat.reshape(shape) if shape and math.prod(shape) == flat.size else flat

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._b._memory.store or name.startswith("scratch."):
            raise KeyError(name)
        return N.widen(self.raw(name), self._b.dtype(name))

    def __iter__(self):
        return (n for n in self._b._memory.store if not n.startswith("scratch."))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def stage_values(model: ModelConfig, stage: Stage, weights: WeightBits, *, token_ids: np.ndarray | None = None,
                 caches: Mapping[int, tuple[np.ndarray, np.ndarray]] | None = None,
                 layers: Iterable[int] | None = None, stream: np.ndarray | None = None,
                 delta: np.ndarray | None = None,
                 routed: Callable[[int, np.ndarray], None] | None = None) -> StageValues:
    """The values of a stage of ``model`` (tp 1), by buffer name.

    ``weights(name)``: a weight's bits (see ``WeightBits``). ``caches[l]``: raw bf16 arrays of layer
    l's cache buffers (raw, in the model's kv_dtype) in ``layers.stage_rows.cache_buffers`` order and
    shapes ((k, v) [R, S, KV, d],
    or MLA's one [R, S, c + dr]) with each request's past rows filled; the stage's new rows are written into
    them (the caller's arrays are the cache buffers: copy them first to keep the old rows).
    By default the whole model from ``token_ids``; with ``layers`` only those decoder layers, from
    the residual ``stream`` (the input of the first, raw bf16 [T, hidden]) and the previous layer's
    FFN output ``delta`` (None for layer 0). ``routed``: see the module docstring."""
    builder = NumericsBuilder(model, stage, weights, routed)
    shapes = run_stage(builder, model, stage, token_ids=token_ids, caches=caches, layers=layers, stream=stream,
                       delta=delta)
    return StageValues(builder, shapes)


def run_op(builder, op: Op, layer: int | None, routed: Callable[[int, np.ndarray], None] | None = None) -> None:
    """Interpret ``op``'s definition on ``builder`` (a ``layers.Builder`` with ``raw(name)``, the
    flat raw storage of a buffer, and ``routing``, a ``LayerTables``); after a top-k, record the
    routing its ids chose and tell ``routed(layer, ids)``."""
    builder.layer = layer
    definition = definition_of(op)
    if definition is None:
        raise ValueError(f"{op.name}: no definition of {op.kind.value} ops")
    definition(builder, op)
    if op.kind is OpKind.TOPK:
        ids = builder.raw(f"L{layer}.topk_ids").reshape(builder.stage.tokens, builder.model.top_k).copy()
        builder.routing.tables[layer] = layer_routing(ids, builder.model.num_experts)
        if routed:
            routed(layer, ids)


def run_stage(builder, model: ModelConfig, stage: Stage, *, token_ids: np.ndarray | None = None,
              caches: Mapping[int, tuple[np.ndarray, np.ndarray]] | None = None,
              layers: Iterable[int] | None = None, stream: np.ndarray | None = None,
              delta: np.ndarray | None = None) -> dict[str, tuple[int, ...]]:
    """Run the stage's ops on ``builder`` (an interpreter with ``hold``, ``run``, ``routing`` and
    ``weight_names``), the arguments as ``stage_values``'; returns the graph's tensor shapes."""
    graph = build_model(model, stage)
    for layer, arrays in (caches or {}).items():
        for name, raw in zip(cache_buffers(model, stage, layer), arrays, strict=True):
            builder.hold(name, model.kv_dtype, raw)
    if layers is None:
        builder.hold("token_ids", DType.I32, token_ids)
        chosen = graph.layers
        for op in graph.prologue:
            builder.run(op, None)
    else:
        wanted = tuple(layers)
        chosen = tuple(lg for lg in graph.layers if lg.layer in wanted)
        first = wanted[0]
        builder.hold(f"L{first - 1}.h" if first else "x0", model.dtype, stream)
        if delta is not None:
            builder.hold(f"L{first - 1}.ffn_out", model.dtype, delta)
    shapes = {t.name: t.shape for op in graph.ops for t in (*op.inputs, *op.outputs)}
    builder.weight_names |= _weights_of(graph.ops)
    for layer_graph in chosen:
        _run_layer(builder, model, stage, layer_graph, shapes)
    if layers is None:
        for op in graph.epilogue:
            builder.run(op, None)
    return shapes


def _run_layer(builder, model: ModelConfig, stage: Stage, layer_graph, shapes: dict) -> None:
    """Run one decoder layer's ops; after its top-k, the ops of the routing it chose."""
    layer, ops, done = layer_graph.layer, list(layer_graph.ops), set()
    while ops:
        op = ops.pop(0)
        builder.run(op, layer)
        done.add(op.name)
        if op.kind is OpKind.TOPK:
            ids = builder.routing.layer(layer).ids
            counts = np.bincount(ids.ravel(), minlength=model.num_experts)
            routed_graph = build_layer(model, stage, layer, expert_tokens=counts)
            ops = [o for o in routed_graph.ops if o.name not in done]
            builder.weight_names |= _weights_of(ops)
            shapes.update({t.name: t.shape for o in ops for t in (*o.inputs, *o.outputs)})


def _weights_of(ops: Iterable[Op]) -> set[str]:
    return {t.name for op in ops for t in op.inputs if t.role is Role.WEIGHT}
