"""The float64 golden errors of a checked layer: its attention result and its MoE result against
golden.py's float64 layers, on a sample of tokens.

The weights are bf16 bit patterns (read back from the emulated memory where the program holds
them). A weight matrix enters golden.py as a ``Bf16Matrix``: the right operand of ``x @ W``
with float64 rows x, whose product is formed in float64 from the exact bf16 values without a
float64 copy of the matrix (a few sampled rows need a few matrix-vector products, not a
conversion of every routed expert's weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from opbsim.emulator import golden
from opbsim.isa import numerics as N
from opbsim.isa.fp8 import FP8_DECODE_F32
from opbsim.isa.types import DType
from opbsim.layers.stage_rows import requests
from opbsim.workloads.models import FFNAct, ModelConfig, Norm, QKNorm, Router
from opbsim.workloads.stage import Stage
from opbsim.workloads.weight_format import fp8_block

__all__ = ["GoldenError", "Bf16Matrix", "golden_errors", "moe_weights", "gqa_weights", "MAX_NORM", "MEAN_NORM"]

MAX_NORM = "max|y-g|/max|g|"  # the infinity norm of the error over that of the golden result
MEAN_NORM = "mean|y-g|/mean|g|"  # the 1-norm (per element), robust to results that cross zero


@dataclass(frozen=True, slots=True)
class GoldenError:
    """One result ``y`` against its float64 golden ``g``: ``max_rel`` is ``MAX_NORM``, ``mean_rel``
    is ``MEAN_NORM``. Both are None where the golden layer does not model this layer, and
    ``unchecked`` says what it lacks."""

    max_rel: float | None
    mean_rel: float | None
    unchecked: str = ""

    @classmethod
    def skipped(cls, why: str) -> GoldenError:
        return cls(None, None, why)

    def describe(self, which: str) -> str:
        """``"0.0138"`` or ``"n/a (why)"`` for one of ``"max"`` / ``"mean"``."""
        value = self.max_rel if which == "max" else self.mean_rel
        return f"n/a ({self.unchecked})" if value is None else f"{value:.3g}"


@njit(parallel=True, error_model="numpy", cache=True, nogil=True)
def _product(x, bits, parts, out):
    """out = x @ bf16(bits) in float64 (x float64 [M, K], bits uint16 [K, N]): the k range cut
    in ``parts``, each summed by one thread over whole rows of B (read in order), then added."""
    m, k_dim = x.shape
    n = bits.shape[1]
    accs = np.zeros((parts, m, n), np.float64)
    for p in prange(parts):
        wide = np.empty(n, np.uint32)
        row = wide.view(np.float32)
        acc = accs[p]
        for k in range(p * k_dim // parts, (p + 1) * k_dim // parts):
            src = bits[k]
            for j in range(n):
                wide[j] = np.uint32(src[j]) << np.uint32(16)
            for i in range(m):
                xik = x[i, k]
                ai = acc[i]
                for j in range(n):
                    ai[j] += xik * np.float64(row[j])
    out[:] = accs.sum(axis=0)


class Bf16Matrix:
    """A matrix held as bf16 bit patterns, as the right operand of ``@``: ``x @ m`` is the float64
    product of float64 rows x [..., K] with its exact values. ``.T`` is the transposed matrix
    (a view); the product is fastest where the operand's rows are contiguous."""

    __array_ufunc__ = None  # numpy hands ``x @ m`` to __rmatmul__

    def __init__(self, bits: np.ndarray):
        self.bits = bits

    @property
    def T(self) -> Bf16Matrix:  # noqa: N802 -- numpy's name, what golden.py calls
        return Bf16Matrix(self.bits.T)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.bits.shape

    def __rmatmul__(self, x) -> np.ndarray:
        x = np.asarray(x, np.float64)
        rows = np.ascontiguousarray(x.reshape(-1, x.shape[-1]))
        out = np.zeros((rows.shape[0], self.bits.shape[1]), np.float64)
        if out.size and rows.shape[1]:
            _product(rows, self.bits, max(1, min(numba.get_num_threads(), rows.shape[1])), out)
        return out.reshape(*x.shape[:-1], self.bits.shape[1])


def _attention_gap(model: ModelConfig, stage: Stage) -> str:
    """What the float64 golden attention (golden.gqa_decode) lacks to check this layer, or ""."""
    if stage.prefill:
        return "a prefill stage: the golden attention is decode only"
    if model.mla is not None:
        return "MLA: the golden attention here is GQA's (emulator/golden_mla.py checks MLA in the tests)"
    extra = [name for name, has in (("attention sinks", model.attention_sinks), ("chunked attention",
             bool(model.attention_chunk_size)), ("layers without RoPE", bool(model.nope_layers)),
             ("an o-projection bias", model.o_bias)) if has]
    if extra:
        return f"{', '.join(extra)}: not in the golden attention (tests/unit/emulator/test_golden_attention*.py)"
    if model.norm is not Norm.RMS:
        return f"{model.norm.value}: the golden layers use RMSNorm only"
    if not model.has_rope:
        return "no RoPE (rope_theta 0): the golden attention rotates queries and keys"
    if model.qkv_bias or model.qk_norm is not QKNorm.NONE:
        return "q/k/v bias or q/k norm: not in the golden attention"
    if model.sliding_window and max(r.context for r in requests(stage)) > model.sliding_window:
        return f"context beyond the {model.sliding_window}-token sliding window: the golden attention sees all"
    return ""


def _ffn_gap(model: ModelConfig, layer: int) -> str:
    """What the float64 golden MoE block (golden.moe_layer on routed SwiGLU experts) lacks to
    check this layer's FFN, or ""."""
    if not model.is_moe_layer(layer):
        return f"layer {layer} is dense: the golden FFN check covers MoE layers only"
    if model.num_shared_experts:
        return "shared experts: the golden MoE check covers routed experts only"
    if model.ffn_act is not FFNAct.SWIGLU:
        return f"{model.ffn_act.value} experts: the golden MoE block is SwiGLU only"
    if model.router != Router() or model.expert_bias:
        return "a router other than softmax top-k, or expert biases: the golden MoE block has neither"
    if model.norm is not Norm.RMS:
        return f"{model.norm.value}: the golden layers use RMSNorm only"
    return ""


class _Experts:
    """One of w1 / w3 / w2 for golden.moe_layer, [E, out, in]: expert e's matrix as a Bf16Matrix
    (a view of the gate/up or down bits, nothing copied)."""

    def __init__(self, count: int, matrix):
        self.shape, self._matrix = (count,), matrix

    def __getitem__(self, e: int) -> Bf16Matrix:
        return self._matrix(e)


def golden_errors(model, stage, layer, bits, stream, delta, cache, want, rows) -> tuple[GoldenError, GoldenError]:
    """The errors of this layer's attention result and FFN result vs float64 over the tokens
    ``rows``, each skipped with its reason where the golden layers do not model it. ``bits(name)``
    gives a weight's bf16 bits (its shape), ``want`` the layer's exact results."""
    L = f"L{layer}"
    gap = _attention_gap(model, stage)
    attention_error = GoldenError.skipped(gap) if gap else _attention_error(model, stage, layer, bits, stream, cache,
                                                                            want, rows)
    gap = _ffn_gap(model, layer)
    if gap:
        return attention_error, GoldenError.skipped(gap)
    h = want[f"{L}.h"][rows].astype(np.float64)
    moe = golden.moe_layer(h, moe_weights(model, layer, bits), model.top_k, float(model.norm_eps),
                           renormalize=model.norm_topk_prob,
                           selected=want[f"{L}.topk_ids"][rows])
    ffn = want[f"{L}.ffn_out"][rows].astype(np.float64)
    return attention_error, GoldenError(*golden.relative_error(h + ffn, moe.out))


def moe_weights(model: ModelConfig, layer: int, bits) -> golden.MoEWeights:
    """Layer ``layer``'s MoE block for golden.moe_layer, its matrices read in place from the bf16
    bits (``bits(name)``): routed experts, and the shared experts as one expert of their summed
    width (SwiGLU is a sum over its FFN columns, so S experts of width Fs are one of width S Fs)."""
    L, F, E = f"L{layer}", model.expert_ffn, model.num_experts

    def halves(name: str, width: int) -> tuple[Bf16Matrix, Bf16Matrix]:  # [out, in]: w1, w3
        return (weight_matrix(model, bits, name, slice(0, width)).T,
                weight_matrix(model, bits, name, slice(width, 2 * width)).T)

    def matrix(e: int, which: int) -> Bf16Matrix:
        if which < 2:
            return halves(f"{L}.expert.{e}.w_gate_up", F)[which]
        return weight_matrix(model, bits, f"{L}.expert.{e}.w_down").T

    shared: tuple = (np.zeros((0, F, model.hidden_size)),) * 3
    if model.num_shared_experts:
        width = model.num_shared_experts * model.shared_ffn
        w1, w3 = halves(f"{L}.shared.w_gate_up", width)
        shared = (_Experts(1, lambda _: w1), _Experts(1, lambda _: w3),
                  _Experts(1, lambda _: weight_matrix(model, bits, f"{L}.shared.w_down").T))
    return golden.MoEWeights(_widened(bits, f"{L}.ffn_norm.weight"), _widened(bits, f"{L}.w_router").T,
                             *(_Experts(E, lambda e, i=i: matrix(e, i)) for i in range(3)), *shared)


def gqa_weights(model: ModelConfig, layer: int, bits) -> golden.GQAWeights:
    """Layer ``layer``'s attention for golden.py, its matrices read in place from the bf16 bits."""
    L, H, KV, d = f"L{layer}", model.num_heads, model.num_kv_heads, model.head_dim
    qkv = lambda first, last: weight_matrix(model, bits, f"{L}.w_qkv", slice(first, last)).T  # noqa: E731
    return golden.GQAWeights(_widened(bits, f"{L}.attn_norm.weight"), qkv(0, H * d), qkv(H * d, (H + KV) * d),
                             qkv((H + KV) * d, None), weight_matrix(model, bits, f"{L}.w_o").T, H, KV, d)


def weight_matrix(model: ModelConfig, bits, name: str, cols: slice = slice(None)) -> Bf16Matrix | np.ndarray:
    """Weight ``name`` [in, out] (columns ``cols``) as the golden multiplies by it: its bf16 bits read in
    place, or an fp8 weight's exact values (``fp8_values``) in float64."""
    raw = bits(name)
    if raw.dtype == np.uint16:
        return Bf16Matrix(raw[:, cols])
    return fp8_values(raw, bits(f"{name}.scale"), fp8_block(model, routed=".expert." in name))[:, cols]


def fp8_values(codes: np.ndarray, scales: np.ndarray, block: tuple[int, int]) -> np.ndarray:
    """The exact values (float64) of an fp8 weight [K, N]: each e4m3 code times its (bk, bn) block's
    fp32 scale (the product of an 8-bit and a 24-bit significand is exact in float64)."""
    k, n = codes.shape
    per_element = np.repeat(np.repeat(scales.astype(np.float64), block[0], 0), block[1], 1)[:k, :n]
    return FP8_DECODE_F32[codes].astype(np.float64) * per_element


def _widened(bits, name: str) -> np.ndarray:
    return N.widen(bits(name), DType.BF16).astype(np.float64)


def _attention_error(model, stage, layer, bits, stream, cache, want, rows) -> GoldenError:
    L = f"L{layer}"
    x = want.get(f"{L}.x", stream)[rows].astype(np.float64)
    gw = gqa_weights(model, layer, bits)
    reqs = requests(stage)
    k_past = [cache[0][i, :reqs[i].past].transpose(1, 0, 2) for i in rows]  # exact values, widened a row at a time
    v_past = [cache[1][i, :reqs[i].past].transpose(1, 0, 2) for i in rows]
    attn = golden.gqa_decode(x, gw, k_past, v_past, float(model.rope_theta), float(model.norm_eps),
                             model.rope_scaling)
    return GoldenError(*golden.relative_error(want[f"{L}.h"][rows], attn))
