"""Serving scenarios: seeded, reproducible request streams with their prompt and output lengths.

Closed loop: ``concurrency`` requests are in flight; the first ``concurrency`` arrive at time 0 and
each later one arrives when a running request finishes (``arrival_s`` is None: the serving loop
admits it then). Open loop: Poisson arrivals at ``qps`` requests per second from time 0.

Reproducibility: a seed is split (numpy ``SeedSequence.spawn``) into one stream for lengths and one
for arrival times, so the same seed gives the same lengths in closed and open loop and at any qps.
Expert routing, the third ingredient of a scenario, is in routing.py.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from opbsim.errors import InputError
from opbsim.fileio import read_text

__all__ = ["Request", "Loop", "Scenario", "Lengths", "FixedLengths", "GaussianLengths", "CsvLengths",
           "closed_loop", "open_loop", "CSV_HEADER"]

CSV_HEADER = ("input_tokens", "output_tokens")


@dataclass(frozen=True, slots=True)
class Request:
    """A request of ``input_tokens`` prompt tokens that generates ``output_tokens`` tokens."""

    id: int
    input_tokens: int
    output_tokens: int
    arrival_s: float | None


class Lengths(Protocol):
    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` (input, output) token counts, each an int64 array of values >= 1."""
        ...


def _positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")


MAX_REQUESTS = 1_000_000  # a day of one busy replica; each request holds about 100 bytes of bookkeeping


def _request_count(value: object) -> None:
    _positive("num_requests", value)
    if value > MAX_REQUESTS:
        raise InputError(f"num_requests is {value}, more than the {MAX_REQUESTS:,} requests opbsim serves in one run")


def _non_negative(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise InputError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class FixedLengths:
    input_tokens: int
    output_tokens: int

    def __post_init__(self) -> None:
        _positive("input_tokens", self.input_tokens)
        _positive("output_tokens", self.output_tokens)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        return np.full(n, self.input_tokens, dtype=np.int64), np.full(n, self.output_tokens, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class GaussianLengths:
    """Lengths drawn from normal distributions (as in the Duplex paper), rounded to the nearest
    integer and clipped to 1..``max_tokens`` (no upper bound when ``max_tokens`` is 0)."""

    input_mean: float
    input_std: float
    output_mean: float
    output_std: float
    max_tokens: int = 0

    def __post_init__(self) -> None:
        for name in ("input_mean", "input_std", "output_mean", "output_std"):
            _non_negative(name, getattr(self, name))
        if self.input_mean < 1 or self.output_mean < 1:
            raise InputError("input_mean and output_mean must be >= 1")
        if self.max_tokens:
            _positive("max_tokens", self.max_tokens)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        hi = self.max_tokens or np.iinfo(np.int64).max
        draw = lambda mean, std: np.clip(np.rint(rng.normal(mean, std, n)), 1, hi).astype(np.int64)  # noqa: E731
        return draw(self.input_mean, self.input_std), draw(self.output_mean, self.output_std)


@dataclass(frozen=True, slots=True)
class CsvLengths:
    """Lengths from a CSV file with the header ``input_tokens,output_tokens`` and one request per
    row. ``replay``: take the rows in file order (wrapping around); otherwise draw rows uniformly
    with replacement."""

    rows: tuple[tuple[int, int], ...]
    replay: bool = False
    source: str = "<csv>"

    def __post_init__(self) -> None:
        if not self.rows:
            raise InputError(f"{self.source}: no rows after the header")

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, replay: bool = False) -> CsvLengths:
        return cls(_read_csv(Path(path)), replay, str(path))

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        table = np.asarray(self.rows, dtype=np.int64)
        idx = np.arange(n) % len(table) if self.replay else rng.integers(0, len(table), n)
        return table[idx, 0], table[idx, 1]


def _read_csv(path: Path) -> tuple[tuple[int, int], ...]:
    lines = read_text(path).splitlines()
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    if not numbered or tuple(c.strip() for c in numbered[0][1].split(",")) != CSV_HEADER:
        got = numbered[0][1].strip() if numbered else ""
        raise InputError(f"{path}:1: expected the header {','.join(CSV_HEADER)}, got {got!r}")
    rows = []
    for n, line in numbered[1:]:
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != 2:
            raise InputError(f"{path}:{n}: expected 2 columns, got {len(cells)}")
        for name, cell in zip(CSV_HEADER, cells):
            if not cell.isdigit() or int(cell) < 1:
                raise InputError(f"{path}:{n}: {name} must be a positive integer, got {cell!r}")
        rows.append((int(cells[0]), int(cells[1])))
    return tuple(rows)


class Loop(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"


@dataclass(frozen=True, slots=True)
class Scenario:
    """A finite request stream. ``concurrency`` is set for a closed loop, ``qps`` for an open loop."""

    loop: Loop
    requests: tuple[Request, ...]
    seed: int
    concurrency: int = 0
    qps: float = 0.0

    @property
    def total_output_tokens(self) -> int:
        return sum(r.output_tokens for r in self.requests)


def _lengths_and_arrival_rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be an integer >= 0, got {seed!r}")
    lengths_seq, arrivals_seq = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(lengths_seq), np.random.default_rng(arrivals_seq)


def closed_loop(concurrency: int, lengths: Lengths, *, num_requests: int, seed: int) -> Scenario:
    """``num_requests`` requests, ``concurrency`` of them in flight at any time."""
    _positive("concurrency", concurrency)
    _request_count(num_requests)
    rng, _ = _lengths_and_arrival_rngs(seed)
    inputs, outputs = lengths.sample(rng, num_requests)
    requests = tuple(Request(i, int(inputs[i]), int(outputs[i]), 0.0 if i < concurrency else None)
                     for i in range(num_requests))
    return Scenario(Loop.CLOSED, requests, seed, concurrency=concurrency)


def open_loop(qps: float, lengths: Lengths, *, num_requests: int, seed: int) -> Scenario:
    """``num_requests`` Poisson arrivals at ``qps`` per second: exponential gaps of mean 1/qps, the
    first arrival one gap after time 0."""
    if isinstance(qps, bool) or not isinstance(qps, (int, float)) or not 0 < qps < float("inf"):
        raise InputError(f"qps must be a positive finite number, got {qps!r}")
    _request_count(num_requests)
    rng, arrivals_rng = _lengths_and_arrival_rngs(seed)
    inputs, outputs = lengths.sample(rng, num_requests)
    arrivals = np.cumsum(arrivals_rng.exponential(1.0 / qps, num_requests))
    requests = tuple(Request(i, int(inputs[i]), int(outputs[i]), float(arrivals[i])) for i in range(num_requests))
    return Scenario(Loop.OPEN, requests, seed, qps=float(qps))
