"""GQA attention layers as programs, executed functionally and checked.

Decode: B sequences, one new token each at position L_b (the length of its KV cache): RMSNorm,
Q/K/V projections against transposed HF weights, RoPE (a [heads, B, Dh] view of the token rows),
the new key and value appended to each cache with ``scatter``, then per sequence one batched
GEMM over [KV heads, group] for the scores (the cache read through a transposed view, and shared
by the heads of a group through a stride-0 axis), softmax, a batched GEMM with V, the output
projection and the residual. Prefill: one sequence of T tokens from position 0, the same with a
causal softmax. Outputs are compared bit for bit with numerics.py applied step by step, and
against the float64 golden layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from opbsim.emulator import golden
from opbsim.emulator.asmbuild import AsmBuilder
from opbsim.emulator.datamem import DataMemory, row_descriptor
from opbsim.emulator.functional import ExecutionStats, execute
from opbsim.errors import InputError
from opbsim.isa import numerics as N
from opbsim.isa.floatbits import bf16_bits, bf16_widen
from opbsim.isa.program import Program
from opbsim.isa.types import DType, Space

__all__ = ["GQAConfig", "GQARun", "run_decode", "run_prefill", "reference_decode", "reference_prefill",
           "golden_weights"]

BF16, FP32, I32 = DType.BF16, DType.FP32, DType.I32
HBM, SRAM = Space.HBM, Space.SRAM


@dataclass(frozen=True)
class GQAConfig:
    hidden: int = 256
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 64
    cache_lens: tuple[int, ...] = (37, 100)
    prefill_tokens: int = 24
    theta: float = 1e6
    eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("hidden", "heads", "kv_heads", "head_dim", "prefill_tokens"):
            if getattr(self, name) < 1:
                raise InputError(f"GQA {name} must be >= 1, got {getattr(self, name)}")
        if self.heads % self.kv_heads:
            raise InputError(f"GQA heads={self.heads} is not a multiple of kv_heads={self.kv_heads}")
        if self.head_dim % 2:
            raise InputError(f"GQA head_dim={self.head_dim} must be even (RoPE rotates halves)")
        if not self.cache_lens or min(self.cache_lens) < 0:
            raise InputError("GQA decode needs at least one sequence, with cache lengths >= 0")

    def footprint_B(self) -> int:
        """Bytes of weights, caches and scores (a lower bound on what a run holds)."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        weights = 2 * self.hidden * (2 * q + 2 * kv)
        cache = 4 * kv * sum(n + 1 for n in self.cache_lens)
        t = self.prefill_tokens
        scores = 6 * self.heads * max(t * t, max(self.cache_lens, default=0) + 1)
        return weights + cache + scores + 16 * t * (self.hidden + q)

    @property
    def group(self) -> int:
        return self.heads // self.kv_heads

    @property
    def scale(self) -> float:
        return float(np.float32(1.0 / math.sqrt(self.head_dim)))

    def shape(self, decode: bool) -> str:
        s = f"H={self.hidden} heads={self.heads}/{self.kv_heads} Dh={self.head_dim}"
        return s + (f" cache={list(self.cache_lens)}" if decode else f" T={self.prefill_tokens}")


@dataclass
class GQARun:
    cfg: GQAConfig
    memory: DataMemory
    program: Program
    stats: ExecutionStats
    text: str

    def raw(self, name: str) -> np.ndarray:
        return self.memory.raw(self.program.descriptor(name)).copy()

    def val(self, name: str) -> np.ndarray:
        return self.memory.load(self.program.descriptor(name))


def _weights(b: AsmBuilder, cfg: GQAConfig) -> None:
    h, qd, kd = cfg.hidden, cfg.heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim
    b.tensor("ln_w", HBM, BF16, (h,), "RMSNorm weight")
    for name, rows in (("wq", qd), ("wk", kd), ("wv", kd)):
        b.tensor(name, HBM, BF16, (rows, h), f"{name}, HF layout [out, in]")
        b.view(f"{name}_t", name, (h, rows), (1, h), note="transposed: a strided view")
    b.tensor("wo", HBM, BF16, (h, qd), "wo, HF layout")
    b.view("wo_t", "wo", (qd, h), (1, qd))


def _projections(b: AsmBuilder, cfg: GQAConfig, t: int) -> None:
    """Norm, Q/K/V, RoPE of t token rows: leaves qr [t, NH*Dh], kr / v [t, KVH*Dh] (bf16)."""
    h, dh, nh, kvh = cfg.hidden, cfg.head_dim, cfg.heads, cfg.kv_heads
    b.tensor("xn", SRAM, BF16, (t, h))
    for name, heads in (("q", nh), ("k", kvh), ("qr", nh), ("kr", kvh), ("v", kvh)):
        b.tensor(name, SRAM, BF16, (t, heads * dh))
    b.view("q_h", "q", (nh, t, dh), (dh, nh * dh, 1), note="[heads, tokens, Dh] for rope")
    b.view("qr_h", "qr", (nh, t, dh), (dh, nh * dh, 1))
    b.view("k_h", "k", (kvh, t, dh), (dh, kvh * dh, 1))
    b.view("kr_h", "kr", (kvh, t, dh), (dh, kvh * dh, 1))
    b.op(f"rmsnorm.xpu  xn, x, ln_w, eps={cfg.eps}")
    b.op("gemm.xpu     q, xn, wq_t")
    b.op("gemm.xpu     k, xn, wk_t")
    b.op("gemm.xpu     v, xn, wv_t")
    b.op(f"rope.xpu     qr_h, q_h, pos, theta={cfg.theta}")
    b.op(f"rope.xpu     kr_h, k_h, pos, theta={cfg.theta}")


def _attention(b: AsmBuilder, cfg: GQAConfig, tag: str, rows: int, cols: int, q_off: int, kc: str, vc: str,
               kv_stride: int, causal_qpos: int) -> None:
    """Scores, softmax and P.V for `rows` queries of one sequence against `cols` cached keys."""
    dh, g, kvh, nh = cfg.head_dim, cfg.group, cfg.kv_heads, cfg.heads
    b.view(f"q4{tag}", "qr", (kvh, g, rows, dh), (g * dh, dh, nh * dh, 1), offset=q_off)
    b.view(f"kt4{tag}", kc, (kvh, g, dh, cols), (dh, 0, 1, kv_stride), note="K^T, shared by a group")
    b.view(f"v4{tag}", vc, (kvh, g, cols, dh), (dh, 0, kv_stride, 1))
    b.view(f"o4{tag}", "attn", (kvh, g, rows, dh), (g * dh, dh, nh * dh, 1), offset=q_off)
    b.tensor(f"s{tag}", SRAM, FP32, (kvh, g, rows, cols))
    b.tensor(f"p{tag}", SRAM, BF16, (kvh, g, rows, cols))
    b.op(f"gemm.xpu     s{tag}, q4{tag}, kt4{tag}", "scores, batched over [kv head, group]")
    b.op(f"softmax.xpu  p{tag}, s{tag}, scale={cfg.scale}, causal=1, qpos={causal_qpos}")
    b.op(f"gemm.xpu     o4{tag}, p{tag}, v4{tag}", "P V")


def _finish(b: AsmBuilder, cfg: GQAConfig, t: int) -> None:
    b.tensor("ao", SRAM, FP32, (t, cfg.hidden))
    b.op("gemm.xpu     ao, attn, wo_t", "output projection")
    b.op("add.xpu      y, x, ao", "residual, rounded to bf16 once")
    b.op("halt")


def _put(mem: DataMemory, prog: Program, name: str, rng: np.random.Generator, scale: float, offset: float = 0.0,
         rows: int | None = None) -> None:
    d = prog.descriptor(name)
    shape = d.shape if rows is None else (rows,) + d.shape[1:]
    v = rng.standard_normal(shape, dtype=np.float32) * np.float32(scale) + np.float32(offset)
    if rows is None:
        mem.write_raw(d, bf16_bits(v))
    else:
        for r in range(rows):
            mem.write_raw(row_descriptor(d, r), bf16_bits(v[r]))


def _fill_weights(mem: DataMemory, prog: Program, cfg: GQAConfig, rng: np.random.Generator) -> None:
    _put(mem, prog, "ln_w", rng, 0.1, 1.0)
    for name in ("wq", "wk", "wv"):
        _put(mem, prog, name, rng, cfg.hidden ** -0.5)
    _put(mem, prog, "wo", rng, (cfg.heads * cfg.head_dim) ** -0.5)


def run_decode(cfg: GQAConfig, seed: int = 0) -> GQARun:
    bsz, kd = len(cfg.cache_lens), cfg.kv_heads * cfg.head_dim
    b = AsmBuilder(f"GQA decode attention ({cfg.shape(True)})")
    b.tensor("x", HBM, BF16, (bsz, cfg.hidden), "one new token per sequence")
    b.tensor("y", HBM, BF16, (bsz, cfg.hidden), "layer output")
    b.tensor("pos", HBM, I32, (bsz,), "their positions = cache lengths")
    _weights(b, cfg)
    for s, length in enumerate(cfg.cache_lens):
        b.tensor(f"kc{s}", HBM, BF16, (length + 1, kd), f"sequence {s}: K cache, rotated keys")
        b.tensor(f"vc{s}", HBM, BF16, (length + 1, kd), f"sequence {s}: V cache")
    _projections(b, cfg, bsz)
    b.tensor("attn", SRAM, BF16, (bsz, cfg.heads * cfg.head_dim))
    for s, length in enumerate(cfg.cache_lens):
        b.view(f"krow{s}", "kr", (1, kd), (kd, 1), offset=s * kd)
        b.view(f"vrow{s}", "v", (1, kd), (kd, 1), offset=s * kd)
        b.view(f"pos{s}", "pos", (1,), (1,), offset=s)
        b.op(f"scatter.xpu  kc{s}, krow{s}, pos{s}", "append the new key")
        b.op(f"scatter.xpu  vc{s}, vrow{s}, pos{s}", "and value")
        _attention(b, cfg, str(s), 1, length + 1, s * cfg.heads * cfg.head_dim, f"kc{s}", f"vc{s}", kd, length)
    _finish(b, cfg, bsz)
    prog = b.program("<gqa-decode>")
    mem = DataMemory(b.capacities_B())
    rng = np.random.default_rng(seed)
    _put(mem, prog, "x", rng, 1.0)
    mem.write_raw(prog.descriptor("pos"), np.array(cfg.cache_lens, dtype=np.int32))
    _fill_weights(mem, prog, cfg, rng)
    for s, length in enumerate(cfg.cache_lens):
        _put(mem, prog, f"kc{s}", rng, 1.0, rows=length)
        _put(mem, prog, f"vc{s}", rng, 1.0, rows=length)
    return GQARun(cfg, mem, prog, execute(prog, mem), b.text)


def run_prefill(cfg: GQAConfig, seed: int = 0) -> GQARun:
    t = cfg.prefill_tokens
    b = AsmBuilder(f"GQA prefill attention ({cfg.shape(False)})")
    b.tensor("x", HBM, BF16, (t, cfg.hidden), "the prompt")
    b.tensor("y", HBM, BF16, (t, cfg.hidden), "layer output")
    b.tensor("pos", HBM, I32, (t,), "positions 0..T-1")
    _weights(b, cfg)
    _projections(b, cfg, t)
    b.tensor("attn", SRAM, BF16, (t, cfg.heads * cfg.head_dim))
    _attention(b, cfg, "", t, t, 0, "kr", "v", cfg.kv_heads * cfg.head_dim, 0)
    _finish(b, cfg, t)
    prog = b.program("<gqa-prefill>")
    mem = DataMemory(b.capacities_B())
    rng = np.random.default_rng(seed)
    _put(mem, prog, "x", rng, 1.0)
    mem.write_raw(prog.descriptor("pos"), np.arange(t, dtype=np.int32))
    _fill_weights(mem, prog, cfg, rng)
    return GQARun(cfg, mem, prog, execute(prog, mem), b.text)


def _bf(x: np.ndarray) -> np.ndarray:
    return bf16_widen(N.store(x, BF16))


def _ref_projections(run: GQARun, t: int, pos: np.ndarray):
    cfg = run.cfg
    nh, kvh, dh = cfg.heads, cfg.kv_heads, cfg.head_dim
    xn = _bf(N.rmsnorm(run.val("x"), run.val("ln_w"), cfg.eps))
    q, k, v = (_bf(N.gemm(xn, run.val(w).T)) for w in ("wq", "wk", "wv"))
    qr = _bf(N.rope(q.reshape(t, nh, dh).transpose(1, 0, 2), pos, cfg.theta))  # [NH, t, Dh]
    kr = _bf(N.rope(k.reshape(t, kvh, dh).transpose(1, 0, 2), pos, cfg.theta))  # [KVH, t, Dh]
    return qr, kr, v.reshape(t, kvh, dh).transpose(1, 0, 2)


def _ref_attend(cfg: GQAConfig, q: np.ndarray, keys: np.ndarray, values: np.ndarray, qpos: int) -> np.ndarray:
    """q [NH, rows, Dh]; keys / values [KVH, cols, Dh] -> [rows, NH*Dh] (bf16 values)."""
    kvh, g, dh = cfg.kv_heads, cfg.group, cfg.head_dim
    rows, cols = q.shape[1], keys.shape[1]
    q4 = q.reshape(kvh, g, rows, dh)
    kt4 = np.broadcast_to(keys.transpose(0, 2, 1)[:, None], (kvh, g, dh, cols))
    v4 = np.broadcast_to(values[:, None], (kvh, g, cols, dh))
    p = _bf(N.softmax(N.gemm(q4, kt4), cfg.scale, True, qpos))
    o = _bf(N.gemm(p, v4))  # [KVH, G, rows, Dh]
    return o.reshape(cfg.heads, rows, dh).transpose(1, 0, 2).reshape(rows, cfg.heads * dh)


def _ref_finish(run: GQARun, attn: np.ndarray) -> np.ndarray:
    return N.store(N.add(run.val("x"), N.gemm(attn, run.val("wo").T)), BF16)


def reference_decode(run: GQARun) -> dict[str, np.ndarray]:
    """numerics.py step by step: y, and each cache's new row (raw bf16)."""
    cfg = run.cfg
    kd = cfg.kv_heads * cfg.head_dim
    lens = np.array(cfg.cache_lens)
    qr, kr, v = _ref_projections(run, len(lens), lens)
    attn = np.zeros((len(lens), cfg.heads * cfg.head_dim), np.float32)
    out: dict[str, np.ndarray] = {}
    for s, length in enumerate(cfg.cache_lens):
        keys = run.val(f"kc{s}")[:length].reshape(length, cfg.kv_heads, cfg.head_dim).transpose(1, 0, 2)
        vals = run.val(f"vc{s}")[:length].reshape(length, cfg.kv_heads, cfg.head_dim).transpose(1, 0, 2)
        keys = np.concatenate([keys, kr[:, s:s + 1]], axis=1)
        vals = np.concatenate([vals, v[:, s:s + 1]], axis=1)
        attn[s] = _ref_attend(cfg, qr[:, s:s + 1], keys, vals, length)[0]
        out[f"kc{s}"] = N.store(keys[:, -1].reshape(1, kd), BF16)
        out[f"vc{s}"] = N.store(vals[:, -1].reshape(1, kd), BF16)
    out["y"] = _ref_finish(run, attn)
    return out


def reference_prefill(run: GQARun) -> dict[str, np.ndarray]:
    cfg = run.cfg
    t = cfg.prefill_tokens
    qr, kr, v = _ref_projections(run, t, np.arange(t))
    attn = _ref_attend(cfg, qr, kr, v, 0)
    kd = cfg.kv_heads * cfg.head_dim
    return {"y": _ref_finish(run, attn), "kr": N.store(kr.transpose(1, 0, 2).reshape(t, kd), BF16),
            "v": N.store(v.transpose(1, 0, 2).reshape(t, kd), BF16)}


def golden_weights(run: GQARun) -> golden.GQAWeights:
    cfg = run.cfg

    def f64(name):
        return run.val(name).astype(np.float64)

    return golden.GQAWeights(f64("ln_w"), f64("wq"), f64("wk"), f64("wv"), f64("wo"),
                             cfg.heads, cfg.kv_heads, cfg.head_dim)
