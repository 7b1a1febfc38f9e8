"""Open-loop request traces for a cluster of replicas: arrays of arrival times and lengths.

A trace is three equal-length arrays in arrival order: ``arrival_s`` (seconds from time 0,
non-decreasing), ``input_tokens`` and ``output_tokens`` (>= 1). Arrays instead of ``Request``
objects keep a million requests at about 24 MB and let a trace be split over processes cheaply.

Sources:
- ``poisson_trace``: exponential gaps of mean 1/qps (the same draws as ``scenarios.open_loop``, so
  the same seed gives the same lengths and arrival times);
- ``gamma_trace``: gamma-distributed gaps of mean 1/qps and coefficient of variation ``cv``
  (cv = 1 is Poisson; cv > 1 is bursty: many short gaps and a few long ones);
- ``read_trace``: a CSV file (format in docs/serving.md, example docs/examples/trace.csv).

Scaling: for a fixed seed, the arrival times of both generators are a fixed draw divided by qps,
so a higher rate compresses the same trace (what the goodput search relies on).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from opbsim.errors import InputError
from opbsim.fileio import read_text
from opbsim.workloads.scenarios import MAX_REQUESTS, Lengths, Scenario

__all__ = ["Trace", "poisson_trace", "gamma_trace", "read_trace", "TRACE_HEADER", "trace_of_scenario"]

TRACE_HEADER = ("arrival_s", "input_tokens", "output_tokens")


@dataclass(frozen=True, slots=True, eq=False)
class Trace:
    """Requests in arrival order; request i arrives at ``arrival_s[i]``."""

    arrival_s: np.ndarray  # float64, non-decreasing, >= 0
    input_tokens: np.ndarray  # int64 >= 1
    output_tokens: np.ndarray  # int64 >= 1
    source: str = "<trace>"

    def __post_init__(self) -> None:
        n = len(self.arrival_s)
        if n == 0:
            raise InputError(f"{self.source}: no requests")
        if n > MAX_REQUESTS:
            raise InputError(f"{self.source}: {n} requests, more than the {MAX_REQUESTS:,} opbsim serves in one run")
        if len(self.input_tokens) != n or len(self.output_tokens) != n:
            raise InputError(f"{self.source}: arrival times and lengths differ in number")

    def __len__(self) -> int:
        return len(self.arrival_s)

    def prefix(self, n: int) -> Trace:
        """The first ``n`` requests."""
        return Trace(self.arrival_s[:n], self.input_tokens[:n], self.output_tokens[:n], self.source)

    def take(self, idx: np.ndarray) -> Trace:
        """The requests at indices ``idx`` (ascending), in that order."""
        return Trace(self.arrival_s[idx], self.input_tokens[idx], self.output_tokens[idx], self.source)

    @property
    def longest_context_tokens(self) -> int:
        return int((self.input_tokens + self.output_tokens).max())


def _rate(qps: float) -> None:
    if isinstance(qps, bool) or not isinstance(qps, (int, float)) or not 0 < qps < float("inf"):
        raise InputError(f"qps must be a positive finite number, got {qps!r}")


def _count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_REQUESTS:
        raise InputError(f"num_requests must be an integer in 1..{MAX_REQUESTS:,}, got {n!r}")


def _rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be an integer >= 0, got {seed!r}")
    lengths_seq, arrivals_seq = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(lengths_seq), np.random.default_rng(arrivals_seq)


def poisson_trace(qps: float, lengths: Lengths, *, num_requests: int, seed: int) -> Trace:
    """``num_requests`` Poisson arrivals at ``qps`` per second, the first one gap after time 0."""
    _rate(qps)
    _count(num_requests)
    rng, arrivals = _rngs(seed)
    inp, out = lengths.sample(rng, num_requests)
    return Trace(np.cumsum(arrivals.exponential(1.0 / qps, num_requests)), inp, out, f"poisson:{qps:g}")


def gamma_trace(qps: float, cv: float, lengths: Lengths, *, num_requests: int, seed: int) -> Trace:
    """Gamma gaps of mean 1/qps and coefficient of variation ``cv`` (shape 1/cv^2)."""
    _rate(qps)
    _count(num_requests)
    if isinstance(cv, bool) or not isinstance(cv, (int, float)) or not 0 < cv < 100:
        raise InputError(f"the burstiness (coefficient of variation) must be in (0, 100), got {cv!r}")
    rng, arrivals = _rngs(seed)
    inp, out = lengths.sample(rng, num_requests)
    shape = 1.0 / (cv * cv)
    gaps = arrivals.gamma(shape, 1.0, num_requests) / shape / qps
    return Trace(np.cumsum(gaps), inp, out, f"gamma:{cv:g}@{qps:g}")


def trace_of_scenario(scenario: Scenario) -> Trace:
    """An open-loop scenario's requests as a trace."""
    if any(r.arrival_s is None for r in scenario.requests):
        raise InputError("a trace needs an open-loop scenario (every request with an arrival time)")
    reqs = scenario.requests
    return Trace(np.fromiter((r.arrival_s for r in reqs), np.float64, len(reqs)),
                 np.fromiter((r.input_tokens for r in reqs), np.int64, len(reqs)),
                 np.fromiter((r.output_tokens for r in reqs), np.int64, len(reqs)), "scenario")


def read_trace(path: str | os.PathLike, *, time_scale: float = 1.0) -> Trace:
    """A trace file: a header ``arrival_s,input_tokens,output_tokens`` and one request per line;
    blank lines and lines starting with ``#`` are skipped. Arrival times are seconds >= 0 in
    non-decreasing order; lengths are positive integers. ``time_scale`` multiplies every arrival
    time (0.5 replays the trace at twice the rate). Any problem is an ``InputError`` naming the
    file and line."""
    p = Path(path)
    text = read_text(p)
    rows = [(n, line) for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]
    if not rows or tuple(c.strip() for c in rows[0][1].split(",")) != TRACE_HEADER:
        n, got = rows[0] if rows else (1, "")
        raise InputError(f"{p}:{n}: expected the header {','.join(TRACE_HEADER)}, got {got.strip()!r}")
    if len(rows) - 1 > MAX_REQUESTS:
        raise InputError(f"{p}: {len(rows) - 1} requests, more than the {MAX_REQUESTS:,} opbsim serves in one run")
    arrival = np.empty(len(rows) - 1, np.float64)
    inp = np.empty(len(rows) - 1, np.int64)
    out = np.empty(len(rows) - 1, np.int64)
    last = 0.0
    for i, (n, line) in enumerate(rows[1:]):
        cells = line.split(",")
        if len(cells) != 3:
            raise InputError(f"{p}:{n}: expected 3 columns ({','.join(TRACE_HEADER)}), got {len(cells)}")
        arrival[i] = last = _arrival(p, n, cells[0].strip(), last)
        inp[i] = _length(p, n, "input_tokens", cells[1].strip())
        out[i] = _length(p, n, "output_tokens", cells[2].strip())
    if len(arrival) == 0:
        raise InputError(f"{p}: no requests after the header")
    return Trace(arrival * time_scale, inp, out, str(p))


def _arrival(p: Path, n: int, cell: str, last: float) -> float:
    try:
        t = float(cell)
    except ValueError:
        raise InputError(f"{p}:{n}: arrival_s must be a number of seconds, got {cell!r}") from None
    if not 0 <= t < float("inf"):
        raise InputError(f"{p}:{n}: arrival_s must be a finite number >= 0, got {cell!r}")
    if t < last:
        raise InputError(f"{p}:{n}: arrival_s {cell} is before the previous line's {last:g} (keep arrival order)")
    return t


def _length(p: Path, n: int, name: str, cell: str) -> int:
    if not cell.isdigit() or int(cell) < 1:
        raise InputError(f"{p}:{n}: {name} must be a positive integer, got {cell!r}")
    return int(cell)
