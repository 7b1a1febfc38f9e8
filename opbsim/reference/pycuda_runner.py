"""Run the CUDA kernels on numpy inputs: ``GpuOps``, the ``Ops`` interface on a GPU.

The kernels (kernels/*.cu) are compiled by PyCUDA's ``SourceModule`` (nvcc, ``NVCC_OPTIONS``:
-fmad=false, no fast-math, the device's sm_XY) or, where PyCUDA is missing, by CuPy's
``RawModule`` (NVRTC, the same options): see backends.py. ``GpuOps.upload`` copies a numpy
array (raw storage) to the GPU, keeping a strided view's strides so that transposed and
stride-0 operands are read in place, as the ISA's descriptors do; every op launches its kernel
into a fresh output; ``download`` returns numpy.

Contracts: gemm operands are bf16 (gemm_fp8: a bf16 or fp8, b fp8, fp32 scales) of rank 2 to 4
(up to two leading batch axes); outputs never
overlap inputs (they are allocated here); indices are checked on the host before a launch
(numerics.gather: every index must be in range), and a bad one is a ValueError.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from opbsim.reference.backends import Backend, GpuUnavailable, find_backend, unavailable_reason
from opbsim.reference.interface import BF16, BINARY_OPS, FP8, FP32, I32, KIND_CODE, STORAGE, UNARY_OPS, kind_of

__all__ = ["DeviceTensor", "GpuOps", "GpuUnavailable", "open_gpu", "unavailable_reason"]

_THREADS = 256
_MAX_BLOCKS = 1 << 20
_GEMM_TILE = 64
_GEMV_MAX_M = 8
_i64, _i32, _f32, _ptr = np.int64, np.int32, np.float32, np.uint64


def _row_major(shape: tuple[int, ...]) -> tuple[int, ...]:
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


@dataclass(frozen=True)
class DeviceTensor:
    """A view of a device buffer: element strides and offset over raw storage of ``kind``."""

    buf: Any
    kind: str
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    offset: int = 0

    @property
    def itemsize(self) -> int:
        return np.dtype(STORAGE[self.kind]).itemsize

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def contiguous(self) -> bool:
        return all(st == r for d, st, r in zip(self.shape, self.strides, _row_major(self.shape)) if d > 1)


def _blocks(n: int, threads: int = _THREADS) -> int:
    return max(1, min(-(-n // threads), _MAX_BLOCKS))


def _pad4(shape, strides):
    lead = 4 - len(shape)
    return (1,) * lead + tuple(shape), (0,) * lead + tuple(strides)


class GpuOps:
    """The ``Ops`` interface (interface.py) on one GPU through a PyCUDA or CuPy backend."""

    name = "gpu"

    def __init__(self, backend: Backend | None = None):
        self.backend = backend or find_backend()
        self._sm_count = int(self.backend.info().get("sm_count") or 132)
        self._work: tuple[Any, int] | None = None

    # ---- memory -------------------------------------------------------------------------
    def _ptr(self, t: DeviceTensor) -> np.uint64:
        return _ptr(self.backend.ptr(t.buf) + t.offset * t.itemsize)

    def empty(self, shape: tuple[int, ...], kind: str) -> DeviceTensor:
        shape = tuple(int(d) for d in shape)
        nbytes = math.prod(shape) * np.dtype(STORAGE[kind]).itemsize
        return DeviceTensor(self.backend.alloc(nbytes), kind, shape, _row_major(shape))

    def upload(self, host) -> DeviceTensor:
        host = np.asarray(host)
        kind = kind_of(host.dtype)
        item = host.itemsize
        if host.flags.c_contiguous or host.size == 0:
            data, strides = np.ascontiguousarray(host), _row_major(host.shape)
        elif all(s >= 0 and s % item == 0 for s in host.strides):
            span = 1 + sum((d - 1) * (s // item) for d, s in zip(host.shape, host.strides))
            data = np.lib.stride_tricks.as_strided(host, (span,), (item,)).copy()
            strides = tuple(s // item for s in host.strides)
        else:
            data, strides = np.ascontiguousarray(host), _row_major(host.shape)
        buf = self.backend.alloc(data.nbytes)
        self.backend.htod(buf, data)
        return DeviceTensor(buf, kind, tuple(host.shape), strides)

    def download(self, t: DeviceTensor) -> np.ndarray:
        if not t.contiguous or t.offset:
            t = self._copy(t)
        raw = self.backend.dtoh(t.buf, t.numel * t.itemsize)
        return raw.view(STORAGE[t.kind]).reshape(t.shape).copy()

    def shape(self, t: DeviceTensor) -> tuple[int, ...]:
        return t.shape

    def view(self, t: DeviceTensor, shape, strides, offset: int = 0) -> DeviceTensor:
        if not t.contiguous:
            raise ValueError("a view is taken of a contiguous tensor")
        return DeviceTensor(t.buf, t.kind, tuple(shape), tuple(strides), t.offset + int(offset))

    def transpose(self, t: DeviceTensor) -> DeviceTensor:
        sh, st = list(t.shape), list(t.strides)
        sh[-1], sh[-2], st[-1], st[-2] = sh[-2], sh[-1], st[-2], st[-1]
        return DeviceTensor(t.buf, t.kind, tuple(sh), tuple(st), t.offset)

    def _copy(self, src: DeviceTensor, dst: DeviceTensor | None = None) -> DeviceTensor:
        dst = dst or self.empty(src.shape, src.kind)
        if dst.shape != src.shape or dst.kind != src.kind:
            raise ValueError(f"copy of {src.kind}{list(src.shape)} into {dst.kind}{list(dst.shape)}")
        if len(src.shape) > 4:
            raise ValueError("copies are at most 4-D")
        shape, ss = _pad4(src.shape, src.strides)
        _, ds = _pad4(dst.shape, dst.strides)
        n = src.numel
        if n:
            self.backend.launch("opb_copy4", (_blocks(n), 1, 1), (_THREADS, 1, 1), (
                self._ptr(src), self._ptr(dst), _i64(n), *map(_i64, ss), *map(_i64, ds),
                _i32(shape[1]), _i32(shape[2]), _i32(shape[3]), _i32(src.itemsize)))
        return dst

    def _dense(self, t: DeviceTensor) -> DeviceTensor:
        return t if t.contiguous else self._copy(t)

    def copy_into(self, dst: DeviceTensor, src: DeviceTensor) -> None:
        self._copy(src, dst)

    # ---- matrix -------------------------------------------------------------------------
    def gemm(self, a: DeviceTensor, b: DeviceTensor, out_kind: str, acc: DeviceTensor | None = None) -> DeviceTensor:
        if len(a.shape) < 2 or len(b.shape) < 2:
            raise ValueError(f"gemm operands of rank 2..4, got {list(a.shape)} and {list(b.shape)}")
        out = self.empty(a.shape[:-1] + b.shape[-1:], out_kind)
        if acc is not None:
            if out_kind != FP32 or acc.kind != FP32:
                raise ValueError("gemm_acc accumulates into fp32")
            self._copy(acc, out)
        self.gemm_into(a, b, out, acc is not None)
        return out

    def gemm_into(self, a: DeviceTensor, b: DeviceTensor, out: DeviceTensor, accumulate: bool = False) -> None:
        """One gemm launch writing ``out`` [..., M, N] (any strides); with ``accumulate`` it
        starts from out's fp32 values (gemm_acc). M <= 8 runs the GEMV kernel."""
        if a.kind != BF16 or b.kind != BF16:
            raise ValueError("gemm operands are bf16")
        if not 2 <= len(a.shape) <= 4 or len(b.shape) != len(a.shape):
            raise ValueError(f"gemm operands of rank 2..4 and equal rank, got {list(a.shape)} and {list(b.shape)}")
        batch, (m, k), n = a.shape[:-2], a.shape[-2:], b.shape[-1]
        if b.shape[:-2] != batch or b.shape[-2] != k or out.shape != batch + (m, n):
            raise ValueError(f"gemm shapes do not chain: {list(a.shape)} x {list(b.shape)} -> {list(out.shape)}")
        if accumulate and out.kind != FP32:
            raise ValueError("gemm_acc accumulates into fp32")
        if out.numel == 0:
            return
        (b0, b1, _, _), sa = _pad4(a.shape, a.strides)
        _, sb = _pad4(b.shape, b.strides)
        _, sc = _pad4(out.shape, out.strides)
        if b0 * b1 > 65535 or -(-m // _GEMM_TILE) > 65535:
            raise ValueError(f"gemm too large for one launch: batch {b0 * b1}, M {m}")
        args = (self._ptr(a), self._ptr(b), self._ptr(out), *map(_i64, sa), *map(_i64, sb), *map(_i64, sc),
                _i32(m), _i32(n), _i32(k), _i32(b1), _i32(KIND_CODE[out.kind]), _i32(accumulate))
        if m <= _GEMV_MAX_M:
            tn = next((t for t in (128, 64) if -(-n // t) * b0 * b1 >= self._sm_count), 32)
            self.backend.launch("opb_gemv", (-(-n // tn), 1, b0 * b1), (tn, 1, 1), args)
        else:
            grid = (-(-n // _GEMM_TILE), -(-m // _GEMM_TILE), b0 * b1)
            self.backend.launch("opb_gemm", grid, (_THREADS, 1, 1), args)

    def gemm_fp8(self, a: DeviceTensor, b: DeviceTensor, sa: DeviceTensor, sb: DeviceTensor, block_k: int,
                 block_n: int, out_kind: str) -> DeviceTensor:
        """One opb_gemm_fp8 launch (numerics_fp8.gemm_fp8); every operand read in place, any strides."""
        if a.kind not in (BF16, FP8) or b.kind != FP8 or sa.kind != FP32 or sb.kind != FP32:
            raise ValueError("gemm_fp8 takes bf16 or fp8 a, fp8 b and fp32 scales")
        if not 2 <= len(a.shape) <= 4 or not len(a.shape) == len(b.shape) == len(sa.shape) == len(sb.shape):
            raise ValueError(f"gemm_fp8 operands of rank 2..4 and equal rank, got {list(a.shape)} and {list(b.shape)}")
        if block_k < 1 or block_n < 1:
            raise ValueError(f"gemm_fp8 block sizes must be >= 1, got {block_k} x {block_n}")
        batch, (m, k), n = a.shape[:-2], a.shape[-2:], b.shape[-1]
        kb, nb = -(-k // block_k), -(-n // block_n)
        if b.shape != batch + (k, n) or sa.shape != batch + (m, kb) or sb.shape != batch + (kb, nb):
            raise ValueError(f"gemm_fp8 shapes do not chain: {list(a.shape)} x {list(b.shape)}, scales "
                             f"{list(sa.shape)} and {list(sb.shape)} for blocks {block_k} x {block_n}")
        out = self.empty(batch + (m, n), out_kind)
        (b0, b1, _, _), s_a = _pad4(a.shape, a.strides)
        strides = [s_a] + [_pad4(t.shape, t.strides)[1] for t in (b, sa, sb, out)]
        if out.numel:
            self.backend.launch("opb_gemm_fp8", (_blocks(m * n), 1, b0 * b1), (_THREADS, 1, 1), (
                self._ptr(a), self._ptr(b), self._ptr(sa), self._ptr(sb), self._ptr(out),
                *(_i64(v) for st in strides for v in st), _i32(m), _i32(n), _i32(k), _i32(b1),
                _i32(KIND_CODE[a.kind]), _i32(KIND_CODE[out_kind]), _i32(block_k), _i32(block_n)))
        return out

    # ---- elementwise --------------------------------------------------------------------
    def quant(self, x: DeviceTensor, scale: DeviceTensor, group: int) -> DeviceTensor:
        """One opb_quant launch (numerics_fp8.quant) into a fresh fp8 tensor of x's shape."""
        h = x.shape[-1]
        g = -(-h // group) if group >= 1 else 0
        if x.kind not in (BF16, FP32) or scale.kind != FP32 or g < 1 or scale.shape != x.shape[:-1] + (g,):
            raise ValueError(f"quant takes bf16 / fp32 x and fp32 scales [..., {g}] (group {group})")
        x, scale, y = self._dense(x), self._dense(scale), self.empty(x.shape, FP8)
        if x.numel:
            self.backend.launch("opb_quant", (_blocks(x.numel), 1, 1), (_THREADS, 1, 1), (
                self._ptr(x), self._ptr(scale), self._ptr(y), _i64(x.numel), _i32(KIND_CODE[x.kind]), _i32(h),
                _i32(g), _i32(group)))
        return y

    def act_quant(self, x: DeviceTensor, group: int) -> tuple[DeviceTensor, DeviceTensor]:
        """One opb_act_quant launch (numerics_fp8.act_quant), a thread per group: fresh fp8 codes of
        x's shape and fp32 scales [..., ceil(H / group)]."""
        h = x.shape[-1]
        if x.kind not in (BF16, FP32) or group < 1:
            raise ValueError(f"act_quant takes bf16 / fp32 x and a group >= 1, got {x.kind}, group {group}")
        g = -(-h // group)
        x, y, scale = self._dense(x), self.empty(x.shape, FP8), self.empty(x.shape[:-1] + (g,), FP32)
        groups = x.numel // h * g if h else 0
        if groups:
            self.backend.launch("opb_act_quant", (_blocks(groups), 1, 1), (_THREADS, 1, 1), (
                self._ptr(x), self._ptr(y), self._ptr(scale), _i64(groups), _i32(KIND_CODE[x.kind]), _i32(h),
                _i32(g), _i32(group)))
        return y, scale

    def unary(self, op: str, x: DeviceTensor, out_kind: str, param: int = 0) -> DeviceTensor:
        x, y = self._dense(x), self.empty(x.shape, out_kind)
        if x.numel:
            self.backend.launch("opb_unary", (_blocks(x.numel), 1, 1), (_THREADS, 1, 1), (
                self._ptr(x), self._ptr(y), _i64(x.numel), _i32(KIND_CODE[x.kind]), _i32(KIND_CODE[out_kind]),
                _i32(UNARY_OPS[op]), _i32(param)))
        return y

    def binary(self, op: str, a: DeviceTensor, b: DeviceTensor, out_kind: str) -> DeviceTensor:
        if a.shape != b.shape:
            raise ValueError(f"{op}: shapes {list(a.shape)} and {list(b.shape)} differ")
        a, b, y = self._dense(a), self._dense(b), self.empty(a.shape, out_kind)
        if a.numel:
            self.backend.launch("opb_binary", (_blocks(a.numel), 1, 1), (_THREADS, 1, 1), (
                self._ptr(a), self._ptr(b), self._ptr(y), _i64(a.numel), _i32(KIND_CODE[a.kind]),
                _i32(KIND_CODE[b.kind]), _i32(KIND_CODE[out_kind]), _i32(BINARY_OPS[op])))
        return y

    def scale(self, x: DeviceTensor, factor: float, out_kind: str) -> DeviceTensor:
        x, y = self._dense(x), self.empty(x.shape, out_kind)
        if x.numel:
            self.backend.launch("opb_scale", (_blocks(x.numel), 1, 1), (_THREADS, 1, 1), (
                self._ptr(x), self._ptr(y), _i64(x.numel), _i32(KIND_CODE[x.kind]), _i32(KIND_CODE[out_kind]),
                _f32(factor)))
        return y

    def cvt(self, x: DeviceTensor, out_kind: str) -> DeviceTensor:
        x, y = self._dense(x), self.empty(x.shape, out_kind)
        if x.numel:
            self.backend.launch("opb_cvt", (_blocks(x.numel), 1, 1), (_THREADS, 1, 1), (
                self._ptr(x), self._ptr(y), _i64(x.numel), _i32(KIND_CODE[x.kind]), _i32(KIND_CODE[out_kind])))
        return y

    # ---- rows ---------------------------------------------------------------------------
    def _workspace(self, n: int) -> np.uint64:
        if self._work is None or self._work[1] < n:
            self._work = (self.backend.alloc(4 * n), n)
        return _ptr(self.backend.ptr(self._work[0]))

    def softmax(self, x, out_kind, scale=1.0, causal=False, qpos=0, span=0, chunked=False,
                sink=False) -> DeviceTensor:
        x, y = self._dense(x), self.empty(x.shape, out_kind)
        self.softmax_into(x, y, scale, causal, qpos, span, chunked, sink)
        return y

    def softmax_into(self, x: DeviceTensor, y: DeviceTensor, scale=1.0, causal=False, qpos=0, span=0,
                     chunked=False, sink=False) -> None:
        """One softmax launch from contiguous ``x`` into contiguous ``y`` of the same shape."""
        if not (x.contiguous and y.contiguous) or x.shape != y.shape:
            raise ValueError("softmax_into reads and writes contiguous tensors of one shape")
        out_kind = y.kind
        c = x.shape[-1]
        r = x.shape[-2] if len(x.shape) >= 2 else 1
        rows = x.numel // c
        self.backend.launch("opb_softmax", (_blocks(rows, 1), 1, 1), (_THREADS, 1, 1), (
            self._ptr(x), self._ptr(y), self._workspace(x.numel), _i64(rows), _i32(KIND_CODE[x.kind]),
            _i32(KIND_CODE[out_kind]), _i32(r), _i32(c), _f32(scale), _i32(bool(causal)), _i32(qpos),
            _i32(span), _i32(bool(chunked)), _i32(bool(sink))))

    def rmsnorm(self, x, w, eps, out_kind) -> DeviceTensor:
        x, w, y = self._dense(x), self._dense(w), self.empty(x.shape, out_kind)
        h = x.shape[-1]
        self.backend.launch("opb_rmsnorm", (_blocks(x.numel // h, 1), 1, 1), (_THREADS, 1, 1), (
            self._ptr(x), self._ptr(w), self._ptr(y), _i64(x.numel // h), _i32(KIND_CODE[x.kind]),
            _i32(KIND_CODE[w.kind]), _i32(KIND_CODE[out_kind]), _i32(h), _f32(eps)))
        return y

    def layernorm(self, x, w, b, eps, out_kind) -> DeviceTensor:
        x, w, b, y = self._dense(x), self._dense(w), self._dense(b), self.empty(x.shape, out_kind)
        h = x.shape[-1]
        self.backend.launch("opb_layernorm", (_blocks(x.numel // h, 1), 1, 1), (_THREADS, 1, 1), (
            self._ptr(x), self._ptr(w), self._ptr(b), self._ptr(y), _i64(x.numel // h), _i32(KIND_CODE[x.kind]),
            _i32(KIND_CODE[w.kind]), _i32(KIND_CODE[b.kind]), _i32(KIND_CODE[out_kind]), _i32(h), _f32(eps)))
        return y

    def reduce(self, op, x, out_kind) -> DeviceTensor:
        x = self._dense(x)
        c = x.shape[-1]
        y = self.empty(x.shape[:-1] + (1,), out_kind)
        self.backend.launch("opb_reduce", (_blocks(y.numel, 128), 1, 1), (128, 1, 1), (
            self._ptr(x), self._ptr(y), _i64(y.numel), _i32(KIND_CODE[x.kind]), _i32(KIND_CODE[out_kind]), _i32(c),
            _i32({"max": 0, "sum": 1}[op])))
        return y

    def topk(self, x, k, vals_kind) -> tuple[DeviceTensor, DeviceTensor]:
        x = self._dense(x)
        e = x.shape[-1]
        if not 1 <= k <= e:
            raise ValueError(f"k={k} is outside 1..{e}")
        vals, idx = self.empty(x.shape[:-1] + (k,), vals_kind), self.empty(x.shape[:-1] + (k,), I32)
        rows = x.numel // e
        self.backend.launch("opb_topk", (_blocks(rows, 128), 1, 1), (128, 1, 1), (
            self._ptr(x), self._ptr(vals), self._ptr(idx), _i64(rows), _i32(KIND_CODE[x.kind]),
            _i32(KIND_CODE[vals_kind]), _i32(e), _i32(k)))
        return vals, idx

    def topk_grouped(self, x, bias, k, groups, keep, vals_kind) -> tuple[DeviceTensor, DeviceTensor]:
        x, bias = self._dense(x), self._dense(bias)
        e = x.shape[-1]
        if e % groups or not 1 <= keep <= groups <= 255 or not 1 <= k <= keep * (e // groups):
            raise ValueError(f"topk_grouped: k={k}, groups={groups}, keep={keep} do not fit {e} entries")
        vals, idx = self.empty(x.shape[:-1] + (k,), vals_kind), self.empty(x.shape[:-1] + (k,), I32)
        rows = x.numel // e
        self.backend.launch("opb_topk_grouped", (_blocks(rows, 128), 1, 1), (128, 1, 1), (
            self._ptr(x), self._ptr(bias), self._ptr(vals), self._ptr(idx), _i64(rows), _i32(KIND_CODE[x.kind]),
            _i32(KIND_CODE[bias.kind]), _i32(KIND_CODE[vals_kind]), _i32(e), _i32(k), _i32(groups), _i32(keep)))
        return vals, idx

    def clamp(self, x, lo, hi, lower, out_kind) -> DeviceTensor:
        x, y = self._dense(x), self.empty(x.shape, out_kind)
        if x.numel:
            self.backend.launch("opb_clamp_kernel", (_blocks(x.numel), 1, 1), (_THREADS, 1, 1), (
                self._ptr(x), self._ptr(y), _i64(x.numel), _i32(KIND_CODE[x.kind]), _i32(KIND_CODE[out_kind]),
                _f32(lo), _f32(hi), _i32(bool(lower))))
        return y

    def rope(self, x, pos, freq, mscale, out_kind) -> DeviceTensor:
        x = self._dense(x)
        pos = pos if isinstance(pos, DeviceTensor) else self.upload(np.asarray(pos, np.int32))
        freq = freq if isinstance(freq, DeviceTensor) else self.upload(np.asarray(freq, np.float32))
        t, d = x.shape[-2], x.shape[-1]
        if pos.kind != I32 or pos.shape != (t,) or d % 2 or freq.kind != FP32 or freq.shape != (d // 2,):
            raise ValueError(f"rope needs pos i32 [{t}], an even last axis and freq fp32 [{d // 2}], got "
                             f"{pos.kind}{list(pos.shape)}, {d}, {freq.kind}{list(freq.shape)}")
        y, pairs = self.empty(x.shape, out_kind), x.numel // 2
        self.backend.launch("opb_rope", (_blocks(pairs), 1, 1), (_THREADS, 1, 1), (
            self._ptr(x), self._ptr(self._dense(pos)), self._ptr(self._dense(freq)), self._ptr(y),
            _i64(x.numel // (t * d)), _i32(KIND_CODE[x.kind]), _i32(KIND_CODE[out_kind]), _i32(t), _i32(d),
            _f32(mscale)))
        return y

    # ---- MoE dispatch -------------------------------------------------------------------
    def _indices(self, idx: DeviceTensor, limit: int) -> DeviceTensor:
        idx = self._dense(idx)
        host = self.download(idx)
        if idx.kind != I32 or host.ndim != 1:
            raise ValueError("indices are an i32 vector")
        bad = host[(host < 0) | (host >= limit)]
        if bad.size:
            raise ValueError(f"index {int(bad[0])} is outside 0..{limit - 1}")
        return idx

    def gather(self, src, idx) -> DeviceTensor:
        src = self._dense(src)
        idx = self._indices(idx, src.shape[0])
        dst = self.empty((idx.shape[0], src.shape[1]), src.kind)
        if dst.numel:
            self.backend.launch("opb_gather", (_blocks(dst.numel), 1, 1), (_THREADS, 1, 1), (
                self._ptr(src), self._ptr(idx), self._ptr(dst), _i64(dst.numel), _i32(src.shape[1]),
                _i32(src.itemsize)))
        return dst

    def scatter(self, dst, src, idx) -> None:
        if not dst.contiguous or dst.kind != src.kind or src.shape[1:] != dst.shape[1:]:
            raise ValueError("scatter writes rows of a contiguous tensor of src's kind and width")
        src, idx = self._dense(src), self._indices(idx, dst.shape[0])
        h = dst.shape[1]
        self.backend.launch("opb_scatter", (_blocks(h, 128), 1, 1), (128, 1, 1), (
            self._ptr(src), self._ptr(idx), self._ptr(dst), _i32(src.shape[0]), _i32(h), _i32(src.itemsize)))

    def scatter_add(self, acc, src, idx, w) -> None:
        if not acc.contiguous or acc.kind != FP32 or src.shape[1:] != acc.shape[1:]:
            raise ValueError("scatter_add accumulates rows into a contiguous fp32 tensor of src's width")
        src, w, idx = self._dense(src), self._dense(w), self._indices(idx, acc.shape[0])
        h = acc.shape[1]
        self.backend.launch("opb_scatter_add", (_blocks(h, 128), 1, 1), (128, 1, 1), (
            self._ptr(src), self._ptr(idx), self._ptr(w), self._ptr(acc), _i32(src.shape[0]), _i32(h),
            _i32(KIND_CODE[src.kind]), _i32(KIND_CODE[w.kind])))


def open_gpu(prefer: str | None = None) -> GpuOps:
    """``GpuOps`` on the first backend that reaches a GPU; GpuUnavailable (one line) if none."""
    return GpuOps(find_backend(prefer))
