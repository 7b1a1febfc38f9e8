"""The compiler's intermediate forms, one per pass boundary.

analyze  -> ``Analysis``: each op with its estimates and its cost on every candidate unit
place    -> ``Placement``: each op with the unit that runs it, and why
tile     -> ``Kernels``: each op lowered to instructions over buffer views, split to fit buffers
fuse     -> ``Kernels``: the policy's grouping of kernels into launches and its memory plan, if any
schedule -> ``Schedule``: kernels in issue order with the signal/wait tokens between units
emit     -> ``Compiled``: a Program, its constant data and the op each instruction comes from
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.program import AttentionPart, Program
from opbsim.isa.spec import BY_MNEMONIC, Opcode, OpSpec
from opbsim.isa.types import Unit
from opbsim.layers.view import View
from opbsim.workloads.estimates import Estimates
from opbsim.workloads.graph import ModelGraph
from opbsim.workloads.ops import Op

__all__ = ["Target", "Source", "UnitCost", "OpAnalysis", "Analysis", "PlacedOp", "Placement", "View", "Draft",
           "LaunchResources", "Kernel", "Kernels", "Step", "Schedule", "Compiled"]


@dataclass(frozen=True, slots=True)
class Target:
    """What to compile for: a device, a placement policy by name, and the routing the MoE layers
    are specialised on (``routing[layer]``: int32 [tokens, top_k] expert ids, or None for a
    balanced assignment consistent with the graph's token counts)."""

    device: DeviceSpec
    policy: str
    routing: dict[int, np.ndarray] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Source:
    """The pipeline's input: a model graph for one stage, and the target."""

    graph: ModelGraph
    target: Target


@dataclass(frozen=True, slots=True)
class UnitCost:
    """An op's cost on one unit by the roofline of the device: launch + max(compute, memory)."""

    unit: Unit
    compute_s: float
    memory_s: float
    launch_s: float

    @property
    def bound_s(self) -> float:
        """max(compute, memory): the roofline bound, without the launch."""
        return max(self.compute_s, self.memory_s)

    @property
    def time_s(self) -> float:
        return self.launch_s + self.bound_s


@dataclass(frozen=True, slots=True)
class OpAnalysis:
    op: Op
    estimates: Estimates
    costs: tuple[UnitCost, ...]
    layer: int | None = None  # the decoder layer of ``op`` (None: the embedding, the head)

    def cost(self, unit: Unit) -> UnitCost:
        for c in self.costs:
            if c.unit is unit:
                return c
        raise KeyError(unit)

    @property
    def fastest(self) -> UnitCost:
        return min(self.costs, key=lambda c: (c.time_s, c.unit))


@dataclass(frozen=True, slots=True)
class Analysis:
    graph: ModelGraph
    target: Target
    ops: tuple[OpAnalysis, ...]


@dataclass(frozen=True, slots=True)
class PlacedOp:
    analysis: OpAnalysis
    unit: Unit
    reason: str

    @property
    def op(self) -> Op:
        return self.analysis.op


@dataclass(frozen=True, slots=True)
class Placement:
    graph: ModelGraph
    target: Target
    ops: tuple[PlacedOp, ...]

    def unit_of(self, op_name: str) -> Unit:
        for p in self.ops:
            if p.op.name == op_name:
                return p.unit
        raise KeyError(op_name)


@dataclass(frozen=True, slots=True)
class Draft:
    """An instruction before emission: operands are Views (descriptors) or immediates. ``note``
    names its op when that differs from its kernel's (a fused kernel spans several ops); ``grouped``:
    a routed expert's GEMM, part of the layer's fused-MoE (grouped GEMM) kernel; ``attention``: the
    part of an attention kernel it computes (Instruction.attention)."""

    mnemonic: str
    unit: Unit
    operands: tuple[View | int | float, ...]
    note: str = ""
    grouped: bool = False
    attention: AttentionPart | None = None

    @property
    def spec(self) -> OpSpec:
        return BY_MNEMONIC[self.mnemonic]

    @property
    def opcode(self) -> Opcode:
        return BY_MNEMONIC[self.mnemonic].opcode


@dataclass(frozen=True, slots=True)
class LaunchResources:
    """What a kernel's launch asks of its unit: pattern compute and memory units (SN40L), whether
    the on-chip orchestrator (``hw``) or the host issues it, and the devices that end it together
    (``sync``: a tensor-parallel group's sockets; 0 or 1 for none)."""

    pcus: int = 0
    pmus: int = 0
    hw: bool = False
    sync: int = 0


@dataclass(frozen=True, slots=True)
class Kernel:
    """The instructions one op lowers to, all on ``unit``; ``reads``/``writes`` name buffers.
    With ``launch`` set the kernel is always emitted as a ``launch`` carrying those resources.
    ``layer``: the decoder layer its op belongs to (None: the embedding, the head, control)."""

    op: str
    unit: Unit
    drafts: tuple[Draft, ...]
    reads: frozenset[str]
    writes: frozenset[str]
    launch: LaunchResources | None = None
    layer: int | None = None


@dataclass(frozen=True, slots=True)
class Kernels:
    placement: Placement
    kernels: tuple[Kernel, ...]
    constants: dict[str, tuple[View, np.ndarray]] = field(compare=False)
    buffers: dict[str, View] = field(compare=False)


@dataclass(frozen=True, slots=True)
class Step:
    """A kernel with the tokens it waits for before it issues and those it signals after."""

    kernel: Kernel
    waits: tuple[tuple[Unit, int], ...]  # (producer unit, token) consumed before issue
    signals: tuple[int, ...]  # tokens signalled after the kernel


@dataclass(frozen=True, slots=True)
class Schedule:
    kernels: Kernels
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class Compiled:
    """The compiler's product. ``constants`` map descriptor names to the data the program
    expects in memory before it runs (routing tables, positions); ``buffers`` map tensor names
    to their views, so a caller can load inputs and weights and read outputs;
    ``op_of[i]`` names the op instruction ``i`` comes from ("" for control); ``layer_of[i]`` is the
    decoder layer of the kernel it comes from (None: the embedding, the head, control)."""

    program: Program
    constants: dict[str, np.ndarray]
    buffers: dict[str, View]
    op_of: tuple[str, ...]
    layer_of: tuple[int | None, ...]
    placement: Placement
