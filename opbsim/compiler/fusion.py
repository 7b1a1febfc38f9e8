"""Pass 4, fuse: a policy's own treatment of the lowered kernels, for devices whose kernels are
more than one op each (SN40L dataflow kernels).

A policy may have one ``Kernels -> Kernels`` function under its name in ``FUSERS``: it may group kernels
into larger ones (each with its ``LaunchResources``), move buffers between address spaces and
share addresses between buffers of disjoint lifetimes. The instructions themselves come from the
common lowering (tile), unchanged but for their views. Policies without one pass through
untouched.
"""

from __future__ import annotations

from collections.abc import Callable

from opbsim.compiler.ir import Kernels
from opbsim.compiler.sn40l import FUSERS as SN40L_FUSERS

__all__ = ["FUSERS", "fuse"]

Fuser = Callable[[Kernels], Kernels]
FUSERS: dict[str, Fuser] = {**SN40L_FUSERS}
"""policy name -> its kernel grouping; policies without an entry pass through."""


def fuse(kernels: Kernels) -> Kernels:
    fn = FUSERS.get(kernels.placement.target.policy)
    return kernels if fn is None else fn(kernels)
