"""For every instruction, the functional executor's result equals numerics.py bit for bit, on
random strided operands (permuted, padded, stride-0 broadcast) whose values include subnormals,
signed zeros, infinities, NaN and bf16 rounding ties, and on length-1 shapes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from opbsim.isa import numerics as N
from opbsim.isa import rope_freq as R
from opbsim.isa.elementary import rope_inv_freq
from opbsim.isa.spec import BY_MNEMONIC
from opbsim.isa.types import DType

from .harness import LAYOUTS, Bench


def _definition(mnemonic: str):
    """The numerics definition of the instruction spelled ``mnemonic``."""
    return N.SEMANTICS[BY_MNEMONIC[mnemonic].opcode]


BF16, FP32, I32, FP8 = DType.BF16, DType.FP32, DType.I32, DType.FP8_E4M3
FLOATS = (BF16, FP32)
SEEDS = range(3)
COVERED: set[str] = set()


def covers(*mnemonics: str):
    COVERED.update(mnemonics)
    return lambda fn: fn


def bits(raw: np.ndarray) -> np.ndarray:
    raw = np.ascontiguousarray(raw)
    return raw.view({1: np.uint8, 2: np.uint16, 4: np.uint32}[raw.dtype.itemsize])


def assert_same_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    mismatch = np.flatnonzero(bits(got).ravel() != bits(want).ravel())
    assert mismatch.size == 0, f"{mismatch.size} of {got.size} differ, first at flat index {mismatch[:5]}"


def widen(raw, dtype):
    return N.widen(raw, dtype)


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(abs(hash(key)) % 2**32)


SHAPES = [(1,), (7,), (1, 1), (3, 5), (2, 1, 4), (2, 3, 1, 5)]


@covers("copy")
@pytest.mark.parametrize(("seed", "dtype", "shape"), list(itertools.product(SEEDS, (BF16, FP32, I32), SHAPES)))
def test_copy_moves_bits(seed, dtype, shape):
    b = Bench(rng_for("copy", seed, dtype, shape))
    b.tensor("src", dtype, shape, LAYOUTS[seed % 4])
    b.tensor("dst", dtype, shape, "permuted", fill=False)
    mem, before = b.run("copy", {"dst": "dst", "src": "src"}, unit=BY_MNEMONIC["copy"].units[0])
    assert_same_bits(b.raw(mem, "dst"), N.copy(before["src"]))


@covers("cvt")
@pytest.mark.parametrize(("seed", "src_t", "dst_t"),
                         list(itertools.product(SEEDS, (BF16, FP32, I32, FP8), (BF16, FP32, I32, FP8))))
def test_cvt(seed, src_t, dst_t):
    b = Bench(rng_for("cvt", seed, src_t, dst_t))
    shape = SHAPES[seed + 2]
    b.tensor("src", src_t, shape, LAYOUTS[seed])
    b.tensor("dst", dst_t, shape, fill=False)
    mem, before = b.run("cvt", {"dst": "dst", "src": "src"})
    assert_same_bits(b.raw(mem, "dst"), N.cvt(before["src"], src_t, dst_t))


@covers("add", "sub", "mul", "div")
@pytest.mark.parametrize(("op", "seed", "types"),
                         list(itertools.product(("add", "sub", "mul", "div"), SEEDS,
                                                itertools.product(FLOATS, repeat=3))))
def test_binary_elementwise(op, seed, types):
    ta, tb, td = types
    b = Bench(rng_for(op, seed, types))
    shape = SHAPES[(seed + len(op)) % len(SHAPES)]
    b.tensor("a", ta, shape, LAYOUTS[seed])
    b.tensor("b", tb, shape, "broadcast")
    b.tensor("dst", td, shape, "padded", fill=False)
    mem, before = b.run(op, {"dst": "dst", "a": "a", "b": "b"})
    want = _definition(op)(widen(before["a"], ta), widen(before["b"], tb))
    assert_same_bits(b.raw(mem, "dst"), N.store(want, td))


@covers("exp", "rsqrt", "silu", "sigmoid", "relu", "gelu")
@pytest.mark.parametrize(("op", "seed", "ts", "td"),
                         list(itertools.product(("exp", "rsqrt", "silu", "sigmoid", "relu", "gelu"), SEEDS, FLOATS,
                                                FLOATS)))
def test_unary_elementary(op, seed, ts, td):
    b = Bench(rng_for(op, seed, ts, td))
    shape = (64, 33) if seed == 0 else SHAPES[seed + 2]
    b.tensor("src", ts, shape, LAYOUTS[seed])
    b.tensor("dst", td, shape, fill=False)
    mem, before = b.run(op, {"dst": "dst", "src": "src"})
    assert_same_bits(b.raw(mem, "dst"), N.store(_definition(op)(widen(before["src"], ts)), td))


@covers("clamp")
@pytest.mark.parametrize(("seed", "bounds"),
                         list(itertools.product(SEEDS, ((-7.0, 7.0, 1), (0.0, 7.0, 0), (0.0, 0.0, 1)))))
def test_clamp(seed, bounds):
    lo, hi, lower = bounds
    b = Bench(rng_for("clamp", seed, bounds))
    shape = SHAPES[seed + 2]
    b.tensor("src", FLOATS[seed % 2], shape, LAYOUTS[seed])
    b.tensor("dst", FLOATS[(seed + 1) % 2], shape, fill=False)
    mem, before = b.run("clamp", {"dst": "dst", "src": "src", "lo": lo, "hi": hi, "lower": lower})
    want = N.clamp(widen(before["src"], FLOATS[seed % 2]), lo, hi, bool(lower))
    assert_same_bits(b.raw(mem, "dst"), N.store(want, FLOATS[(seed + 1) % 2]))


@covers("scale")
@pytest.mark.parametrize(("seed", "factor"), list(itertools.product(SEEDS, (0.125, -3.0, 1e-30, 3e38, 0.0))))
def test_scale(seed, factor):
    b = Bench(rng_for("scale", seed, factor))
    b.tensor("src", FLOATS[seed % 2], (5, 6), LAYOUTS[seed])
    b.tensor("dst", FLOATS[(seed + 1) % 2], (5, 6), fill=False)
    mem, before = b.run("scale", {"dst": "dst", "src": "src", "factor": float(np.float32(factor))})
    want = N.scale(widen(before["src"], FLOATS[seed % 2]), float(np.float32(factor)))
    assert_same_bits(b.raw(mem, "dst"), N.store(want, FLOATS[(seed + 1) % 2]))


@covers("max", "sum")
@pytest.mark.parametrize(("op", "seed", "shape"),
                         list(itertools.product(("max", "sum"), SEEDS, [(1,), (9,), (4, 1), (3, 17), (2, 2, 5)])))
def test_reductions_over_the_last_axis(op, seed, shape):
    b = Bench(rng_for(op, seed, shape))
    b.tensor("src", FLOATS[seed % 2], shape, LAYOUTS[seed])
    b.tensor("dst", FP32, shape[:-1] + (1,), fill=False)
    mem, before = b.run(op, {"dst": "dst", "src": "src"})
    assert_same_bits(b.raw(mem, "dst"), N.store(_definition(op)(widen(before["src"], FLOATS[seed % 2])), FP32))


@covers("rope")
@pytest.mark.parametrize(("seed", "shape"), list(itertools.product(SEEDS, [(1, 2), (3, 8), (4, 5, 64), (2, 2, 3, 16)])))
def test_rope(seed, shape):
    rng = rng_for("rope", seed, shape)
    b = Bench(rng)
    b.tensor("src", FLOATS[seed % 2], shape, LAYOUTS[seed] if LAYOUTS[seed] != "broadcast" else "c")
    pos = rng.integers(0, 1 << 20, shape[-2]).astype(np.int32)
    pos[0] = 0
    b.tensor("pos", I32, (shape[-2],), data=pos)
    b.tensor("dst", BF16, shape, fill=False)
    d = shape[-1]
    freq, mscale = ((rope_inv_freq(10000.0, d), 1.0),  # unscaled; YaRN (gpt-oss's) with its factor; llama3
                    (R.yarn_inv_freq(150000.0, d, 32.0, 32.0, 1.0, 4096, False), R.yarn_attention_factor(32.0)),
                    (R.llama3_inv_freq(500000.0, d, 8.0, 1.0, 4.0, 8192), float(np.float32(0.7))))[seed]
    b.tensor("freq", FP32, (d // 2,), data=freq)
    mem, before = b.run("rope", {"dst": "dst", "src": "src", "pos": "pos", "freq": "freq", "mscale": mscale})
    want = N.rope(widen(before["src"], FLOATS[seed % 2]), before["pos"], freq, mscale)
    assert_same_bits(b.raw(mem, "dst"), N.store(want, BF16))


@covers("softmax")
@pytest.mark.parametrize(("seed", "shape", "causal"),
                         list(itertools.product(SEEDS, [(1,), (6,), (1, 1), (4, 9), (2, 3, 7), (2, 2, 3, 5)], (0, 1))))
def test_softmax(seed, shape, causal):
    rng = rng_for("softmax", seed, shape, causal)
    b = Bench(rng)
    data = (rng.standard_normal(shape) * 8).astype(np.float32)
    if seed == 1:
        data.flat[rng.integers(0, data.size)] = rng.choice([np.inf, -np.inf, np.nan, 2.0**-140])
    b.tensor("src", FP32, shape, LAYOUTS[seed], data=data if seed < 2 else None)
    b.tensor("dst", FLOATS[seed % 2], shape, fill=False)
    qpos, scale = int(rng.integers(0, 5)), float(np.float32(rng.choice([1.0, 0.125, 0.3])))
    mem, before = b.run("softmax", {"dst": "dst", "src": "src", "scale": scale, "causal": causal, "qpos": qpos})
    want = N.softmax(before["src"], scale, bool(causal), qpos)
    assert_same_bits(b.raw(mem, "dst"), N.store(want, FLOATS[seed % 2]))


@covers("softmax_masked")
@pytest.mark.parametrize(("seed", "shape", "span", "chunked", "sink"),
                         [(s, sh, w, c, k) for s in SEEDS for sh in [(1, 2), (4, 9), (2, 3, 7)]
                          for w, c, k in [(0, 0, 1), (3, 0, 0), (3, 0, 1), (4, 1, 0), (2, 1, 1)]])
def test_softmax_masked(seed, shape, span, chunked, sink):
    rng = rng_for("softmax_masked", seed, shape, span, chunked, sink)
    b = Bench(rng)
    data = (rng.standard_normal(shape) * 8).astype(np.float32)
    if seed == 1:
        data.flat[rng.integers(0, data.size)] = rng.choice([np.inf, -np.inf, 2.0**-140])
    b.tensor("src", FP32, shape, LAYOUTS[seed], data=data if seed < 2 else None)
    b.tensor("dst", FLOATS[seed % 2], shape, fill=False)
    qpos, scale = int(rng.integers(0, 5)), float(np.float32(rng.choice([1.0, 0.125, 0.3])))
    mem, before = b.run("softmax_masked", {"dst": "dst", "src": "src", "scale": scale, "qpos": qpos, "span": span,
                                           "chunked": chunked, "sink": sink})
    want = N.softmax(before["src"], scale, True, qpos, span, bool(chunked), bool(sink))
    assert_same_bits(b.raw(mem, "dst"), N.store(want, FLOATS[seed % 2]))


@covers("rmsnorm")
@pytest.mark.parametrize(("seed", "shape"), list(itertools.product(SEEDS, [(1,), (8,), (1, 1), (5, 64), (2, 3, 16)])))
def test_rmsnorm(seed, shape):
    b = Bench(rng_for("rmsnorm", seed, shape))
    b.tensor("src", FLOATS[seed % 2], shape, LAYOUTS[seed])
    b.tensor("weight", BF16, shape[-1:])
    b.tensor("dst", BF16, shape, fill=False)
    mem, before = b.run("rmsnorm", {"dst": "dst", "src": "src", "weight": "weight", "eps": float(np.float32(1e-5))})
    want = N.rmsnorm(widen(before["src"], FLOATS[seed % 2]), widen(before["weight"], BF16), float(np.float32(1e-5)))
    assert_same_bits(b.raw(mem, "dst"), N.store(want, BF16))


@covers("layernorm")
@pytest.mark.parametrize(("seed", "shape"), list(itertools.product(SEEDS, [(1,), (8,), (1, 1), (5, 64), (2, 3, 16)])))
def test_layernorm(seed, shape):
    b = Bench(rng_for("layernorm", seed, shape))
    b.tensor("src", FLOATS[seed % 2], shape, LAYOUTS[seed])
    b.tensor("weight", BF16, shape[-1:])
    b.tensor("bias", FP32, shape[-1:])
    b.tensor("dst", BF16, shape, fill=False)
    eps = float(np.float32(1e-5))
    mem, before = b.run("layernorm", {"dst": "dst", "src": "src", "weight": "weight", "bias": "bias", "eps": eps})
    want = N.layernorm(widen(before["src"], FLOATS[seed % 2]), widen(before["weight"], BF16),
                       widen(before["bias"], FP32), eps)
    assert_same_bits(b.raw(mem, "dst"), N.store(want, BF16))


@covers("topk")
@pytest.mark.parametrize(("seed", "shape", "k"),
                         [(s, sh, k) for s in SEEDS for sh, k in [((1,), 1), ((8,), 2), ((5, 8), 8), ((2, 3, 6), 3)]])
def test_topk(seed, shape, k):
    rng = rng_for("topk", seed, shape, k)
    b = Bench(rng)
    data = rng.integers(-2, 3, shape).astype(np.float32)  # many ties
    if seed == 2:
        data.flat[0] = np.nan
    b.tensor("src", FP32, shape, LAYOUTS[seed], data=data)
    b.tensor("vals", BF16, shape[:-1] + (k,), fill=False)
    b.tensor("idx", I32, shape[:-1] + (k,), fill=False)
    mem, before = b.run("topk", {"vals": "vals", "idx": "idx", "src": "src", "k": k})
    vals, idx = N.topk(before["src"], k)
    assert_same_bits(b.raw(mem, "vals"), N.store(vals, BF16))
    assert_same_bits(b.raw(mem, "idx"), idx)


@covers("topk_grouped")
@pytest.mark.parametrize(("seed", "e", "k", "groups", "keep"),
                         [(s, *g) for s in SEEDS for g in [(8, 2, 4, 2), (16, 4, 4, 1), (6, 3, 1, 1), (12, 5, 6, 3)]])
def test_topk_grouped(seed, e, k, groups, keep):
    rng = rng_for("topk_grouped", seed, e, k, groups, keep)
    b = Bench(rng)
    data = rng.integers(-2, 3, (5, e)).astype(np.float32)  # many ties, within and between groups
    if seed == 2:
        data.flat[0] = np.nan
    b.tensor("src", FP32, (5, e), LAYOUTS[seed], data=data)
    b.tensor("bias", FP32, (e,), data=rng.integers(-1, 2, e).astype(np.float32) * np.float32(0.5))
    b.tensor("vals", FP32, (5, k), fill=False)
    b.tensor("idx", I32, (5, k), fill=False)
    mem, before = b.run("topk_grouped", {"vals": "vals", "idx": "idx", "src": "src", "bias": "bias", "k": k,
                                         "groups": groups, "keep": keep})
    vals, idx = N.topk_grouped(before["src"], before["bias"], k, groups, keep)
    assert_same_bits(b.raw(mem, "vals"), N.store(vals, FP32))
    assert_same_bits(b.raw(mem, "idx"), idx)


@covers("gather")
@pytest.mark.parametrize(("seed", "dtype", "t"), list(itertools.product(SEEDS, (BF16, FP32, I32), (1, 5))))
def test_gather(seed, dtype, t):
    rng = rng_for("gather", seed, dtype, t)
    b = Bench(rng)
    b.tensor("src", dtype, (4, 7), LAYOUTS[seed])
    b.tensor("idx", I32, (t,), data=rng.integers(0, 4, t))
    b.tensor("dst", dtype, (t, 7), fill=False)
    mem, before = b.run("gather", {"dst": "dst", "src": "src", "idx": "idx"})
    assert_same_bits(b.raw(mem, "dst"), N.gather(before["src"], before["idx"]))


@covers("scatter")
@pytest.mark.parametrize(("seed", "dtype", "t"), list(itertools.product(SEEDS, (BF16, FP32), (1, 6))))
def test_scatter(seed, dtype, t):
    rng = rng_for("scatter", seed, dtype, t)
    b = Bench(rng)
    b.tensor("dst", dtype, (5, 3), "permuted")
    b.tensor("src", dtype, (t, 3), LAYOUTS[seed])
    b.tensor("idx", I32, (t,), data=rng.integers(0, 5, t))
    mem, before = b.run("scatter", {"dst": "dst", "src": "src", "idx": "idx"})
    assert_same_bits(b.raw(mem, "dst"), N.scatter(before["dst"], before["src"], before["idx"]))


@covers("scatter_add")
@pytest.mark.parametrize(("seed", "ts", "t"), list(itertools.product(SEEDS, FLOATS, (1, 7))))
def test_scatter_add(seed, ts, t):
    rng = rng_for("scatter_add", seed, ts, t)
    b = Bench(rng)
    b.tensor("dst", FP32, (4, 300), "padded")
    b.tensor("src", ts, (t, 300), LAYOUTS[seed])
    b.tensor("idx", I32, (t,), data=rng.integers(0, 4, t))
    b.tensor("w", FLOATS[seed % 2], (t,), "broadcast" if seed == 2 else "c")
    mem, before = b.run("scatter_add", {"dst": "dst", "src": "src", "idx": "idx", "w": "w"})
    want = N.scatter_add(before["dst"], widen(before["src"], ts), before["idx"], widen(before["w"], FLOATS[seed % 2]))
    rows = np.unique(before["idx"])
    expected = before["dst"].copy()  # rows idx does not name keep their bits (NaN payloads included)
    expected[rows] = N.store(want[rows], FP32)
    assert_same_bits(b.raw(mem, "dst"), expected)


GEMM_SHAPES = [(1, 1, 1), (1, 7, 3), (3, 1, 5), (4, 64, 64), (5, 130, 67), (37, 129, 70), (2, 64, 1)]


@covers("gemm", "gemm_acc")
@pytest.mark.parametrize(("op", "seed", "mkn", "layouts"),
                         [(op, s, mkn, (la, lb)) for op in ("gemm", "gemm_acc") for s in SEEDS for mkn in GEMM_SHAPES
                          for la, lb in (("c", "c"), ("permuted", "permuted"), ("padded", "broadcast"))])
def test_gemm_in_every_layout(op, seed, mkn, layouts):
    m, k, n = mkn
    b = Bench(rng_for(op, seed, mkn, layouts))
    b.tensor("a", BF16, (m, k), layouts[0])
    b.tensor("b", BF16, (k, n), layouts[1])
    td = FP32 if op == "gemm_acc" else FLOATS[seed % 2]
    b.tensor("dst", td, (m, n), "c", fill=(op == "gemm_acc"))
    mem, before = b.run(op, {"dst": "dst", "a": "a", "b": "b"})
    acc = widen(before["dst"], FP32) if op == "gemm_acc" else None
    want = N.gemm(widen(before["a"], BF16), widen(before["b"], BF16), acc)
    assert_same_bits(b.raw(mem, "dst"), N.store(want, td))


@pytest.mark.parametrize(("seed", "batch"), list(itertools.product(SEEDS, [(1,), (3,), (2, 2)])))
def test_batched_gemm_with_a_broadcast_batch_axis(seed, batch):
    b = Bench(rng_for("bgemm", seed, batch))
    b.tensor("a", BF16, batch + (3, 8), LAYOUTS[seed])
    b.tensor("b", BF16, batch + (8, 5), "broadcast")
    b.tensor("dst", FP32, batch + (3, 5), fill=False)
    mem, before = b.run("gemm", {"dst": "dst", "a": "a", "b": "b"})
    want = N.gemm(widen(before["a"], BF16), widen(before["b"], BF16))
    assert_same_bits(b.raw(mem, "dst"), N.store(want, FP32))


def test_every_value_instruction_is_covered_here_or_in_the_group_and_control_tests():
    from .test_control_and_groups import COVERED as OTHERS
    from .test_fp8_executor import COVERED as FP8_COVERED

    assert COVERED | OTHERS | FP8_COVERED == set(BY_MNEMONIC)
