"""Bit comparisons name each mismatch by coordinates and give both bit patterns and values."""

from __future__ import annotations

import numpy as np

from opbsim.reference.compare import compare


def test_a_bf16_mismatch_is_reported_with_coordinates_bits_and_values():
    want = np.array([[0x3F80, 0x4000], [0x7FC0, 0x0000]], np.uint16)
    got = want.copy()
    got[1, 1] = 0x8000  # -0.0 where +0.0 is wanted
    c = compare("y", got, want)
    assert (c.count, c.equal, c.bit_exact) == (4, 3, False)
    assert c.lines() == ["y: MISMATCH (3/4)", "  y[1, 1]: got 0x8000 (-0.0), want 0x0000 (0.0)"]


def test_nan_payloads_count_as_different_bits_and_equal_bits_as_exact():
    want = np.array([np.nan], np.float32)
    got = np.array([0x7FFFFFFF], np.uint32).view(np.float32)
    assert not compare("x", got, want).bit_exact
    assert compare("x", want.copy(), want).lines() == ["x: bit-exact (1/1)"]


def test_a_shape_or_dtype_disagreement_is_a_problem_not_a_count():
    c = compare("idx", np.zeros((2, 3), np.int32), np.zeros((3, 2), np.int32))
    assert c.lines() == ["idx: got int32[2, 3], want int32[3, 2]"]
    assert not c.bit_exact


def test_only_the_first_mismatches_are_kept():
    c = compare("v", np.ones(100, np.int32), np.zeros(100, np.int32), limit=3)
    assert c.equal == 0 and [m.index for m in c.mismatches] == [(0,), (1,), (2,)]
