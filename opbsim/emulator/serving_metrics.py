"""Percentiles of serving latencies.

Every percentile here is numpy's default (``method="linear"``): for n sorted samples x_0..x_{n-1}
the q-th percentile is x_i + f (x_{i+1} - x_i) where i + f = (n - 1) q / 100. Time between tokens
is a weighted sample (each stage's duration once per decode token it emits), so it is computed
on the counts directly, with the same result as on the expanded sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from opbsim.errors import InputError

__all__ = ["percentile", "weighted_percentile"]


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float:
    """The q-th percentile (0..100) of ``values``; NaN when there are none."""
    arr = np.asarray(values, dtype=np.float64)
    _check_q(q)
    return float(np.percentile(arr, q)) if arr.size else float("nan")


def weighted_percentile(values: Sequence[float] | np.ndarray, counts: Sequence[int] | np.ndarray, q: float) -> float:
    """The q-th percentile of the sample holding ``values[i]`` ``counts[i]`` times (counts >= 0):
    equal to ``np.percentile(np.repeat(values, counts), q)`` without building that sample."""
    _check_q(q)
    v = np.asarray(values, dtype=np.float64)
    c = np.asarray(counts, dtype=np.int64)
    if v.shape != c.shape or (c < 0).any():
        raise InputError("weighted_percentile needs one non-negative count per value")
    keep = c > 0
    v, c = v[keep], c[keep]
    n = int(c.sum())
    if n == 0:
        return float("nan")
    order = np.argsort(v, kind="stable")
    v, ends = v[order], np.cumsum(c[order])
    h = (n - 1) * q / 100.0
    lo = int(np.floor(h))
    hi = min(lo + 1, n - 1)
    at = lambda i: v[int(np.searchsorted(ends, i, side="right"))]  # noqa: E731
    return float(at(lo) + (h - lo) * (at(hi) - at(lo)))


def _check_q(q: float) -> None:
    if not 0 <= q <= 100:
        raise InputError(f"a percentile must be in 0..100, got {q!r}")
