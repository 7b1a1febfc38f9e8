"""The compiler: one list of named pure passes. Any pass's output can be dumped."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from opbsim.compiler.analyze import analyze
from opbsim.compiler.emit import emit
from opbsim.compiler.fusion import fuse
from opbsim.compiler.ir import Compiled, Source, Target
from opbsim.compiler.lower import tile
from opbsim.compiler.policies import place
from opbsim.compiler.schedule import schedule
from opbsim.errors import InputError
from opbsim.hardware.spec import DeviceSpec
from opbsim.workloads.features import check_lowerable
from opbsim.workloads.graph import ModelGraph

__all__ = ["PASSES", "PASS_NAMES", "compile_graph", "run_passes"]

PASSES: tuple[tuple[str, Callable], ...] = (
    ("analyze", analyze),
    ("place", place),
    ("tile", tile),
    ("fuse", fuse),
    ("schedule", schedule),
    ("emit", emit),
)
PASS_NAMES = tuple(name for name, _ in PASSES)


def run_passes(source: Source, until: str = PASS_NAMES[-1]):
    """The intermediate form after pass ``until``. A model with a feature the layer definitions do
    not cover (workloads/features.py) is refused before the ``tile`` pass (analysis and placement
    read only the graph's estimates, which cover every feature)."""
    if until not in PASS_NAMES:
        raise InputError(f"unknown pass {until!r} (passes: {', '.join(PASS_NAMES)})")
    ir = source
    for name, fn in PASSES:
        if name == "tile":
            check_lowerable(source.graph.model)
        ir = fn(ir)
        if name == until:
            break
    return ir


def compile_graph(graph: ModelGraph, device: DeviceSpec, policy: str,
                  routing: dict[int, np.ndarray] | None = None) -> Compiled:
    """Compile one stage of ``graph`` for ``device`` with the placement ``policy``."""
    return run_passes(Source(graph, Target(device, policy, routing)))
