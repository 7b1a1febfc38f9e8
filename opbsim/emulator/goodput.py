"""SLO goodput: the largest request rate at which a serving run still meets its latency targets,
found by bracketing and bisection.

``bracket(meets, start_per_s)`` assumes ``meets(rate)`` is monotone: true up to an unknown rate
R and false above it (queueing makes latency grow with the rate). It doubles or halves from
``start_per_s`` until it holds a passing rate ``lo`` and a failing rate ``hi``, then bisects until
``hi - lo <= rel_tol * hi``. Contract (property-tested with a synthetic monotone latency curve):
``meets(lo)`` (or ``lo == 0`` when even ``start / 2**max_halvings`` fails), ``not meets(hi)``
(or ``hi`` is infinite when ``start * 2**max_doublings`` still passes), and R lies in [lo, hi].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from opbsim.errors import InputError

__all__ = ["Goodput", "bracket"]


@dataclass(frozen=True, slots=True)
class Goodput:
    """``lo_per_s`` passes, ``hi_per_s`` fails; ``runs`` lists every (rate per s, passed) tried, in order."""

    lo_per_s: float
    hi_per_s: float
    runs: tuple[tuple[float, bool], ...]


def bracket(meets: Callable[[float], bool], start_per_s: float, *, rel_tol: float = 0.02,
            max_doublings: int = 20, max_halvings: int = 20) -> Goodput:
    if not (math.isfinite(start_per_s) and start_per_s > 0):
        raise InputError(f"the starting rate must be a positive number, got {start_per_s!r}")
    if not 0 < rel_tol < 1:
        raise InputError(f"the relative tolerance must be in (0, 1), got {rel_tol!r}")
    runs: list[tuple[float, bool]] = []

    def probe(rate: float) -> bool:
        ok = bool(meets(rate))
        runs.append((rate, ok))
        return ok

    if probe(start_per_s):
        lo, hi = start_per_s, math.inf
        for _ in range(max_doublings):
            if not probe(lo * 2):
                hi = lo * 2
                break
            lo *= 2
        if math.isinf(hi):
            return Goodput(lo, hi, tuple(runs))
    else:
        lo, hi = 0.0, start_per_s
        for _ in range(max_halvings):
            if probe(hi / 2):
                lo = hi / 2
                break
            hi /= 2
        if lo == 0.0:
            return Goodput(lo, hi, tuple(runs))
    while hi - lo > rel_tol * hi:
        mid = (lo + hi) / 2
        if probe(mid):
            lo = mid
        else:
            hi = mid
    return Goodput(lo, hi, tuple(runs))
