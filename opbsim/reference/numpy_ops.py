"""``NumpyOps``: the ``Ops`` interface computed by numerics.py on the CPU.

Tensors are numpy arrays of raw storage. This is the definition itself, so the layer definitions
interpreted on it (emulator/ops_values.py) must equal the numerics definition bit for bit; tests
check that without a GPU. Views follow the ISA's descriptors: element strides over a contiguous base, stride 0
broadcasting.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from opbsim.isa import numerics as N
from opbsim.isa.elementary import exp_scaled
from opbsim.isa.floatbits import bf16_widen
from opbsim.isa.spec import BY_MNEMONIC
from opbsim.isa.types import DType
from opbsim.reference.interface import BF16, BINARY_OPS, FP8, FP32, I32, STORAGE, UNARY_OPS, kind_of

__all__ = ["NumpyOps", "values", "store", "definition"]


def definition(op: str) -> Callable:
    """The numerics definition of the ISA instruction a kernel op of the same name computes."""
    return N.SEMANTICS[BY_MNEMONIC[op].opcode]


_UNARY = {op: definition(op) for op in UNARY_OPS if op in BY_MNEMONIC}  # exp_scaled: no instruction
_BINARY = {op: definition(op) for op in BINARY_OPS}


def values(raw: np.ndarray) -> np.ndarray:
    """Raw storage -> values (bf16 and fp8 widened exactly; fp32 and i32 unchanged)."""
    kind = kind_of(raw.dtype)
    if kind == FP8:
        return N.widen(raw, DType.FP8_E4M3)
    return bf16_widen(raw) if kind == BF16 else np.asarray(raw)


def store(v: np.ndarray, kind: str) -> np.ndarray:
    """numerics.store into ``kind``'s raw storage."""
    if kind == BF16:
        return N.store(v, DType.BF16)
    if kind == FP32:
        return N.store(v, DType.FP32)
    if kind == FP8:
        return N.store(v, DType.FP8_E4M3)
    return np.asarray(v, dtype=np.int32)


class NumpyOps:
    name = "numpy"

    def upload(self, host: np.ndarray) -> np.ndarray:
        kind_of(host.dtype)
        return np.array(host, copy=True)

    def download(self, t: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(t).copy()

    def shape(self, t: np.ndarray) -> tuple[int, ...]:
        return tuple(t.shape)

    def view(self, t, shape, strides, offset=0):
        if not t.flags.c_contiguous:
            raise ValueError("a view is taken of a contiguous tensor")
        flat = t.reshape(-1)[offset:]
        item = t.itemsize
        return np.lib.stride_tricks.as_strided(flat, tuple(shape), tuple(s * item for s in strides))

    def transpose(self, t):
        return np.swapaxes(t, -1, -2)

    def copy_into(self, dst, src) -> None:
        dst[...] = src

    def gemm(self, a, b, out_kind, acc=None):
        return store(N.gemm(values(a), values(b), None if acc is None else values(acc)), out_kind)

    def gemm_fp8(self, a, b, sa, sb, block_k, block_n, out_kind):
        return store(N.gemm_fp8(values(a), values(b), sa, sb, block_k, block_n), out_kind)

    def quant(self, x, scale, group):
        return N.quant(values(x), scale, group)

    def act_quant(self, x, group):
        return N.act_quant(values(x), group)

    def unary(self, op, x, out_kind, param=0):
        fn = _UNARY.get(op)
        y = exp_scaled(values(x), param) if op == "exp_scaled" else fn(values(x))
        return store(y, out_kind)

    def binary(self, op, a, b, out_kind):
        return store(_BINARY[op](values(a), values(b)), out_kind)

    def scale(self, x, factor, out_kind):
        return store(N.scale(values(x), factor), out_kind)

    def cvt(self, x, out_kind):
        dt = {BF16: DType.BF16, FP32: DType.FP32, I32: DType.I32, FP8: DType.FP8_E4M3}
        return N.cvt(x, dt[kind_of(x.dtype)], dt[out_kind])

    def softmax(self, x, out_kind, scale=1.0, causal=False, qpos=0, span=0, chunked=False, sink=False):
        return store(N.softmax(values(x), scale, causal, qpos, span, chunked, sink), out_kind)

    def rmsnorm(self, x, w, eps, out_kind):
        return store(N.rmsnorm(values(x), values(w), eps), out_kind)

    def layernorm(self, x, w, b, eps, out_kind):
        return store(N.layernorm(values(x), values(w), values(b), eps), out_kind)

    def reduce(self, op, x, out_kind):
        fn = {"max": N.reduce_max, "sum": N.seq_sum}[op]
        return store(fn(values(x)), out_kind)

    def topk(self, x, k, vals_kind):
        v, i = N.topk(values(x), k)
        return store(v, vals_kind), i

    def topk_grouped(self, x, bias, k, groups, keep, vals_kind):
        v, i = N.topk_grouped(values(x), values(bias), k, groups, keep)
        return store(v, vals_kind), i

    def clamp(self, x, lo, hi, lower, out_kind):
        return store(N.clamp(values(x), lo, hi, lower), out_kind)

    def rope(self, x, pos, freq, mscale, out_kind):
        return store(N.rope(values(x), pos, values(freq), mscale), out_kind)

    def gather(self, src, idx):
        return N.gather(src, idx)

    def scatter(self, dst, src, idx) -> None:
        dst[...] = N.scatter(dst, src, idx)

    def scatter_add(self, acc, src, idx, w) -> None:
        if acc.dtype != STORAGE[FP32]:
            raise ValueError("scatter_add accumulates into an fp32 tensor")
        rows = np.unique(np.asarray(idx))
        out = N.scatter_add(acc, values(src), idx, values(w))
        acc[rows] = store(out[rows], FP32)
