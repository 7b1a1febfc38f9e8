"""The layer definitions (opbsim/layers) interpreted on an ``Ops``: the kernels of
reference/interface.py, on a GPU (``GpuOps``: the CUDA kernels) or on the CPU (``NumpyOps``).

``OpsBuilder`` is a ``layers.Builder`` like layer_values.NumericsBuilder, with the same buffers
held apart by name, but each buffer is one contiguous tensor of the ``Ops`` (uploaded once: a
weight's bits, a KV cache, a constant; zeros otherwise) and each instruction is one ``Ops`` call
on views of those tensors (``ops.view``: the view's element strides and offset), its result
copied into the destination view (``ops.copy_into``). Routing reads the top-k ids back to the
host, as a runtime does. So a stage run here computes, kernel by kernel, what the numerics
definition computes instruction by instruction, and must equal it bit for bit: on NumpyOps the
arithmetic is numerics.py's own, on a GPU that of the CUDA kernels.

Tensor parallelism is not interpreted (tp 1): collectives are refused by name, as is any
instruction with no ``Ops`` method.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from opbsim.emulator.layer_values import LayerTables, WeightBits, run_op, run_stage
from opbsim.isa import numerics as N
from opbsim.isa.program import AttentionPart
from opbsim.isa.spec import BY_MNEMONIC, Opcode
from opbsim.isa.types import DType, Space
from opbsim.layers.view import View
from opbsim.reference.interface import BF16, BINARY_OPS, FP8, FP32, I32, UNARY_OPS, Ops
from opbsim.workloads.attention import make_shard
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.ops import Op
from opbsim.workloads.stage import Stage

__all__ = ["OpsBuilder", "OpsValues", "ops_stage_values"]

_KIND = {DType.BF16: BF16, DType.FP32: FP32, DType.I32: I32, DType.FP8_E4M3: FP8}
_SPACE = Space.HBM  # a view's offset is into its own buffer here; the space is nominal


def _unary(b: OpsBuilder, f: dict) -> Any:
    return b.ops.unary(f["mnemonic"], b.t(f["src"]), b.kind(f["dst"]))


def _binary(b: OpsBuilder, f: dict) -> Any:
    return b.ops.binary(f["mnemonic"], b.t(f["a"]), b.t(f["b"]), b.kind(f["dst"]))


def _reduce(op: str) -> Callable[[OpsBuilder, dict], Any]:
    return lambda b, f: b.ops.reduce(op, b.t(f["src"]), b.kind(f["dst"]))


def _topk(b: OpsBuilder, f: dict) -> None:
    vals, ids = b.ops.topk(b.t(f["src"]), int(f["k"]), b.kind(f["vals"]))
    b.ops.copy_into(b.t(f["vals"]), vals)
    b.ops.copy_into(b.t(f["idx"]), ids)


def _topk_grouped(b: OpsBuilder, f: dict) -> None:
    vals, ids = b.ops.topk_grouped(b.t(f["src"]), b.t(f["bias"]), int(f["k"]), int(f["groups"]), int(f["keep"]),
                                   b.kind(f["vals"]))
    b.ops.copy_into(b.t(f["vals"]), vals)
    b.ops.copy_into(b.t(f["idx"]), ids)


def _act_quant(b: OpsBuilder, f: dict) -> None:
    codes, scale = b.ops.act_quant(b.t(f["src"]), int(f["group"]))
    b.ops.copy_into(b.t(f["dst"]), codes)
    b.ops.copy_into(b.t(f["scale"]), scale)


def _scatter(b: OpsBuilder, f: dict) -> None:
    b.ops.scatter(b.t(f["dst"]), b.t(f["src"]), b.t(f["idx"]))


def _scatter_add(b: OpsBuilder, f: dict) -> None:
    b.ops.scatter_add(b.t(f["dst"]), b.t(f["src"]), b.t(f["idx"]), b.t(f["w"]))


_RESULT: dict[Opcode, Callable[[OpsBuilder, dict], Any]] = {
    Opcode.GEMM: lambda b, f: b.ops.gemm(b.t(f["a"]), b.t(f["b"]), b.kind(f["dst"])),
    Opcode.GEMM_ACC: lambda b, f: b.ops.gemm(b.t(f["a"]), b.t(f["b"]), b.kind(f["dst"]), acc=b.t(f["dst"])),
    Opcode.SOFTMAX: lambda b, f: b.ops.softmax(b.t(f["src"]), b.kind(f["dst"]), float(f["scale"]),
                                               bool(f["causal"]), int(f["qpos"])),
    Opcode.RMSNORM: lambda b, f: b.ops.rmsnorm(b.t(f["src"]), b.t(f["weight"]), float(f["eps"]), b.kind(f["dst"])),
    Opcode.LAYERNORM: lambda b, f: b.ops.layernorm(b.t(f["src"]), b.t(f["weight"]), b.t(f["bias"]), float(f["eps"]),
                                                   b.kind(f["dst"])),
    Opcode.SCALE: lambda b, f: b.ops.scale(b.t(f["src"]), float(f["factor"]), b.kind(f["dst"])),
    Opcode.CVT: lambda b, f: b.ops.cvt(b.t(f["src"]), b.kind(f["dst"])),
    Opcode.COPY: lambda b, f: b.t(f["src"]),
    Opcode.ROPE: lambda b, f: b.ops.rope(b.t(f["src"]), b.t(f["pos"]), b.t(f["freq"]), float(f["mscale"]),
                                         b.kind(f["dst"])),
    Opcode.GATHER: lambda b, f: b.ops.gather(b.t(f["src"]), b.t(f["idx"])),
    Opcode.SOFTMAX_MASKED: lambda b, f: b.ops.softmax(b.t(f["src"]), b.kind(f["dst"]), float(f["scale"]), True,
                                                      int(f["qpos"]), int(f["span"]), bool(f["chunked"]),
                                                      bool(f["sink"])),
    Opcode.CLAMP: lambda b, f: b.ops.clamp(b.t(f["src"]), float(f["lo"]), float(f["hi"]), bool(f["lower"]),
                                           b.kind(f["dst"])),
    Opcode.GEMM_FP8: lambda b, f: b.ops.gemm_fp8(b.t(f["a"]), b.t(f["b"]), b.t(f["sa"]), b.t(f["sb"]),
                                                 int(f["block_k"]), int(f["block_n"]), b.kind(f["dst"])),
    Opcode.QUANT: lambda b, f: b.ops.quant(b.t(f["src"]), b.t(f["scale"]), int(f["group"])),
    Opcode.SUM: _reduce("sum"),
    Opcode.MAX: _reduce("max"),
    **{BY_MNEMONIC[m].opcode: _unary for m in UNARY_OPS if m in BY_MNEMONIC},
    **{BY_MNEMONIC[m].opcode: _binary for m in BINARY_OPS},
}
"""Instructions computed by one ``Ops`` call into a fresh tensor, copied into ``dst``."""

_IN_PLACE: dict[Opcode, Callable[[OpsBuilder, dict], None]] = {
    Opcode.TOPK: _topk, Opcode.TOPK_GROUPED: _topk_grouped, Opcode.ACT_QUANT: _act_quant,
    Opcode.SCATTER: _scatter, Opcode.SCATTER_ADD: _scatter_add,
}
"""Instructions whose ``Ops`` call writes its destinations itself."""

SUPPORTED = frozenset(_RESULT) | frozenset(_IN_PLACE)
"""The opcodes this interpreter runs."""


class OpsBuilder:
    """A ``layers.Builder`` running each instruction on ``ops`` (see the module docstring)."""

    def __init__(self, ops: Ops, model: ModelConfig, stage: Stage, weights: WeightBits):
        self.ops, self.model, self.stage, self.tp = ops, model, stage, 1
        self.shard = make_shard(model, 1)
        self.layer: int | None = None
        self.weight_names: set[str] = set()
        self.routing = LayerTables()
        self._weights = weights
        self._tensors: dict[str, Any] = {}
        self._dtypes: dict[str, DType] = {}
        self._sizes: dict[str, int] = {}
        self._op, self._scratch = "", 0

    # -- Builder ------------------------------------------------------------------------------

    def buf(self, name: str, dtype: DType, shape: tuple[int, ...], *, expert: int | None = None,
            kv_layer: int | None = None) -> View:
        if name not in self._tensors:
            bits = self._weights(name)
            if bits is None and name in self.weight_names:
                raise KeyError(f"no bits for weight {name}")
            self.hold(name, dtype, np.zeros(math.prod(shape), N.STORAGE[dtype]) if bits is None else bits)
        elif self._dtypes[name] is not dtype or self._sizes[name] < math.prod(shape):
            raise ValueError(f"buffer {name} reused as {dtype.name} {shape}")
        return View(name, _SPACE, 0, dtype, shape)

    def const(self, name: str, values: np.ndarray, dtype: DType = DType.I32, *, expert: int | None = None) -> View:
        data = np.ascontiguousarray(values, dtype=N.STORAGE[dtype])
        if name in self._tensors:
            if not np.array_equal(self.raw(name), data.reshape(-1)):
                raise ValueError(f"constant {name} defined twice with different values")
        else:
            self.hold(name, dtype, data)
        return View(name, _SPACE, 0, dtype, data.shape)

    def scratch(self, name: str, dtype: DType, shape: tuple[int, ...]) -> View:
        self._scratch += 1
        full = f"scratch.{self._op}.{name}.{self._scratch}"
        self.hold(full, dtype, np.zeros(math.prod(shape), N.STORAGE[dtype]))
        return View(full, _SPACE, 0, dtype, shape)

    def new_part(self) -> None:
        """Scratch is never reused here: each part's is its own."""

    def emit(self, mnemonic: str, *operands: View | int | float, grouped: bool = False,
             attention: AttentionPart | None = None) -> None:
        spec = BY_MNEMONIC[mnemonic]
        fields: dict = {f.name: v for f, v in zip(spec.fields, operands)}
        fields["mnemonic"] = mnemonic
        if spec.opcode in _IN_PLACE:
            _IN_PLACE[spec.opcode](self, fields)
            return
        compute = _RESULT.get(spec.opcode)
        if compute is None:
            raise ValueError(f"{self._op}: {mnemonic} has no Ops kernel (tensor parallelism is not interpreted)")
        self.ops.copy_into(self.t(fields["dst"]), compute(self, fields))

    def gemm(self, out: View, x: View, w: View, *, grouped: bool = False) -> None:
        self.emit("gemm", out, x, w, grouped=grouped)

    def row_tile(self, k: int, n: int, *, partial_B: int = 4) -> int | None:
        return None

    # -- operands -----------------------------------------------------------------------------

    def t(self, view: View) -> Any:
        """The ``Ops`` view of ``view`` over its buffer's tensor."""
        if self._dtypes[view.buffer] is not view.dtype:
            raise ValueError(f"{view.buffer} ({self._dtypes[view.buffer].name}) read as {view.dtype.name}")
        item = view.dtype.itemsize_B
        if view.base_B % item:
            raise ValueError(f"{view.buffer}: offset {view.base_B} B is not a whole element")
        return self.ops.view(self._tensors[view.buffer], view.shape, view.strides, view.base_B // item)

    @staticmethod
    def kind(view: View) -> str:
        return _KIND[view.dtype]

    # -- driver -------------------------------------------------------------------------------

    def hold(self, name: str, dtype: DType, raw: np.ndarray) -> None:
        """Give buffer ``name`` these contents (raw storage), uploaded as one flat tensor."""
        flat = np.ascontiguousarray(raw, N.STORAGE[dtype]).reshape(-1)
        self._tensors[name] = self.ops.upload(flat)
        self._dtypes[name], self._sizes[name] = dtype, flat.size

    def run(self, op: Op, layer: int | None) -> None:
        self._op = op.name
        run_op(self, op, layer)

    def raw(self, name: str) -> np.ndarray:
        """Buffer ``name``'s raw storage, flat, downloaded."""
        return self.ops.download(self._tensors[name]).reshape(-1)


class OpsValues:
    """A stage's buffers after a run on an ``Ops``: ``raw(name)`` downloads one (shaped as the
    graph's tensor where known)."""

    def __init__(self, builder: OpsBuilder, shapes: Mapping[str, tuple[int, ...]]):
        self._b, self._shapes = builder, shapes

    def raw(self, name: str) -> np.ndarray:
        flat = self._b.raw(name)
        shape = self._shapes.get(name)
        return flat.reshape(shape) if shape and math.prod(shape) == flat.size else flat


def ops_stage_values(ops: Ops, model: ModelConfig, stage: Stage, weights: WeightBits, *,
                     caches: Mapping[int, tuple[np.ndarray, np.ndarray]] | None = None,
                     layers: Iterable[int] | None = None, stream: np.ndarray | None = None,
                     delta: np.ndarray | None = None, token_ids: np.ndarray | None = None) -> OpsValues:
    """layer_values.stage_values, each instruction run on ``ops``."""
    builder = OpsBuilder(ops, model, stage, weights)
    shapes = run_stage(builder, model, stage, token_ids=token_ids, caches=caches, layers=layers, stream=stream,
                       delta=delta)
    return OpsValues(builder, shapes)
