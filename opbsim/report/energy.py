"""Energy by hardware component: where the joules of a program, and of a serving run, go.

The engine (emulator/engine.py) charges each instruction ``flops x flop_energy_pJ`` plus, for every
address space it touches, ``bytes x energy_pJ_per_B`` of the path from its unit to that space, and
reports the sum by instruction group. This module splits the same sum by component instead:
``compute`` (every FLOP) and one entry per (space, unit) path that moved bytes, e.g. ``HBM via
xPU`` and ``HBM via PIM`` (the same DRAM costs less read from the logic die). The parts of a
program add up to ``RunStats.energy_J`` (tested).

A serving run's energy (``ServingResult.energy_J``) is the sum over its stages of each stage
shape's cost times the stages of that shape. ``RecordingTimer`` remembers the shapes a run costs
and how often; ``serving_energy_by_component`` splits each shape's energy in the proportions of
that shape's own components (the prologue/epilogue and one decoder layer per layer kind, compiled
as the stage timer compiles them) and sums, so the parts add up to the run's energy exactly.
"""

from __future__ import annotations

from collections.abc import Iterator

from opbsim.compiler import compile_graph
from opbsim.emulator.stage_timer import StageCost, StageTimer
from opbsim.emulator.work import work_of
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.program import Instruction, Program
from opbsim.isa.types import Space, Unit
from opbsim.workloads.stage import PrefillChunk, Stage

__all__ = ["COMPUTE", "component_name", "energy_J_by_component", "RecordingTimer", "serving_energy_by_component"]

COMPUTE = "compute (MACs, vector ops)"
_UNIT = {Unit.XPU: "xPU", Unit.PIM: "PIM", Unit.PCU: "PCU", Unit.PMU: "PMU", Unit.DMA: "DMA", Unit.CTRL: "ctrl"}
_SPACE = {Space.HBM: "HBM", Space.DDR: "DDR", Space.SRAM: "SRAM", Space.PIMBUF: "PIM buffers",
          Space.HOST: "host memory"}


def component_name(space: Space, unit: Unit) -> str:
    """``"HBM via xPU"``: bytes ``unit`` moved to or from ``space``."""
    return f"{_SPACE[space]} via {_UNIT[unit]}"


def _stream(program: Program) -> Iterator[Instruction]:
    """The instructions the engine runs: up to the first halt, each launch followed by its body."""
    for inst in program.instructions:
        if inst.mnemonic == "halt":
            return
        yield inst
        if inst.mnemonic == "launch":
            start, count = int(inst["body"]), int(inst["count"])
            yield from program.instructions[start:start + count]


def energy_J_by_component(program: Program, device: DeviceSpec) -> dict[str, float]:
    """Joules of one run of ``program`` on ``device`` by component (zero parts left out)."""
    out: dict[str, float] = {}
    for inst in _stream(program):
        work = work_of(program, inst)
        flops = work.matrix_flops + work.vector_flops
        if flops:
            out[COMPUTE] = out.get(COMPUTE, 0.0) + flops * device.flop_energy_pJ * 1e-12
        for space, n in work.bytes_by_space:
            joules = n * device.path(inst.unit, space).energy_pJ_per_B * 1e-12
            if joules:
                key = component_name(space, inst.unit)
                out[key] = out.get(key, 0.0) + joules
    return out


class RecordingTimer(StageTimer):
    """A StageTimer that remembers every stage shape it costs and how many times (``shapes``:
    representative stage -> [cost, count]); ``forget`` clears the counts, not the memo."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.shapes: dict[Stage, list] = {}

    def forget(self) -> None:
        self.shapes = {}

    def cost(self, stage: Stage) -> StageCost:
        cost = super().cost(stage)
        self._note(self.bucketing.stage(stage), cost)
        return cost

    def cost_of(self, prefill: tuple[PrefillChunk, ...], decode_count: int, decode_ctx_sum: int) -> StageCost:
        cost = super().cost_of(prefill, decode_count, decode_ctx_sum)
        self._note(self.bucketing.representative(prefill, decode_count, decode_ctx_sum), cost)
        return cost

    def _note(self, key: Stage, cost: StageCost) -> None:
        seen = self.shapes.get(key)
        if seen is None:
            self.shapes[key] = [cost, 1]
        else:
            seen[1] += 1


def _shape_components(timer: StageTimer, stage: Stage) -> dict[str, float]:
    """One device's energy of ``stage`` by component over the graphs the timer runs for it
    (``StageTimer.parts``)."""
    cluster = timer.cluster
    out: dict[str, float] = {}
    for graph, times in timer.parts(stage):
        compiled = compile_graph(graph, cluster.fabric_device, cluster.policy)
        for key, joules in energy_J_by_component(compiled.program, cluster.fabric_device).items():
            out[key] = out.get(key, 0.0) + joules * times
    return out


def serving_energy_by_component(timer: RecordingTimer, output_tokens: int) -> dict[str, float]:
    """Millijoules per output token by component over the shapes ``timer`` recorded; the parts
    sum to the run's energy per token. Shapes whose components cannot be computed (a routing the
    decomposition does not model) keep their energy under ``"unattributed"``."""
    totals: dict[str, float] = {}
    for stage, (cost, count) in timer.shapes.items():
        energy_J = cost.energy_J * count
        try:
            parts = _shape_components(timer, stage)
        except Exception:  # the split is a report, never a reason to fail the run
            parts = {}
        whole = sum(parts.values())
        if whole <= 0:
            totals["unattributed"] = totals.get("unattributed", 0.0) + energy_J
            continue
        for key, joules in parts.items():
            totals[key] = totals.get(key, 0.0) + energy_J * joules / whole
    return {k: v / output_tokens * 1e3 for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}
