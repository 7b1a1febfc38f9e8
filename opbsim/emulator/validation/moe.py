"""A Mixtral-shaped MoE layer as two programs, executed functionally and checked.

Program 1 (router): RMSNorm, router GEMM against the [E, H] weight read through a transposed
view, softmax, top-k, renormalised gates. The host then reads the top-k indices and writes, per
expert, the list of its tokens and their gates (the dispatch a runtime does). Program 2
(experts): residual into an fp32 accumulator, shared experts (gemm_acc into it), then for each
routed expert: gather, SwiGLU (three GEMMs against transposed HF weights), weighted
scatter_add; finally the bf16 output. The outputs are compared bit for bit with numerics.py
applied step by step (``reference``), and against the float64 golden layer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from opbsim.emulator import golden
from opbsim.emulator.asmbuild import AsmBuilder
from opbsim.emulator.datamem import DataMemory
from opbsim.emulator.functional import ExecutionStats, execute
from opbsim.errors import InputError
from opbsim.isa import numerics as N
from opbsim.isa.floatbits import bf16_widen
from opbsim.isa.program import Program
from opbsim.isa.types import DType, Space

__all__ = ["MoEConfig", "MoERun", "run_moe", "reference", "golden_check_inputs"]

BF16, FP32, I32 = DType.BF16, DType.FP32, DType.I32
HBM, SRAM = Space.HBM, Space.SRAM


@dataclass(frozen=True)
class MoEConfig:
    tokens: int = 16
    hidden: int = 256
    ffn: int = 512
    experts: int = 8
    top_k: int = 2
    shared: int = 0
    shared_ffn: int = 512
    eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("tokens", "hidden", "ffn", "experts", "top_k", "shared_ffn"):
            if getattr(self, name) < 1:
                raise InputError(f"MoE {name} must be >= 1, got {getattr(self, name)}")
        if self.shared < 0:
            raise InputError(f"MoE shared experts must be >= 0, got {self.shared}")
        if self.top_k > self.experts:
            raise InputError(f"MoE top_k={self.top_k} exceeds experts={self.experts}")

    @property
    def shape(self) -> str:
        s = f"T={self.tokens} H={self.hidden} F={self.ffn} E={self.experts} top-{self.top_k}"
        return s + (f" shared={self.shared}x{self.shared_ffn}" if self.shared else "")

    def footprint_B(self) -> int:
        """Bytes of weights and activations (bf16), a lower bound on what a run holds."""
        weights = 3 * self.hidden * (self.experts * self.ffn + self.shared * self.shared_ffn)
        return 2 * (weights + self.hidden * self.experts) + 16 * self.tokens * self.hidden + self.scratch_bound_B()

    def scratch_bound_B(self) -> int:
        """Bytes program 2 can allocate in SRAM, whatever the routing."""
        t, h, f, fs = self.tokens, self.hidden, self.ffn, self.shared_ffn
        routed = t * self.top_k * (2 * h + 3 * 4 * f + 2 * f + 4 * h + 8)
        shared = self.shared * t * (3 * 4 * fs + 2 * fs)
        return routed + shared + 64 * 9 * (self.experts + self.shared + 1)


@dataclass
class MoERun:
    """What one execution left: the memory, the two programs and their statistics."""

    cfg: MoEConfig
    memory: DataMemory
    router: Program
    experts: Program
    router_stats: ExecutionStats
    expert_stats: ExecutionStats
    texts: tuple[str, str]
    routes: list[np.ndarray]
    fill_seconds: float = 0.0

    def raw(self, name: str) -> np.ndarray:
        prog = self.experts
        return self.memory.raw(prog.descriptor(name)).copy()


def _layout(cfg: MoEConfig) -> AsmBuilder:
    t, h, f, e, k = cfg.tokens, cfg.hidden, cfg.ffn, cfg.experts, cfg.top_k
    b = AsmBuilder(f"MoE layer, router program ({cfg.shape})")
    b.tensor("x", HBM, BF16, (t, h), "layer input")
    b.tensor("ln_w", HBM, BF16, (h,), "RMSNorm weight")
    b.tensor("wr", HBM, BF16, (e, h), "router weight, HF layout [E, H]")
    b.view("wr_t", "wr", (h, e), (1, h), note="the router weight transposed: a strided view")
    for i in range(e):
        for w, shape in (("w1", (f, h)), ("w3", (f, h)), ("w2", (h, f))):
            b.tensor(f"{w}_{i}", HBM, BF16, shape, f"expert {i} {w}, HF layout")
    for i in range(cfg.shared):
        fs = cfg.shared_ffn
        for w, shape in (("sw1", (fs, h)), ("sw3", (fs, h)), ("sw2", (h, fs))):
            b.tensor(f"{w}_{i}", HBM, BF16, shape, f"shared expert {i} {w}")
    b.tensor("y", HBM, BF16, (t, h), "layer output")
    b.tensor("topi", HBM, I32, (t, k), "chosen experts")
    b.tensor("gates", HBM, FP32, (t, k), "their renormalised weights")
    b.tensor("out", HBM, FP32, (t, h), "fp32 accumulator of the combine")
    b.tensor("xn", SRAM, BF16, (t, h), "normalised input")
    b.tensor("logits", SRAM, FP32, (t, e))
    b.tensor("probs", SRAM, FP32, (t, e))
    b.tensor("topv", SRAM, FP32, (t, k))
    b.tensor("topsum", SRAM, FP32, (t, 1))
    b.view("topsum_b", "topsum", (t, k), (1, 0), note="broadcast over the k gates: stride 0")
    return b


def _router_program(cfg: MoEConfig, b: AsmBuilder) -> None:
    b.op(f"rmsnorm.xpu  xn, x, ln_w, eps={cfg.eps}")
    b.op("gemm.xpu     logits, xn, wr_t", "router logits")
    b.op("softmax.xpu  probs, logits")
    b.op(f"topk.xpu     topv, topi, probs, k={cfg.top_k}")
    b.op("sum.xpu      topsum, topv")
    b.op("div.xpu      gates, topv, topsum_b", "renormalise the top-k weights")
    b.op("halt")


def _swiglu(b: AsmBuilder, tag: str, rows: int, f: int, xin: str, w: tuple[str, str, str]) -> str:
    """Emit SwiGLU's first half for ``xin`` [rows, H] against the transposed views ``w1t``,
    ``w3t`` of (w1, w3, w2); returns the name of its [rows, F] bf16 result, the input of the
    down projection (which the caller emits)."""
    for name, dt in ((f"g{tag}", FP32), (f"u{tag}", FP32), (f"a{tag}", FP32), (f"h{tag}", BF16)):
        b.tensor(name, SRAM, dt, (rows, f))
    b.op(f"gemm.xpu     g{tag}, {xin}, {w[0]}t", "gate projection")
    b.op(f"gemm.xpu     u{tag}, {xin}, {w[1]}t", "up projection")
    b.op(f"silu.xpu     a{tag}, g{tag}")
    b.op(f"mul.xpu      h{tag}, a{tag}, u{tag}", "SwiGLU, rounded to bf16")
    return f"h{tag}"


def _expert_program(cfg: MoEConfig, layout: AsmBuilder, counts: list[int]) -> AsmBuilder:
    t, h, f = cfg.tokens, cfg.hidden, cfg.ffn
    b = layout.fork(f"MoE layer, expert program ({cfg.shape}); tokens per expert {counts}")
    b.op("cvt.xpu      out, x", "residual: out = x in fp32")
    for i in range(cfg.shared):
        fs = cfg.shared_ffn
        names = (f"sw1_{i}", f"sw3_{i}", f"sw2_{i}")
        b.view(f"sw1_{i}t", names[0], (h, fs), (1, h))
        b.view(f"sw3_{i}t", names[1], (h, fs), (1, h))
        b.view(f"sw2_{i}t", names[2], (fs, h), (1, fs))
        hs = _swiglu(b, f"s{i}", t, fs, "xn", names)
        b.op(f"gemm_acc.xpu out, {hs}, sw2_{i}t", f"shared expert {i}: accumulate onto out")
    for i, n in enumerate(counts):
        if n == 0:
            b.comment(f"expert {i}: no tokens")
            continue
        b.tensor(f"route_{i}", SRAM, I32, (n,), f"tokens routed to expert {i}")
        b.tensor(f"gw_{i}", SRAM, FP32, (n,), "and their gates")
        b.tensor(f"xe_{i}", SRAM, BF16, (n, h))
        b.tensor(f"ye_{i}", SRAM, FP32, (n, h))
        b.view(f"w1_{i}t", f"w1_{i}", (h, f), (1, h))
        b.view(f"w3_{i}t", f"w3_{i}", (h, f), (1, h))
        b.view(f"w2_{i}t", f"w2_{i}", (f, h), (1, f))
        b.op(f"gather.xpu   xe_{i}, xn, route_{i}", f"dispatch to expert {i}")
        he = _swiglu(b, f"_{i}", n, f, f"xe_{i}", (f"w1_{i}", f"w3_{i}", f"w2_{i}"))
        b.op(f"gemm.xpu     ye_{i}, {he}, w2_{i}t", "down projection")
        b.op(f"scatter_add.xpu out, ye_{i}, route_{i}, gw_{i}", "weighted combine")
    b.op("cvt.xpu      y, out", "layer output, bf16")
    b.op("halt")
    return b


def _fill(mem: DataMemory, prog: Program, cfg: MoEConfig, rng: np.random.Generator) -> None:
    """Seeded inputs and weights: float32 normals cut to bf16 (the top 16 bits; any bf16 data
    serves, and truncation keeps generating 2.6 GiB of weights cheap)."""
    def put(name: str, scale: float, offset: float = 0.0) -> None:
        d = prog.descriptor(name)
        v = rng.standard_normal(d.shape, dtype=np.float32)
        v *= np.float32(scale)
        v += np.float32(offset)
        mem.write_raw(d, (v.view(np.uint32) >> np.uint32(16)).astype(np.uint16))

    h, f, fs = cfg.hidden, cfg.ffn, cfg.shared_ffn
    put("x", 1.0)
    put("ln_w", 0.1, 1.0)
    put("wr", h ** -0.5)
    for i in range(cfg.experts):
        put(f"w1_{i}", h ** -0.5)
        put(f"w3_{i}", h ** -0.5)
        put(f"w2_{i}", f ** -0.5)
    for i in range(cfg.shared):
        put(f"sw1_{i}", h ** -0.5)
        put(f"sw3_{i}", h ** -0.5)
        put(f"sw2_{i}", fs ** -0.5)


def run_moe(cfg: MoEConfig, seed: int = 0) -> MoERun:
    """Build, fill and execute both programs; returns everything needed to check them."""
    layout = _layout(cfg)
    router_b = layout.fork(f"MoE layer, router program ({cfg.shape})")
    _router_program(cfg, router_b)
    router = router_b.program("<moe-router>")
    caps = layout.capacities_B()
    caps[SRAM] = caps.get(SRAM, 0) + cfg.scratch_bound_B()
    mem = DataMemory(caps)
    t0 = time.perf_counter()
    _fill(mem, router, cfg, np.random.default_rng(seed))
    fill_seconds = time.perf_counter() - t0
    r_stats = execute(router, mem)
    topi = mem.raw(router.descriptor("topi")).copy()
    gates = mem.raw(router.descriptor("gates")).copy()
    routes = [np.nonzero(topi == i) for i in range(cfg.experts)]
    counts = [int(r[0].size) for r in routes]
    expert_b = _expert_program(cfg, layout, counts)
    experts = expert_b.program("<moe-experts>")
    for i, (tok, slot) in enumerate(routes):
        if tok.size:
            mem.write_raw(experts.descriptor(f"route_{i}"), tok.astype(np.int32))
            mem.write_raw(experts.descriptor(f"gw_{i}"), gates[tok, slot])
    e_stats = execute(experts, mem)
    return MoERun(cfg, mem, router, experts, r_stats, e_stats, (router_b.text, expert_b.text),
                  [r[0].astype(np.int32) for r in routes], fill_seconds)


def _bf(x: np.ndarray) -> np.ndarray:
    """Round fp32 values through bf16 storage (what a bf16 destination holds)."""
    return bf16_widen(N.store(x, BF16))


def reference(run: MoERun) -> dict[str, np.ndarray]:
    """numerics.py applied step by step to the same inputs: raw y (bf16), topi, gates."""
    cfg, mem, prog = run.cfg, run.memory, run.experts

    def val(name: str) -> np.ndarray:
        return mem.load(prog.descriptor(name))

    x = val("x")
    xn = _bf(N.rmsnorm(x, val("ln_w"), cfg.eps))
    probs = N.softmax(N.gemm(xn, val("wr").T))
    topv, topi = N.topk(probs, cfg.top_k)
    gates = N.div(topv, N.seq_sum(topv))

    def swiglu(xin, w1, w3):
        return _bf(N.mul(N.silu(N.gemm(xin, w1.T)), N.gemm(xin, w3.T)))

    out = x.copy()
    for i in range(cfg.shared):
        out = N.gemm(swiglu(xn, val(f"sw1_{i}"), val(f"sw3_{i}")), val(f"sw2_{i}").T, acc=out)
    for i in range(cfg.experts):
        tok, slot = np.nonzero(topi == i)
        if tok.size:
            ye = N.gemm(swiglu(N.gather(xn, tok), val(f"w1_{i}"), val(f"w3_{i}")), val(f"w2_{i}").T)
            out = N.scatter_add(out, ye, tok, gates[tok, slot])
    return {"y": N.store(out, BF16), "topi": topi, "gates": N.store(gates, FP32)}


def golden_check_inputs(run: MoERun) -> tuple[np.ndarray, golden.MoEWeights]:
    """The float64 input and weights (the bf16 values, exactly) for the golden layer."""
    cfg, mem, prog = run.cfg, run.memory, run.experts

    def f64(name: str) -> np.ndarray:
        return mem.load(prog.descriptor(name)).astype(np.float64)

    def stack(fmt: str, n: int, shape: tuple[int, int]) -> np.ndarray:
        return np.stack([f64(fmt.format(i)) for i in range(n)]) if n else np.zeros((0, *shape))

    h, fs = cfg.hidden, cfg.shared_ffn
    w = golden.MoEWeights(
        norm=f64("ln_w"), router=f64("wr"),
        w1=stack("w1_{}", cfg.experts, (cfg.ffn, h)), w3=stack("w3_{}", cfg.experts, (cfg.ffn, h)),
        w2=stack("w2_{}", cfg.experts, (h, cfg.ffn)),
        sw1=stack("sw1_{}", cfg.shared, (fs, h)), sw3=stack("sw3_{}", cfg.shared, (fs, h)),
        sw2=stack("sw2_{}", cfg.shared, (h, fs)),
    )
    return f64("x"), w
