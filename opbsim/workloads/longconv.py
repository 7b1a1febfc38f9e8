"""A long convolution by Monarch FFT (Hyena / FlashFFTConv style): a benchmark whose
intermediates dominate its memory traffic, for the SN40L fusion comparison.

``y = irfft(fft(x) * h_f)`` over the sequence axis of each of ``batch`` x ``channels``
sequences of length N = n1 n2 (circular; a causal convolution of length L uses N = 2L with the
second half of x zero, as FlashFFTConv does). ``h_f`` is the filter's spectrum, with the inverse
transform's 1/N folded in (a weight, given in the layout below).

The DFT of size N is done as a Monarch product (Cooley-Tukey with n1 x n2): a sequence x laid out
as X[a, b] = x[a n2 + b] (a < n1, b < n2);
  A = G X                        (G: the n1-point DFT, rows interleaved re/im: [2 n1, n1])
  A' = A * T                     (twiddles T[k1, b] = exp(-2 pi i k1 b / N), complex, elementwise)
  B = A' R                       (R: the n2-point DFT as a real [2 n2, 2 n2] block [[Fr, Fi], [-Fi, Fr]])
B[k1, k2] (re in columns 0..n2-1, im in n2..2 n2-1) is the spectrum at k1 + n1 k2. Then
Y = B * h_f (complex, elementwise), C = Y Rc (Rc: the inverse n2-point DFT block), C' = C * conj(T),
y = Gc C' (Gc: the real part of the inverse n1-point DFT, columns interleaved re/im: [n1, 2 n1]).
Every complex array is stored [rows, 2 cols] with the real part first; viewed as [2 rows, cols]
its rows interleave re and im, which is how G and Gc read and write it. A complex elementwise
product is six instructions (four products, a difference and a sum), each rounding to bf16.

The DFT factors are dense bf16 matrices (``dft_factors``), constants of the compiled program.
``reference`` is the definition the compiled program must match bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opbsim.isa import numerics as N
from opbsim.isa.types import DType
from opbsim.workloads.estimates import Estimates
from opbsim.workloads.graph import LayerGraph, ModelGraph
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.ops import Op, OpClass, OpKind, Role, TensorSpec
from opbsim.workloads.stage import PrefillChunk, Stage

__all__ = ["LongConv", "dft_factors", "build_long_conv", "reference", "long_conv_flops", "FACTORS"]

FACTORS = ("G", "Tr", "Ti", "R", "Rc", "Gc")


@dataclass(frozen=True, slots=True, kw_only=True)
class LongConv:
    """``batch`` x ``channels`` sequences of n1 n2 tokens."""

    batch: int
    channels: int
    n1: int
    n2: int

    def __post_init__(self) -> None:
        for name in ("batch", "channels", "n1", "n2"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"long conv: {name} must be a positive integer, got {value!r}")

    @property
    def n(self) -> int:
        return self.n1 * self.n2

    @property
    def sequences(self) -> int:
        return self.batch * self.channels


def _r16(x: np.ndarray) -> np.ndarray:
    return N.widen(N.store(np.asarray(x, dtype=np.float32), DType.BF16), DType.BF16)


def dft_factors(n1: int, n2: int) -> dict[str, np.ndarray]:
    """The factor matrices (``FACTORS``) as bf16 values in float32 arrays."""
    n = n1 * n2
    k1, a = np.meshgrid(np.arange(n1), np.arange(n1), indexing="ij")
    g = np.empty((2 * n1, n1))
    g[0::2], g[1::2] = np.cos(2 * np.pi * k1 * a / n1), -np.sin(2 * np.pi * k1 * a / n1)
    gc = np.empty((n1, 2 * n1))  # gc[a, 2 k1 + p]: the inverse DFT's real part, against re (p=0) and im (p=1)
    gc[:, 0::2], gc[:, 1::2] = np.cos(2 * np.pi * a * k1 / n1), -np.sin(2 * np.pi * a * k1 / n1)  # symmetric
    b, k2 = np.meshgrid(np.arange(n2), np.arange(n2), indexing="ij")
    fr, fi = np.cos(2 * np.pi * b * k2 / n2), -np.sin(2 * np.pi * b * k2 / n2)
    r = np.block([[fr, fi], [-fi, fr]])
    rc = np.block([[fr, -fi], [fi, fr]])
    kk, bb = np.meshgrid(np.arange(n1), np.arange(n2), indexing="ij")
    tr, ti = np.cos(2 * np.pi * kk * bb / n), -np.sin(2 * np.pi * kk * bb / n)
    return {name: _r16(m) for name, m in zip(FACTORS, (g, tr, ti, r, rc, gc))}


def long_conv_flops(cfg: LongConv) -> int:
    """FLOPs of the Monarch convolution: the four GEMMs (2 per multiply-add) and three complex
    elementwise products of six operations per complex element."""
    m, n, n1, n2 = cfg.sequences, cfg.n, cfg.n1, cfg.n2
    gemms = 2 * m * (2 * n1) * n2 * n1 + 2 * (2 * m * n1 * (2 * n2) * (2 * n2)) + 2 * m * n1 * n2 * (2 * n1)
    return gemms + 3 * 6 * m * n


def build_long_conv(cfg: LongConv) -> ModelGraph:
    """A one-op graph (``L0.long_conv``) the compiler lowers like a decoder layer: ``conv.x``
    [batch, channels, N] in, ``conv.h_f`` [channels, n1, 2 n2] the filter spectrum, ``conv.y`` out."""
    carrier = ModelConfig(name="long-conv", hidden_size=cfg.channels, num_layers=1, num_heads=1, num_kv_heads=1,
                          head_dim=cfg.channels, vocab_size=1, dense_ffn=1, norm_eps=1e-5, rope_theta=0.0,
                          source="the long-convolution benchmark (workloads/longconv.py)")
    x = TensorSpec("conv.x", (cfg.batch, cfg.channels, cfg.n), DType.BF16, Role.ACTIVATION)
    h = TensorSpec("conv.h_f", (cfg.channels, cfg.n1, 2 * cfg.n2), DType.BF16, Role.WEIGHT)
    y = TensorSpec("conv.y", x.shape, DType.BF16, Role.ACTIVATION)
    tables = 2 * sum(m.size for m in dft_factors(cfg.n1, cfg.n2).values())
    op = Op("L0.long_conv", OpKind.LONG_CONV, OpClass.FC, DType.BF16, (x, h), (y,),
            Estimates(long_conv_flops(cfg), x.nbytes + h.nbytes + tables, y.nbytes),
            {"n1": cfg.n1, "n2": cfg.n2})
    return ModelGraph(carrier, Stage(prefill=(PrefillChunk(cfg.n),)), 1, (), (LayerGraph(0, False, (op,)),), ())


def _cmul(ar, ai, br, bi, conj: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(ar + i ai)(br + i bi), or by conj(b): four products, a difference and a sum, each to bf16."""
    p1, p2, p3, p4 = (_r16(N.mul(u, v)) for u, v in ((ar, br), (ai, bi), (ar, bi), (ai, br)))
    if conj:
        return _r16(N.add(p1, p2)), _r16(N.sub(p4, p3))
    return _r16(N.sub(p1, p2)), _r16(N.add(p3, p4))


def reference(cfg: LongConv, x: np.ndarray, h_f: np.ndarray) -> np.ndarray:
    """y [batch, channels, N] for bf16-valued ``x`` and ``h_f``, by the definition above."""
    f = dft_factors(cfg.n1, cfg.n2)
    n1, n2 = cfg.n1, cfg.n2
    lead = (cfg.batch, cfg.channels)
    a = _r16(N.gemm(np.broadcast_to(f["G"], (*lead, 2 * n1, n1)), x.reshape(*lead, n1, n2)))
    a = a.reshape(*lead, n1, 2 * n2)
    tr, ti = f["Tr"], f["Ti"]
    ar, ai = _cmul(a[..., :n2], a[..., n2:], tr, ti)
    b = _r16(N.gemm(np.concatenate([ar, ai], -1), np.broadcast_to(f["R"], (*lead, 2 * n2, 2 * n2))))
    yr, yi = _cmul(b[..., :n2], b[..., n2:], h_f[..., :n2], h_f[..., n2:])
    c = _r16(N.gemm(np.concatenate([yr, yi], -1), np.broadcast_to(f["Rc"], (*lead, 2 * n2, 2 * n2))))
    dr, di = _cmul(c[..., :n2], c[..., n2:], tr, ti, conj=True)
    d = np.concatenate([dr, di], -1).reshape(*lead, 2 * n1, n2)
    y = _r16(N.gemm(np.broadcast_to(f["Gc"], (*lead, n1, 2 * n1)), d))
    return y.reshape(*lead, cfg.n)
