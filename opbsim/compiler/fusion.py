"""Pass 4, fuse: a policy's own treatment of the lowered kernels, for devices whose kernels are
more than one op each (SN40L dataflow kernels).

A policy may register one ``Kernels -> Kernels`` function under its name: it may group kernels
into larger ones (each with its ``LaunchResources``), move buffers between address spaces and
share addresses between buffers of disjoint lifetimes. The instructions themselves come from the
common lowering (tile), unchanged but for their views. Policies that register nothing pass
through untouched.
"""

from __future__ import annotations

from collections.abc import Callable

from opbsim.compiler.ir import Kernels

__all__ = ["FUSERS", "register_fusion", "fuse"]

Fuser = Callable[[Kernels], Kernels]
FUSERS: dict[str, Fuser] = {}


def register_fusion(policy: str) -> Callable[[Fuser], Fuser]:
    """Register the kernel grouping of the placement policy ``policy``."""
    def add(fn: Fuser) -> Fuser:
        if policy in FUSERS:
            raise ValueError(f"fusion for policy {policy!r} registered twice")
        FUSERS[policy] = fn
        return fn
    return add


def fuse(kernels: Kernels) -> Kernels:
    fn = FUSERS.get(kernels.placement.target.policy)
    return kernels if fn is None else fn(kernels)
