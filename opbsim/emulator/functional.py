"""Functional execution: a Program's values over the address spaces of a device or a group.

Semantics (values only; the executor never counts cycles):
- Instructions run one at a time in program order, each with the arithmetic of isa/numerics.py
  (the hot ones through the compiled kernels of kernels.py, which give the same bits).
- ``signal`` and ``wait`` move no values. ``halt`` stops; so does running past the last
  instruction. ``launch`` runs its ``count`` body instructions in order, then execution goes on
  after the launch; a body holds no launch or halt, and bodies are usually placed after the
  ``halt`` so that the sequential flow does not run them a second time.
- ``execute_group`` runs the program SPMD on a group of devices in lockstep: each instruction
  on device 0, 1, ... in turn, and a collective once over all of them (collectives.py).
- Any fault (a bad operand, reading a byte never written, a view outside its space, an index
  out of range) stops execution with ExecutionError: ``instruction INDEX (TEXT): REASON``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from opbsim.emulator.collectives import GROUP_HANDLERS
from opbsim.emulator.context import OpContext
from opbsim.emulator.datamem import DataMemory
from opbsim.emulator.faults import ExecutionError, OperandError
from opbsim.emulator.ops import HANDLERS
from opbsim.errors import InputError
from opbsim.isa.asm import instruction_text as asm_text
from opbsim.isa.program import Program
from opbsim.isa.spec import Opcode
from opbsim.isa.types import OpGroup

__all__ = ["execute", "execute_group", "instruction_text", "ExecutionStats", "OpStats"]

_NOT_IN_BODY = (Opcode.LAUNCH, Opcode.HALT)


@dataclass(slots=True)
class OpStats:
    count: int = 0
    flops: int = 0
    seconds: float = 0.0


@dataclass(slots=True)
class ExecutionStats:
    """What an execution did: instructions run, work done (see ops.py for the flop measure),
    wall-clock seconds, and the same per mnemonic."""

    instructions: int = 0
    flops: int = 0
    seconds: float = 0.0
    by_mnemonic: dict[str, OpStats] = field(default_factory=dict)

    @property
    def gflops_per_s(self) -> float:
        return self.flops / self.seconds / 1e9 if self.seconds > 0 else 0.0

    def _add(self, mnemonic: str, flops: int, seconds: float) -> None:
        s = self.by_mnemonic.setdefault(mnemonic, OpStats())
        s.count += 1
        s.flops += flops
        s.seconds += seconds
        self.instructions += 1
        self.flops += flops


def instruction_text(program: Program, index: int) -> str:
    """Assembly text of instruction ``index`` (canonical form, without its note)."""
    return asm_text(program, program.instructions[index])


def execute(program: Program, memory: DataMemory) -> ExecutionStats:
    """Run ``program`` on one device's memory; collectives are refused (use execute_group)."""
    return _run(program, [memory], grouped=False)


def execute_group(program: Program, memories: Sequence[DataMemory]) -> ExecutionStats:
    """Run ``program`` SPMD on a group of devices, one DataMemory each, device 0 first."""
    if not memories:
        raise InputError("a device group needs at least one device")
    return _run(program, list(memories), grouped=True)


def _run(program: Program, memories: list[DataMemory], grouped: bool) -> ExecutionStats:
    stats = ExecutionStats()
    start = time.perf_counter()
    n = len(program.instructions)
    pc = 0
    while pc < n:
        inst = program.instructions[pc]
        op = inst.opcode
        if op is Opcode.HALT:
            stats._add(inst.mnemonic, 0, 0.0)
            break
        if op is Opcode.LAUNCH:
            body = _launch_body(program, pc)
            stats._add(inst.mnemonic, 0, 0.0)
            for j in body:
                _step(program, j, memories, grouped, stats)
        else:
            _step(program, pc, memories, grouped, stats)
        pc += 1
    stats.seconds = time.perf_counter() - start
    return stats


def _launch_body(program: Program, pc: int) -> range:
    inst = program.instructions[pc]
    first, count = int(inst["body"]), int(inst["count"])
    n = len(program.instructions)
    try:
        if count < 1 or first + count > n:
            raise OperandError(f"body {first}..{first + count - 1} is outside the program (0..{n - 1})")
        for j in range(first, first + count):
            body_inst = program.instructions[j]
            if body_inst.opcode in _NOT_IN_BODY:
                raise OperandError(f"body instruction {j} ({instruction_text(program, j)}) is a {body_inst.mnemonic}; "
                                   f"a launch body holds no launch or halt")
    except InputError as e:
        raise ExecutionError(pc, instruction_text(program, pc), str(e)) from None
    return range(first, first + count)


def _step(program: Program, index: int, memories: list[DataMemory], grouped: bool, stats: ExecutionStats) -> None:
    inst = program.instructions[index]
    m, op, group = inst.mnemonic, inst.opcode, inst.spec.group
    t0 = time.perf_counter()
    try:
        if group is OpGroup.SYNC:
            flops = 0
        elif group is OpGroup.COLLECTIVE:
            if not grouped:
                raise OperandError(f"{m} is a collective: run the program on a device group (execute_group)")
            flops = GROUP_HANDLERS[op]([OpContext(program, mem, inst) for mem in memories])
        else:
            flops = 0
            for d, mem in enumerate(memories):
                try:
                    flops += HANDLERS[op](OpContext(program, mem, inst))
                except InputError as e:
                    if len(memories) > 1:
                        raise OperandError(f"device {d}: {e}") from None
                    raise
    except InputError as e:
        raise ExecutionError(index, instruction_text(program, index), str(e)) from None
    stats._add(m, flops, time.perf_counter() - t0)
