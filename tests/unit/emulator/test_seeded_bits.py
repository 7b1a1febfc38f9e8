"""Seeded bf16 inputs of a layer check: SplitMix64 by index, so any range of a tensor equals the
same range of the whole, and the bits are those the module text states."""

from __future__ import annotations

import numpy as np
import pytest

from opbsim.emulator import seeded_bits
from opbsim.isa.floatbits import bf16_widen

_MASK = (1 << 64) - 1


def _splitmix(key: int, q: int) -> int:
    """Output q of SplitMix64 with state ``key``, in Python integers (the published algorithm)."""
    z = (key + (q + 1) * 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def test_the_stream_is_splitmix64_whose_first_outputs_from_state_zero_are_published():
    assert _splitmix(0, 0) == 0xE220A8397B1DCDAF and _splitmix(0, 1) == 0x6E789E6AA1B965F4


def test_each_weight_element_is_the_stated_function_of_seed_name_and_index():
    key = seeded_bits.key_of(5, "L3.w_o")
    got = seeded_bits.weight_bits(5, "L3.w_o", (3, 7)).ravel()
    for e in range(21):
        r = (_splitmix(key, e // 4) >> (16 * (e % 4))) & 0xFFFF
        assert got[e] == (r & 0x807F) | ((((r >> 7) & 7) + 117) << 7)
    gains = seeded_bits.weight_bits(5, "L3.ffn_norm.weight", (9,))
    key = seeded_bits.key_of(5, "L3.ffn_norm.weight")
    assert list(gains) == [(127 << 7) | ((_splitmix(key, e // 4) >> (16 * (e % 4))) & 0x7F) for e in range(9)]


@pytest.mark.parametrize(("start", "count"), [(0, 4), (1, 1), (3, 10), (4, 1000), (5, 4099), (12345, 7)])
def test_any_range_of_a_tensor_equals_that_range_of_the_whole(start, count):
    whole = seeded_bits.weight_bits(0, "L0.expert.1.w_down", (20000,))
    part = np.empty(count, np.uint16)
    seeded_bits.fill_weight(0, "L0.expert.1.w_down", start, part)
    assert np.array_equal(part, whole[start:start + count])


def test_weights_have_both_signs_and_magnitudes_two_to_the_minus_10_to_minus_2_and_gains_lie_in_one_to_two():
    w = bf16_widen(seeded_bits.weight_bits(1, "L0.w_qkv", (256, 256)))
    assert 2.0**-10 <= np.abs(w).min() and np.abs(w).max() < 2.0**-1
    assert 0.45 < (w > 0).mean() < 0.55
    assert len(np.unique(np.floor(np.log2(np.abs(w))))) == 8  # every exponent -10..-3 drawn
    g = bf16_widen(seeded_bits.weight_bits(1, "L0.attn_norm.weight", (4096,)))
    assert 1.0 <= g.min() and g.max() < 2.0


def test_a_tensor_depends_on_its_seed_and_name_only():
    a = seeded_bits.weight_bits(2, "L0.w_o", (64, 64))
    assert np.array_equal(a, seeded_bits.weight_bits(2, "L0.w_o", (64, 64)))
    assert np.array_equal(a.ravel()[:100], seeded_bits.weight_bits(2, "L0.w_o", (100,)))  # shape aside
    assert (a != seeded_bits.weight_bits(3, "L0.w_o", (64, 64))).mean() > 0.9
    assert (a != seeded_bits.weight_bits(2, "L1.w_o", (64, 64))).mean() > 0.9


def test_normal_bits_have_zero_mean_unit_variance_and_the_irwin_hall_bound():
    z = bf16_widen(seeded_bits.normal_bits(0, "L0.k_cache.0", (1000, 8, 16)))
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert np.abs(z).max() <= np.sqrt(12.0)
    assert seeded_bits.normal_bits(0, "x", (0, 3)).shape == (0, 3)
