"""The scaled RoPE tables (isa/rope_freq.py) are transformers' formulas correctly rounded to fp32: within
half an ulp of an independent float64 transcription (emulator/golden_rope.py), equal to its rounding
wherever float64 is not within its own error of a midpoint; YaRN's correction range, attention factor
and DeepSeek's softmax-scale factor have the published values; unscaled models keep their table."""

import dataclasses
import math

import numpy as np
import pytest

from opbsim.emulator import golden_rope as G
from opbsim.isa import rope_freq as R
from opbsim.isa.elementary import rope_inv_freq
from opbsim.layers.rope_table import mla_softmax_scale, rope_table
from opbsim.workloads import PRESETS
from opbsim.workloads.models import RopeScaling

SCALINGS = {  # (theta, dim, scaling): the presets' and variants that reach each branch
    "deepseek-v3 yarn x40": (10000.0, 64, PRESETS["deepseek-v3"].rope_scaling),
    "gpt-oss yarn x32 untruncated": (150000.0, 64, PRESETS["gpt-oss-120b"].rope_scaling),
    "qwen2.5 yarn x4": (1e6, 128, RopeScaling(kind="yarn", factor=4.0, original_max_position_embeddings=32768)),
    "yarn with a single-point range": (10000.0, 16, RopeScaling(kind="yarn", factor=8.0, beta_fast=3.0, beta_slow=3.0,
                                                                original_max_position_embeddings=4096)),
    "llama4-scout llama3 x8": (500000.0, 128, PRESETS["llama4-scout"].rope_scaling),
    "llama3 x32 on 64 columns": (10000.0, 64, RopeScaling(
        kind="llama3", factor=32.0, low_freq_factor=1.0, high_freq_factor=16.0, original_max_position_embeddings=4096)),
    "linear x4": (10000.0, 128, RopeScaling(kind="linear", factor=4.0)),
    "linear x3": (1e6, 64, RopeScaling(kind="linear", factor=3.0)),
}


def _table(theta, dim, s):
    model = dataclasses.replace(PRESETS["mixtral-8x7b"], rope_theta=theta, rope_scaling=s)
    return rope_table(model, dim)


@pytest.mark.parametrize("theta,dim,scaling", SCALINGS.values(), ids=SCALINGS.keys())
def test_a_scaled_table_is_the_correct_fp32_rounding_of_transformers_formula(theta, dim, scaling):
    table, _ = _table(theta, dim, scaling)
    want = G.inv_freq(theta, dim, scaling)
    ulp = np.spacing(table.astype(np.float32)).astype(np.float64)
    assert (np.abs(table - want) <= 0.5 * ulp * (1 + 1e-6)).all()  # within half an ulp: the nearest fp32
    # where float64 (error below 1e-13 relative) is not that close to a midpoint, both round the same way
    clear = np.abs(np.abs(table - want) - 0.5 * ulp) > 1e-13 * np.abs(want)
    assert clear.sum() >= dim // 2 - 1
    assert np.array_equal(table[clear], want[clear].astype(np.float32))


@pytest.mark.parametrize("theta,dim,scaling", SCALINGS.values(), ids=SCALINGS.keys())
def test_a_scaled_table_changes_the_unscaled_one(theta, dim, scaling):
    table, _ = _table(theta, dim, scaling)
    unscaled = rope_inv_freq(theta, dim)
    assert table[0] == unscaled[0] or scaling.kind == "linear"  # the fastest rotation is kept (not by linear)
    assert (table != unscaled).sum() >= 1


def test_llama3_x8_keeps_the_high_frequencies_and_divides_the_low_ones_by_8_exactly():
    table, m = _table(500000.0, 128, PRESETS["llama4-scout"].rope_scaling)
    unscaled = rope_inv_freq(500000.0, 128)
    wavelen = 2 * math.pi / unscaled.astype(np.float64)
    high, low = wavelen < 8192 / 4, wavelen > 8192 / 1
    assert high.sum() and low.sum() and (~high & ~low).sum()  # all three bands present
    assert np.array_equal(table[high], unscaled[high]) and np.array_equal(table[low], unscaled[low] / 8)
    assert m == 1.0


@pytest.mark.parametrize("theta,dim,beta_fast,beta_slow,original,truncate,expected", [
    (10000.0, 64, 32, 1, 4096, True, (10, 23)),  # DeepSeek-V3's rope head: floor(10.2), ceil(22.7)
    (10000.0, 64, 32, 1, 4096, False, None),
    (150000.0, 64, 32, 1, 4096, False, None),  # gpt-oss: 8.09, 17.40
    (150000.0, 64, 32, 1, 4096, True, (8, 18)),
    (10000.0, 16, 1e5, 1e-6, 4096, True, (0, 15)),  # clamped to [0, dim - 1]
])
def test_the_yarn_correction_range_is_transformers_find_correction_range(theta, dim, beta_fast, beta_slow, original,
                                                                         truncate, expected):
    got = R.yarn_correction_range(theta, dim, beta_fast, beta_slow, original, truncate)
    want = G.yarn_correction_range(theta, dim, beta_fast, beta_slow, original, truncate)
    if truncate:
        assert tuple(int(v) for v in got) == want == expected
    else:
        assert all(abs(float(g) - w) <= 1e-12 * max(1.0, abs(w)) for g, w in zip(got, want))
        assert float(got[0]) != int(got[0])  # not rounded


def test_deepseek_v3_softmax_scale_grows_by_its_yarn_mscale_squared():
    m = 0.1 * math.log(40) + 1  # yarn_get_mscale(40, mscale_all_dim 1.0) = 1.36888...
    assert float(R.yarn_get_mscale(40, 1.0)) == pytest.approx(1.3688879454113936, rel=1e-15)
    assert R.mla_softmax_scale(192, 40.0, 1.0) == float(np.float32(m * m / math.sqrt(192)))
    assert mla_softmax_scale(PRESETS["deepseek-v3"], 192) == R.mla_softmax_scale(192, 40.0, 1.0)
    assert G.mla_scale_factor(PRESETS["deepseek-v3"].rope_scaling) == pytest.approx(m * m, rel=1e-15)
    v2 = 0.1 * 0.707 * math.log(40) + 1  # DeepSeek-V2: mscale_all_dim 0.707
    assert mla_softmax_scale(PRESETS["deepseek-v2"], 192) == float(np.float32(v2 * v2 / math.sqrt(192)))


def test_an_unscaled_mla_softmax_scale_is_what_it_was():
    model = dataclasses.replace(PRESETS["deepseek-v3"], rope_scaling=None)
    assert mla_softmax_scale(model, 192) == float(np.float32(1.0 / math.sqrt(192)))
    no_all_dim = dataclasses.replace(PRESETS["deepseek-v3"], rope_scaling=PRESETS["gpt-oss-20b"].rope_scaling)
    assert mla_softmax_scale(no_all_dim, 192) == float(np.float32(1.0 / math.sqrt(192)))


@pytest.mark.parametrize("name,want", [
    ("gpt-oss-20b", 0.1 * math.log(32) + 1),  # no mscale keys: get_mscale(factor) = 1.3466
    ("deepseek-v3", 1.0),  # mscale = mscale_all_dim: get_mscale / get_mscale = 1
    ("deepseek-v2-lite", 1.0),
    ("llama4-scout", 1.0),  # llama3: no factor on cos and sin
])
def test_the_cos_sin_factor_is_yarns_attention_factor_correctly_rounded(name, want):
    model = PRESETS[name]
    d = model.mla.qk_rope_head_dim if model.mla else model.head_dim
    _, m = rope_table(model, d)
    assert m == float(np.float32(want))
    assert G.attention_factor(model.rope_scaling) == pytest.approx(want, rel=1e-15)


def test_a_given_attention_factor_is_taken_as_is():
    s = RopeScaling(kind="yarn", factor=32.0, original_max_position_embeddings=4096, attention_factor=1.25,
                    mscale=1.0, mscale_all_dim=0.5)
    assert R.yarn_attention_factor(s.factor, s.attention_factor, s.mscale, s.mscale_all_dim) == 1.25


@pytest.mark.parametrize("name", ["mixtral-8x7b", "llama-3-70b", "qwen3-30b-a3b", "llama4-maverick"])
def test_an_unscaled_model_keeps_the_theta_table_bit_for_bit_and_a_unit_factor(name):
    model = PRESETS[name]
    table, m = rope_table(model, model.head_dim)
    assert model.rope_scaling is None and m == 1.0
    assert np.array_equal(table.view(np.uint32), rope_inv_freq(float(np.float32(model.rope_theta)),
                                                               model.head_dim).view(np.uint32))
