"""Pass 5, emit: the Program. Each kernel of one instruction is issued directly; a kernel of
several is a ``launch`` of its body, placed after the ``halt``. Views become descriptors, shared
when equal; every instruction's note names the op it comes from."""

from __future__ import annotations

import numpy as np

from opbsim.compiler.ir import Compiled, Draft, Schedule, View
from opbsim.isa.program import Instruction, Label, Program
from opbsim.isa.types import Descriptor, Unit

__all__ = ["emit"]


class _Descriptors:
    def __init__(self) -> None:
        self.table: list[Descriptor] = []
        self.index: dict[tuple, int] = {}
        self.count: dict[str, int] = {}

    def of(self, view: View) -> int:
        key = view.key
        if key not in self.index:
            n = self.count.get(view.buffer, 0)
            self.count[view.buffer] = n + 1
            name = view.buffer if n == 0 else f"{view.buffer}.v{n}"
            self.index[key] = len(self.table)
            self.table.append(Descriptor(name, view.space, view.base_B, view.dtype, view.shape, view.strides))
        return self.index[key]


def _instruction(d: Draft, descs: _Descriptors, note: str) -> Instruction:
    ops = tuple(descs.of(v) if isinstance(v, View) else v for v in d.operands)
    return Instruction(d.mnemonic, d.unit, ops, d.note or note, grouped=d.grouped, attention=d.attention)


def emit(sched: Schedule) -> Compiled:
    descs = _Descriptors()
    main: list[Instruction] = []
    main_layers: list[int | None] = []  # the kernel layer of each instruction of main
    bodies: list[tuple[int, list[Instruction], int | None]] = []  # (index of its launch in main, body, layer)
    for step in sched.steps:
        k = step.kernel
        before = len(main)
        main.extend(Instruction("wait", k.unit, (token,), k.op) for _, token in step.waits)
        body = [_instruction(d, descs, k.op) for d in k.drafts]
        res = k.launch
        if len(body) == 1 and res is None:
            main.append(body[0])
        elif body:
            bodies.append((len(main), body, k.layer))
            args = (res.pcus, res.pmus, int(res.hw), res.sync) if res is not None else (0, 0, 0, 0)
            main.append(Instruction("launch", k.unit, (0, len(body), *args), k.op))
        main.extend(Instruction("signal", k.unit, (t,), k.op) for t in step.signals)
        main_layers.extend([k.layer] * (len(main) - before))
    main.append(Instruction("halt", Unit.CTRL, (), ""))
    main_layers.append(None)
    labels, program_body, layers = [], list(main), list(main_layers)
    for n, (at, body, layer) in enumerate(bodies):
        start = len(program_body)
        labels.append(Label(f"k{n}", start))
        launch = main[at]
        program_body[at] = Instruction("launch", launch.unit, (start, *launch.operands[1:]), launch.note)
        program_body.extend(body)
        layers.extend([layer] * len(body))
    program = Program(tuple(descs.table), tuple(program_body), tuple(labels))
    kernels = sched.kernels
    return Compiled(
        program=program,
        constants={name: np.asarray(data) for name, (_, data) in kernels.constants.items()},
        buffers=dict(kernels.buffers),
        op_of=tuple(i.note for i in program.instructions),
        layer_of=tuple(layers),
        placement=kernels.placement,
    )
