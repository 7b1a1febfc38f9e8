"""What the kernel checks and the layer compositions need of a kernel executor: ``Ops``.

Two implementations: ``GpuOps`` (pycuda_runner.py: the CUDA kernels, on a GPU) and
``NumpyOps`` (numpy_ops.py: numerics.py itself, on the CPU). Code written against ``Ops`` (the
interpreter of the layer definitions, emulator/ops_values.py) therefore runs unchanged on both,
and the CPU run is checked against the numerics definition without a GPU: on a GPU only the
kernels' arithmetic remains in question.

Tensors are opaque handles holding raw storage of one kind: ``BF16`` (uint16 bit patterns),
``FP32`` (float32), ``I32`` (int32), ``FP8`` (e4m3 codes, uint8). Every op returns a fresh contiguous tensor except
``copy_into``, ``scatter`` and ``scatter_add``, which write into their first operand. Every
float result is rounded once into the requested kind (numerics.store).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from opbsim.isa.spec import Opcode

__all__ = ["BF16", "FP32", "I32", "FP8", "STORAGE", "KIND_CODE", "UNARY_OPS", "BINARY_OPS", "kind_of", "Ops"]

BF16, FP32, I32, FP8 = "bf16", "fp32", "i32", "fp8"
STORAGE: dict[str, type] = {BF16: np.uint16, FP32: np.float32, I32: np.int32, FP8: np.uint8}
KIND_CODE = {BF16: 0, FP32: 1, I32: 2, FP8: 3}
"""The kind codes of numerics.cuh (OPB_BF16, OPB_FP32, OPB_I32, OPB_FP8): the ISA's DType values."""
_EXP_SCALED = 1 << 8  # above every 8-bit ISA opcode: exp_scaled is a kernel step, no instruction
UNARY_OPS = {**{o.mnemonic: int(o) for o in (Opcode.EXP, Opcode.RSQRT, Opcode.SILU, Opcode.SIGMOID, Opcode.RELU,
                                              Opcode.GELU)},
             "exp_scaled": _EXP_SCALED}
"""The op codes of the unary kernel (numerics.cuh's OPB_OP_*): an instruction's own ISA opcode."""
BINARY_OPS = {o.mnemonic: int(o) for o in (Opcode.ADD, Opcode.SUB, Opcode.MUL, Opcode.DIV)}
"""The op codes of the binary kernel: the instructions' ISA opcodes."""


def kind_of(dtype) -> str:
    """The kind of raw numpy storage: uint16 -> bf16, float32 -> fp32, int32 -> i32, uint8 -> fp8."""
    dt = np.dtype(dtype)
    for kind, storage in STORAGE.items():
        if dt == np.dtype(storage):
            return kind
    raise ValueError(f"no ISA kind is stored as numpy {dt} (bf16: uint16, fp32: float32, i32: int32, fp8: uint8)")


class Ops(Protocol):
    """The kernels as operations on tensors (see the module docstring for the conventions)."""

    name: str

    def upload(self, host: np.ndarray) -> Any:
        """A tensor holding ``host`` (raw storage); a strided view keeps its strides."""

    def download(self, t: Any) -> np.ndarray:
        """A contiguous host copy of ``t``'s raw storage."""

    def shape(self, t: Any) -> tuple[int, ...]: ...

    def view(self, t: Any, shape: tuple[int, ...], strides: tuple[int, ...], offset: int = 0) -> Any:
        """Another view of contiguous ``t``: element strides and offset, as an ISA descriptor."""

    def transpose(self, t: Any) -> Any:
        """The view of ``t`` with its last two axes swapped."""

    def copy_into(self, dst: Any, src: Any) -> None:
        """dst = src, bits moved (dst may be a strided view)."""

    def gemm(self, a: Any, b: Any, out_kind: str, acc: Any = None) -> Any:
        """numerics.gemm of bf16 a [..., M, K] and b [..., K, N]; acc (fp32) makes it gemm_acc."""

    def gemm_fp8(self, a: Any, b: Any, sa: Any, sb: Any, block_k: int, block_n: int, out_kind: str) -> Any:
        """numerics_fp8.gemm_fp8 of bf16 or fp8 a [..., M, K], fp8 b [..., K, N] and fp32 scales
        sa [..., M, KB], sb [..., KB, NB]."""

    def quant(self, x: Any, scale: Any, group: int) -> Any:
        """numerics_fp8.quant of bf16 / fp32 x [..., H] by fp32 scale [..., ceil(H / group)]: fp8 codes."""

    def act_quant(self, x: Any, group: int) -> tuple[Any, Any]:
        """numerics_fp8.act_quant of bf16 / fp32 x [..., H]: (fp8 codes, fp32 scales [..., ceil(H / group)])."""

    def unary(self, op: str, x: Any, out_kind: str, param: int = 0) -> Any: ...

    def binary(self, op: str, a: Any, b: Any, out_kind: str) -> Any: ...

    def scale(self, x: Any, factor: float, out_kind: str) -> Any: ...

    def cvt(self, x: Any, out_kind: str) -> Any: ...

    def softmax(self, x: Any, out_kind: str, scale: float = 1.0, causal: bool = False, qpos: int = 0,
                span: int = 0, chunked: bool = False, sink: bool = False) -> Any: ...

    def rmsnorm(self, x: Any, w: Any, eps: float, out_kind: str) -> Any: ...

    def layernorm(self, x: Any, w: Any, b: Any, eps: float, out_kind: str) -> Any: ...

    def reduce(self, op: str, x: Any, out_kind: str) -> Any:
        """``max`` or ``sum`` over the last axis, shape [..., 1]."""

    def topk(self, x: Any, k: int, vals_kind: str) -> tuple[Any, Any]: ...

    def topk_grouped(self, x: Any, bias: Any, k: int, groups: int, keep: int, vals_kind: str) -> tuple[Any, Any]:
        """numerics.topk_grouped of fp32 x [..., E] with the fp32 choice bias [E]."""

    def clamp(self, x: Any, lo: float, hi: float, lower: bool, out_kind: str) -> Any:
        """numerics.clamp (lo and hi already fp32)."""

    def rope(self, x: Any, pos: Any, freq: Any, mscale: float, out_kind: str) -> Any:
        """numerics.rope with the fp32 frequency table ``freq`` [D/2] (mscale already fp32)."""

    def gather(self, src: Any, idx: Any) -> Any: ...

    def scatter(self, dst: Any, src: Any, idx: Any) -> None: ...

    def scatter_add(self, acc: Any, src: Any, idx: Any, w: Any) -> None: ...
