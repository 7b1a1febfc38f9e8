"""sigmoid and the group-limited top-k (DeepSeek-V3's noaux_tc routing): the definitions against
float64 and against a plain restatement of the routing rule, and the executor against them."""

from __future__ import annotations

import numpy as np
import pytest

from opbsim.isa import numerics
from opbsim.isa.floatbits import F32_CANONICAL_NAN_BITS, f32_bits, ulp_error

SIGMOID_ULP = 3.5  # the same fp32 steps as silu's (exp, add, divide; the scaled branch for x < 0)


def test_sigmoid_is_within_three_and_a_half_ulp_of_float64_including_tiny_results():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-180.0, 40.0, 1 << 20), rng.standard_normal(1 << 16) * 4]).astype(np.float32)
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        ref = 1.0 / (1.0 + np.exp(-x64))
    assert ulp_error(numerics.sigmoid(x), ref).max() <= SIGMOID_ULP


def test_sigmoid_special_values():
    y = numerics.sigmoid(np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, -100.0], np.float32))
    assert y[0] == 1.0 and y[1] == 0.0 and not np.signbit(y[1])
    assert f32_bits(y[2]) == F32_CANONICAL_NAN_BITS
    assert y[3] == 0.5 and y[4] == 0.5
    assert 0 < y[5] < 1e-40  # e^-100 = 3.7e-44: a subnormal, kept


def _plain_rule(x, bias, k, groups, keep):
    """The routing rule restated row by row with Python floats rounded to fp32 at each step."""
    f = np.float32
    out_v, out_i = [], []
    for row in x:
        c = [f(f(v) + f(b)) for v, b in zip(row, bias)]
        per = len(c) // groups
        scores = []
        for g in range(groups):
            top = sorted(c[g * per:(g + 1) * per], reverse=True)[:2]
            scores.append(top[0] if len(top) == 1 else f(top[0] + top[1]))
        kept = sorted(range(groups), key=lambda g: (-scores[g], g))[:keep]
        masked = [c[e] if e // per in kept else f(0.0) for e in range(len(c))]
        idx = sorted(range(len(c)), key=lambda e: (-masked[e], e))[:k]
        out_i.append(idx)
        out_v.append([row[e] for e in idx])
    return np.asarray(out_v, np.float32), np.asarray(out_i, np.int32)


@pytest.mark.parametrize(("experts", "groups", "keep", "k"),
                         [(16, 4, 2, 4), (32, 8, 4, 8), (8, 1, 1, 2), (12, 12, 3, 3)])
def test_group_limited_topk_chooses_as_the_routing_rule_states(experts, groups, keep, k):
    rng = np.random.default_rng(experts + k)
    x = numerics.sigmoid(rng.standard_normal((40, experts)).astype(np.float32))
    x[:4] = np.round(x[:4] * 4) / 4  # ties between experts and between groups
    bias = (rng.standard_normal(experts) * 0.1).astype(np.float32)
    vals, idx = numerics.topk_grouped(x, bias, k, groups, keep)
    want_v, want_i = _plain_rule(x, bias, k, groups, keep)
    assert np.array_equal(idx, want_i) and np.array_equal(vals, want_v)


def test_group_limited_topk_returns_the_scores_without_the_bias_and_only_from_kept_groups():
    x = np.array([[0.9, 0.8, 0.1, 0.2, 0.5, 0.5, 0.3, 0.3]], np.float32)
    bias = np.array([0, 0, 1.0, 0, 0, 0, 0, 0], np.float32)  # lifts expert 2 (group 1) in the choice only
    vals, idx = numerics.topk_grouped(x, bias, 2, 4, 2)
    # group sums: g0 1.7, g1 1.1 + 0.2 = 1.3, g2 1.0, g3 0.6 -> groups 0 and 1 stay
    assert idx.tolist() == [[2, 0]] and vals.tolist() == [[np.float32(0.1), np.float32(0.9)]]


def test_the_executor_runs_the_group_limited_topk_as_defined_and_checks_its_operands():
    from opbsim.emulator.asmbuild import AsmBuilder
    from opbsim.emulator.datamem import DataMemory
    from opbsim.emulator.functional import execute
    from opbsim.errors import InputError
    from opbsim.isa.types import DType, Space

    rng = np.random.default_rng(5)
    x = rng.random((6, 16), dtype=np.float32)
    bias = (rng.standard_normal(16) * 0.1).astype(np.float32)
    for groups, fails in ((4, False), (5, True)):
        b = AsmBuilder("grouped top-k")
        b.tensor("x", Space.HBM, DType.FP32, (6, 16))
        b.tensor("bias", Space.HBM, DType.FP32, (16,))
        b.tensor("vals", Space.HBM, DType.FP32, (6, 3))
        b.tensor("idx", Space.HBM, DType.I32, (6, 3))
        b.op(f"topk_grouped.xpu vals, idx, x, bias, k=3, groups={groups}, keep=2")
        b.op("halt")
        prog = b.program("<test>")
        mem = DataMemory(b.capacities_B())
        mem.write_raw(prog.descriptor("x"), x)
        mem.write_raw(prog.descriptor("bias"), bias)
        if fails:
            with pytest.raises(InputError, match="groups=5 does not divide"):
                execute(prog, mem)
            continue
        execute(prog, mem)
        vals, idx = numerics.topk_grouped(x, bias, 3, 4, 2)
        assert np.array_equal(mem.raw(prog.descriptor("idx")), idx)
        assert np.array_equal(mem.raw(prog.descriptor("vals")), vals)
