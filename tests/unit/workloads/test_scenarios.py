"""Request streams and length distributions: seeded, reproducible, validated."""

import numpy as np
import pytest

from opbsim.errors import InputError
from opbsim.workloads import CsvLengths, FixedLengths, GaussianLengths, Loop, closed_loop, open_loop


def test_a_closed_loop_starts_concurrency_requests_at_zero_and_admits_the_rest_as_slots_free():
    s = closed_loop(4, FixedLengths(256, 128), num_requests=10, seed=0)
    assert s.loop is Loop.CLOSED and s.concurrency == 4
    assert [r.arrival_s for r in s.requests] == [0.0] * 4 + [None] * 6
    assert {(r.input_tokens, r.output_tokens) for r in s.requests} == {(256, 128)}
    assert s.total_output_tokens == 10 * 128


def test_an_open_loop_has_poisson_arrivals_at_the_requested_rate():
    qps, n = 20.0, 20000
    s = open_loop(qps, FixedLengths(16, 16), num_requests=n, seed=1)
    arrivals = np.array([r.arrival_s for r in s.requests])
    gaps = np.diff(np.concatenate([[0.0], arrivals]))
    assert (gaps > 0).all()
    assert gaps.mean() == pytest.approx(1 / qps, rel=0.03)  # exponential gaps of mean 1/qps
    assert gaps.std() == pytest.approx(1 / qps, rel=0.05)  # an exponential's std equals its mean
    assert arrivals[-1] == pytest.approx(n / qps, rel=0.03)


def test_the_same_seed_gives_the_same_requests_and_lengths_do_not_depend_on_the_loop_or_rate():
    lengths = GaussianLengths(1024, 256, 512, 128)
    a = open_loop(5, lengths, num_requests=50, seed=42)
    assert a == open_loop(5, lengths, num_requests=50, seed=42)
    b = open_loop(50, lengths, num_requests=50, seed=42)
    c = closed_loop(8, lengths, num_requests=50, seed=42)
    sizes = lambda s: [(r.input_tokens, r.output_tokens) for r in s.requests]  # noqa: E731
    assert sizes(a) == sizes(b) == sizes(c)
    assert sizes(a) != sizes(open_loop(5, lengths, num_requests=50, seed=43))
    assert [r.arrival_s for r in a.requests] != [r.arrival_s for r in b.requests]


def test_gaussian_lengths_have_the_requested_mean_and_spread_and_are_at_least_one():
    rng = np.random.default_rng(0)
    inputs, outputs = GaussianLengths(2048, 512, 256, 64).sample(rng, 20000)
    assert inputs.mean() == pytest.approx(2048, rel=0.01) and inputs.std() == pytest.approx(512, rel=0.03)
    assert outputs.mean() == pytest.approx(256, rel=0.01)
    small, _ = GaussianLengths(2, 10, 1, 0).sample(rng, 1000)
    assert small.min() == 1  # clipped, never 0 or negative


def test_gaussian_lengths_respect_a_maximum():
    inputs, outputs = GaussianLengths(4096, 2048, 4096, 2048, max_tokens=4096).sample(np.random.default_rng(1), 500)
    assert inputs.max() == 4096 and outputs.max() == 4096


def test_csv_lengths_are_drawn_from_the_rows_or_replayed_in_order(tmp_path):
    path = tmp_path / "lengths.csv"
    path.write_text("input_tokens,output_tokens\n100,10\n200,20\n\n300,30\n")
    replay = CsvLengths.from_file(path, replay=True)
    inputs, outputs = replay.sample(np.random.default_rng(0), 5)
    assert inputs.tolist() == [100, 200, 300, 100, 200] and outputs.tolist() == [10, 20, 30, 10, 20]
    drawn, _ = CsvLengths.from_file(path).sample(np.random.default_rng(0), 3000)
    assert set(drawn.tolist()) == {100, 200, 300}
    assert np.bincount(drawn // 100)[1:] / 3000 == pytest.approx([1 / 3] * 3, abs=0.03)


@pytest.mark.parametrize("text, message", [
    ("in,out\n1,2\n", "1: expected the header input_tokens,output_tokens, got 'in,out'"),
    ("", "1: expected the header input_tokens,output_tokens, got ''"),
    ("input_tokens,output_tokens\n", "no rows after the header"),
    ("input_tokens,output_tokens\n5\n", "2: expected 2 columns, got 1"),
    ("input_tokens,output_tokens\n5,x\n", "2: output_tokens must be a positive integer, got 'x'"),
    ("input_tokens,output_tokens\n1,1\n0,4\n", "3: input_tokens must be a positive integer, got '0'"),
])
def test_a_bad_lengths_csv_names_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "l.csv"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        CsvLengths.from_file(path)
    sep = ":" if message[0].isdigit() else ": "
    assert str(err.value) == f"{path}{sep}{message}"


ONE = FixedLengths(1, 1)


@pytest.mark.parametrize("make, message", [
    (lambda: closed_loop(0, ONE, num_requests=1, seed=0), "concurrency must be a positive integer, got 0"),
    (lambda: open_loop(0, ONE, num_requests=1, seed=0), "qps must be a positive finite number, got 0"),
    (lambda: open_loop(1.0, ONE, num_requests=0, seed=0), "num_requests must be a positive integer, got 0"),
    (lambda: closed_loop(1, ONE, num_requests=1, seed=-1), "seed must be an integer >= 0, got -1"),
    (lambda: FixedLengths(0, 1), "input_tokens must be a positive integer, got 0"),
    (lambda: GaussianLengths(100, -1, 10, 1), "input_std must be a finite number >= 0, got -1"),
    (lambda: GaussianLengths(0.5, 1, 10, 1), "input_mean and output_mean must be >= 1"),
])
def test_bad_scenario_parameters_are_rejected_with_exact_messages(make, message):
    with pytest.raises(InputError) as err:
        make()
    assert str(err.value) == message
