"""Percentiles of serving latencies: numpy's linear definition, weighted by counts."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opbsim.emulator.serving_metrics import percentile, weighted_percentile
from opbsim.errors import InputError


def test_the_median_of_an_even_sample_interpolates_between_the_middle_two():
    # sample 1, 1, 2, 3: position (4 - 1) x 0.5 = 1.5, halfway between x1 = 1 and x2 = 2
    assert weighted_percentile([3, 1, 2], [1, 2, 1], 50) == 1.5
    # p90: position 3 x 0.9 = 2.7, x2 + 0.7 (x3 - x2) = 2 + 0.7 x 1
    assert weighted_percentile([3, 1, 2], [1, 2, 1], 90) == pytest.approx(2.7)
    assert weighted_percentile([3, 1, 2], [1, 2, 1], 0) == 1 and weighted_percentile([3, 1, 2], [1, 2, 1], 100) == 3


def test_values_with_zero_count_do_not_count_and_an_empty_sample_has_no_percentile():
    assert weighted_percentile([5, 7, 100], [2, 2, 0], 99) == pytest.approx(7)
    assert math.isnan(weighted_percentile([1.0], [0], 50))
    assert math.isnan(percentile([], 50))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.integers(0, 5)), min_size=1, max_size=20),
       st.floats(0, 100))
def test_a_weighted_percentile_equals_numpy_on_the_expanded_sample(pairs, q):
    values, counts = zip(*pairs)
    expanded = np.repeat(values, counts)
    got = weighted_percentile(values, counts, q)
    if expanded.size == 0:
        assert math.isnan(got)
    else:
        assert got == pytest.approx(float(np.percentile(expanded, q)), rel=1e-12, abs=1e-9)


def test_a_percentile_outside_0_to_100_or_a_negative_count_is_an_input_error():
    with pytest.raises(InputError, match="a percentile must be in 0..100, got 101"):
        percentile([1.0], 101)
    with pytest.raises(InputError, match="one non-negative count per value"):
        weighted_percentile([1.0, 2.0], [1, -1], 50)
