"""SLO goodput by bracketing and bisection, against synthetic monotone latency curves."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opbsim.emulator.goodput import bracket
from opbsim.errors import InputError


def latency_ms(rate: float, capacity: float, base_ms: float) -> float:
    """An M/M/1-like curve: base / (1 - rate / capacity), infinite at and past capacity."""
    return base_ms / (1 - rate / capacity) if rate < capacity else math.inf


@settings(max_examples=200, deadline=None)
@given(capacity=st.floats(0.01, 1e5), base_ms=st.floats(1.0, 100.0), slack=st.floats(1.01, 50.0),
       start=st.floats(0.001, 1e4), tol=st.floats(0.001, 0.2))
def test_bisection_brackets_the_largest_rate_that_meets_the_slo(capacity, base_ms, slack, start, tol):
    slo_ms = base_ms * slack
    answer = capacity * (1 - 1 / slack)  # latency_ms(answer) == slo_ms
    found = bracket(lambda r: latency_ms(r, capacity, base_ms) <= slo_ms, start, rel_tol=tol,
                    max_doublings=40, max_halvings=40)
    assert latency_ms(found.lo_per_s, capacity, base_ms) <= slo_ms
    assert latency_ms(found.hi_per_s, capacity, base_ms) > slo_ms
    assert found.lo_per_s <= answer * (1 + 1e-9) and found.hi_per_s >= answer * (1 - 1e-9)
    assert found.hi_per_s - found.lo_per_s <= tol * found.hi_per_s
    assert [r for r, ok in found.runs if ok][-1] == found.lo_per_s


def test_a_slo_no_rate_meets_gives_zero_and_one_every_rate_meets_gives_infinity():
    never = bracket(lambda r: False, 1.0, max_halvings=5)
    assert never.lo_per_s == 0.0 and never.hi_per_s == 1.0 / 32
    always = bracket(lambda r: True, 1.0, max_doublings=5)
    assert always.lo_per_s == 32.0 and math.isinf(always.hi_per_s)


@pytest.mark.parametrize("start, tol, message", [
    (0.0, 0.02, "^the starting rate must be a positive number, got 0.0$"),
    (1.0, 1.0, "^the relative tolerance must be in \\(0, 1\\), got 1.0$"),
])
def test_bad_bisection_parameters_are_one_line(start, tol, message):
    with pytest.raises(InputError, match=message):
        bracket(lambda r: True, start, rel_tol=tol)
