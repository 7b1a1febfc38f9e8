"""The Monarch-FFT long convolution (workloads/longconv.py): four GEMMs with the DFT
factors as constant bf16 matrices and three complex elementwise products of six instructions each,
batched over the batch and channel axes (the factors broadcast over them by stride-0 views)."""

from __future__ import annotations

from opbsim.isa import numerics as N
from opbsim.isa.types import DType
from opbsim.layers.builder import Builder
from opbsim.layers.view import View, broadcast
from opbsim.workloads.longconv import dft_factors
from opbsim.workloads.ops import Op

__all__ = ["long_conv"]


class _Shapes:
    def __init__(self, b: Builder, op: Op):
        self.b = b
        self.B, self.D, n = op.inputs[0].shape
        self.n1, self.n2 = op.params["n1"], op.params["n2"]
        self.lead = (self.B, self.D)

    def complex_buf(self, name: str) -> View:
        """[B, D, n1, 2 n2]: real parts in the first n2 columns, imaginary parts in the last."""
        return self.b.scratch(name, DType.BF16, (*self.lead, self.n1, 2 * self.n2))

    def real_buf(self, name: str) -> View:
        return self.b.scratch(name, DType.BF16, (*self.lead, self.n1, self.n2))

    def half(self, v: View, part: int) -> View:
        """The real (0) or imaginary (1) part of a [.., n1, 2 n2] complex array, [.., n1, n2]."""
        return View(v.buffer, v.space, v.base_B + part * self.n2 * v.dtype.itemsize_B, v.dtype,
                    (*v.shape[:-1], self.n2), v.strides)

    def as_rows(self, v: View) -> View:
        """A [.., n1, 2 n2] complex array as [.., 2 n1, n2]: rows interleaving re and im."""
        return View(v.buffer, v.space, v.base_B, v.dtype, (*self.lead, 2 * self.n1, self.n2))

    def as_square(self, v: View) -> View:
        """[B, D, N] sequences as [B, D, n1, n2]: x[a n2 + b] at [a, b]."""
        return View(v.buffer, v.space, v.base_B, v.dtype, (*self.lead, self.n1, self.n2))

    def factor(self, name: str, values) -> View:
        table = self.b.const(f"dft.{self.n1}x{self.n2}.{name}", N.store(values, DType.BF16), DType.BF16)
        return broadcast(table, (*self.lead, *table.shape))


def _cmul(b: Builder, s: _Shapes, out: View, ar: View, ai: View, br: View, bi: View, conj: bool = False) -> None:
    p = [s.real_buf(f"p{i}") for i in range(4)]
    for dst, u, v in zip(p, (ar, ai, ar, ai), (br, bi, bi, br)):
        b.emit("mul", dst, u, v)
    if conj:  # (ar + i ai)(br - i bi)
        b.emit("add", s.half(out, 0), p[0], p[1])
        b.emit("sub", s.half(out, 1), p[3], p[2])
    else:
        b.emit("sub", s.half(out, 0), p[0], p[1])
        b.emit("add", s.half(out, 1), p[2], p[3])


def long_conv(b: Builder, op: Op) -> None:
    s = _Shapes(b, op)
    f = dft_factors(s.n1, s.n2)
    x_spec, h_spec, y_spec = op.inputs[0], op.inputs[1], op.outputs[0]
    x, y = (s.as_square(b.buf(t.name, DType.BF16, t.shape)) for t in (x_spec, y_spec))
    h = b.buf(h_spec.name, DType.BF16, h_spec.shape)
    h_b = View(h.buffer, h.space, h.base_B, h.dtype, (*s.lead, s.n1, 2 * s.n2), (0, *h.strides))
    tr, ti = s.factor("Tr", f["Tr"]), s.factor("Ti", f["Ti"])
    a = s.complex_buf("a")
    b.emit("gemm", s.as_rows(a), s.factor("G", f["G"]), x)
    a2 = s.complex_buf("a_twiddled")
    _cmul(b, s, a2, s.half(a, 0), s.half(a, 1), tr, ti)
    spec = s.complex_buf("spectrum")
    b.emit("gemm", spec, a2, s.factor("R", f["R"]))
    yf = s.complex_buf("product")
    _cmul(b, s, yf, s.half(spec, 0), s.half(spec, 1), s.half(h_b, 0), s.half(h_b, 1))
    c = s.complex_buf("c")
    b.emit("gemm", c, yf, s.factor("Rc", f["Rc"]))
    d = s.complex_buf("c_twiddled")
    _cmul(b, s, d, s.half(c, 0), s.half(c, 1), tr, ti, conj=True)
    b.emit("gemm", y, s.factor("Gc", f["Gc"]), s.as_rows(d))
