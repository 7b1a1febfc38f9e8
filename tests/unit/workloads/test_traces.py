"""Open-loop traces: Poisson and gamma arrivals, and the trace file's format and its errors."""

from pathlib import Path

import numpy as np
import pytest

from opbsim.errors import InputError
from opbsim.workloads import FixedLengths, GaussianLengths, open_loop
from opbsim.workloads.traces import gamma_trace, poisson_trace, read_trace

EXAMPLE = Path(__file__).parents[3] / "docs" / "examples" / "trace.csv"


def test_a_poisson_trace_draws_what_the_open_loop_scenario_draws():
    lengths = GaussianLengths(100.0, 20.0, 50.0, 10.0)
    trace = poisson_trace(7.0, lengths, num_requests=50, seed=4)
    scenario = open_loop(7.0, lengths, num_requests=50, seed=4)
    assert trace.arrival_s.tolist() == [r.arrival_s for r in scenario.requests]
    assert trace.input_tokens.tolist() == [r.input_tokens for r in scenario.requests]


def test_a_higher_rate_compresses_the_same_trace():
    slow = gamma_trace(2.0, 3.0, FixedLengths(8, 2), num_requests=20, seed=1)
    fast = gamma_trace(4.0, 3.0, FixedLengths(8, 2), num_requests=20, seed=1)
    assert np.allclose(fast.arrival_s * 2, slow.arrival_s, rtol=1e-12)


def test_gamma_gaps_have_the_requested_mean_and_coefficient_of_variation():
    gaps = np.diff(gamma_trace(10.0, 3.0, FixedLengths(8, 2), num_requests=200_000, seed=0).arrival_s)
    assert gaps.mean() == pytest.approx(0.1, rel=0.02)
    assert gaps.std() / gaps.mean() == pytest.approx(3.0, rel=0.05)


def test_the_example_trace_file_reads():
    trace = read_trace(EXAMPLE)
    assert len(trace) == 12 and trace.arrival_s[0] == 0.0 and trace.input_tokens[0] == 812
    assert read_trace(EXAMPLE, time_scale=0.5).arrival_s[-1] == trace.arrival_s[-1] / 2


@pytest.mark.parametrize("text, message", [
    ("", "^{p}:1: expected the header arrival_s,input_tokens,output_tokens, got ''$"),
    ("a,b,c\n1,2,3\n", "^{p}:1: expected the header arrival_s,input_tokens,output_tokens, got 'a,b,c'$"),
    ("arrival_s,input_tokens,output_tokens\n", "^{p}: no requests after the header$"),
    ("arrival_s,input_tokens,output_tokens\n0,1\n", "^{p}:2: expected 3 columns \\(arrival_s,input_tokens,"
                                                     "output_tokens\\), got 2$"),
    ("# c\narrival_s,input_tokens,output_tokens\nsoon,1,1\n", "^{p}:3: arrival_s must be a number of seconds, "
                                                             "got 'soon'$"),
    ("arrival_s,input_tokens,output_tokens\n-1,1,1\n", "^{p}:2: arrival_s must be a finite number >= 0, got '-1'$"),
    ("arrival_s,input_tokens,output_tokens\n2,1,1\n1,1,1\n", "^{p}:3: arrival_s 1 is before the previous line's 2 "
                                                             "\\(keep arrival order\\)$"),
    ("arrival_s,input_tokens,output_tokens\n0,0,1\n", "^{p}:2: input_tokens must be a positive integer, got '0'$"),
    ("arrival_s,input_tokens,output_tokens\n0,1,1.5\n", "^{p}:2: output_tokens must be a positive integer, "
                                                        "got '1.5'$"),
])
def test_a_malformed_trace_file_is_one_line_naming_the_file_and_line(tmp_path, text, message):
    p = tmp_path / "t.csv"
    p.write_text(text)
    with pytest.raises(InputError, match=message.format(p=str(p).replace(".", "\\."))):
        read_trace(p)


def test_a_trace_file_that_is_not_text_or_not_there_is_one_line(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(b"\xff\xfe")
    with pytest.raises(InputError, match="not UTF-8 text"):
        read_trace(p)
    with pytest.raises(InputError, match="No such file"):
        read_trace(tmp_path / "missing.csv")
