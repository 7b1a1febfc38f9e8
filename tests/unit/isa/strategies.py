"""Hypothesis strategies for valid programs, covering every opcode of the table."""

from __future__ import annotations

import struct

from hypothesis import strategies as st

from opbsim.isa import TABLE, Descriptor, DType, FieldKind, Instruction, Label, Program, Space
from opbsim.isa.types import MAX_RANK

_IDENT_HEAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_IDENT_TAIL = _IDENT_HEAD + "0123456789."

identifiers = st.builds(
    lambda h, t: h + t, st.sampled_from(_IDENT_HEAD), st.text(_IDENT_TAIL, max_size=10)
)

finite_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@st.composite
def descriptors(draw, name: str) -> Descriptor:
    rank = draw(st.integers(1, MAX_RANK))
    shape = tuple(draw(st.lists(st.integers(1, 2**32 - 1), min_size=rank, max_size=rank)))
    strides = tuple(draw(st.lists(st.integers(0, 2**31 - 1), min_size=rank, max_size=rank)))
    return Descriptor(
        name=name,
        space=draw(st.sampled_from(Space)),
        base_B=draw(st.integers(0, 2**64 - 1)),
        dtype=draw(st.sampled_from(DType)),
        shape=shape,
        strides_elems=strides,
    )


@st.composite
def instructions(draw, n_desc: int, label_targets: list[int], spec=None) -> Instruction:
    spec = spec if spec is not None else draw(st.sampled_from(TABLE))
    operands = []
    for f in spec.fields:
        if f.kind is FieldKind.DESC:
            operands.append(draw(st.integers(0, n_desc - 1)))
        elif f.kind is FieldKind.LABEL:
            operands.append(draw(st.sampled_from(label_targets)))
        elif f.kind is FieldKind.F32:
            operands.append(float(draw(finite_f32)))
        else:
            operands.append(draw(st.integers(0, 2**f.width - 1)))
    return Instruction(spec.mnemonic, draw(st.sampled_from(spec.units)), tuple(operands))


@st.composite
def programs(draw) -> Program:
    names = draw(st.lists(identifiers, min_size=1 + MAX_RANK, max_size=12, unique=True))
    n_desc = draw(st.integers(1, len(names) - MAX_RANK))
    desc_names, label_names = names[:n_desc], names[n_desc:]
    n_inst = draw(st.integers(0, 12))
    label_idx = sorted(draw(st.lists(st.integers(0, n_inst), min_size=len(label_names), max_size=len(label_names))))
    labels = tuple(Label(n, i) for n, i in zip(label_names, label_idx))
    specs = TABLE if label_idx else tuple(s for s in TABLE if all(f.kind is not FieldKind.LABEL for f in s.fields))
    insts = tuple(
        draw(instructions(n_desc, label_idx, draw(st.sampled_from(specs)))) for _ in range(n_inst)
    )
    descs = tuple(draw(descriptors(n)) for n in desc_names)
    return Program(descs, insts, labels)


def f32_bits(value: float) -> int:
    return struct.unpack("<I", struct.pack("<f", value))[0]
