"""Instructions and programs, validated against the ISA table on construction."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

from opbsim.errors import ProgramError
from opbsim.isa.spec import BY_MNEMONIC, FieldKind, Opcode, OpSpec
from opbsim.isa.types import Descriptor, Unit, is_identifier

__all__ = ["Operand", "AttentionPart", "Instruction", "Label", "Program", "f32_exact"]

Operand = int | float


def f32_exact(value: float) -> bool:
    """True when ``value`` is finite and exactly representable as IEEE-754 binary32."""
    if not math.isfinite(value):
        return False
    try:
        return struct.unpack("<f", struct.pack("<f", value))[0] == value
    except OverflowError:
        return False


@dataclass(frozen=True, slots=True)
class AttentionPart:
    """What an instruction of an attention kernel computes, for the timing models: ``phase``
    "prefill" (a causal chunk of ``new_tokens`` queries after ``past_tokens`` cached keys) or
    "decode" (one query of a request whose context is ``past_tokens + new_tokens``); ``on_chip``:
    the operand fields a fused attention kernel (FlashAttention) keeps on chip, its scores and
    probabilities; ``span``: a prefill chunk's sliding window (or, ``chunked``, its chunk length,
    the keys read starting at a chunk boundary) that masks more than causality does (0: none)."""

    phase: str
    new_tokens: int
    past_tokens: int
    on_chip: tuple[str, ...] = ()
    span: int = 0
    chunked: bool = False

    def __post_init__(self) -> None:
        if self.phase not in ("prefill", "decode"):
            raise ProgramError(f"attention phase must be prefill or decode, got {self.phase!r}")
        if self.new_tokens < 1 or self.past_tokens < 0:
            raise ProgramError(f"attention part: {self.new_tokens} new and {self.past_tokens} past tokens")

    @property
    def context_tokens(self) -> int:
        return self.past_tokens + self.new_tokens

    @property
    def unmasked_share(self) -> float:
        """The share of the (query, key) pairs a causal chunk attends to: each of ``new`` queries
        sees the past keys and the new ones up to itself, with a ``span`` only those of its window
        or chunk (1 for decode)."""
        if self.phase == "decode":
            return 1.0
        n, p, w = self.new_tokens, self.past_tokens, self.span
        if not w:
            return (n * p + n * (n + 1) / 2) / (n * (n + p))
        return (_keys_seen(p + n, w, self.chunked) - _keys_seen(p, w, self.chunked)) / (n * (n + p))


def _keys_seen(queries: int, span: int, chunked: bool) -> int:
    """Keys seen by the queries at key columns 0..queries-1 together: min(q + 1, span) each in a
    sliding window, q mod span + 1 each in chunks of span."""
    if chunked:
        full, rest = divmod(queries, span)
        return full * span * (span + 1) // 2 + rest * (rest + 1) // 2
    ramp = min(queries, span)
    return ramp * (ramp + 1) // 2 + (queries - ramp) * span


@dataclass(frozen=True, slots=True)
class Instruction:
    """One instruction: a mnemonic, the unit it is issued to, and operands in table order.

    Descriptor operands are descriptor-table indices, label operands instruction indices, F32
    operands Python floats exactly representable in binary32. ``note`` is free text (the op an
    instruction was compiled from); it is printed as a comment and not part of equality.
    ``grouped``: a GEMM that is one expert's part of a fused-MoE (grouped GEMM) kernel, which a
    device's kernel model may time differently; ``attention``: the part of an attention kernel an
    instruction computes (its GEMMs and softmax), likewise; neither is encoded nor part of equality.
    """

    mnemonic: str
    unit: Unit
    operands: tuple[Operand, ...]
    note: str = field(default="", compare=False)
    grouped: bool = field(default=False, compare=False)
    attention: AttentionPart | None = field(default=None, compare=False)

    @property
    def spec(self) -> OpSpec:
        return BY_MNEMONIC[self.mnemonic]

    @property
    def opcode(self) -> Opcode:
        """What the instruction is, for dispatch (``inst.opcode is Opcode.LAUNCH``); ``mnemonic``
        is its assembly spelling."""
        return BY_MNEMONIC[self.mnemonic].opcode

    def __getitem__(self, name: str) -> Operand:
        for f, v in zip(self.spec.fields, self.operands):
            if f.name == name:
                return v
        raise KeyError(f"{self.mnemonic} has no operand {name!r}")

    def check(self, n_descriptors: int, n_instructions: int) -> None:
        """Raise ProgramError unless the instruction is well formed for such a program."""
        spec = BY_MNEMONIC.get(self.mnemonic)
        if spec is None:
            raise ProgramError(f"unknown mnemonic {self.mnemonic!r}")
        if self.unit not in spec.units:
            allowed = ", ".join(u.name.lower() for u in spec.units)
            raise ProgramError(
                f"{self.mnemonic} cannot run on unit {self.unit.name.lower()} (allowed: {allowed})"
            )
        if len(self.operands) != len(spec.fields):
            raise ProgramError(
                f"{self.mnemonic} takes {len(spec.fields)} operands, got {len(self.operands)}"
            )
        for f, v in zip(spec.fields, self.operands):
            where = f"{self.mnemonic} operand {f.name}"
            if f.kind is FieldKind.F32:
                if not isinstance(v, float) or not f32_exact(v):
                    raise ProgramError(f"{where}: {v!r} is not a finite binary32 value")
                continue
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**f.width:
                raise ProgramError(f"{where}: {v!r} is not an integer in 0..{2**f.width - 1}")
            if f.kind is FieldKind.DESC and v >= n_descriptors:
                raise ProgramError(f"{where}: descriptor {v} does not exist")
            if f.kind is FieldKind.LABEL and v > n_instructions:
                raise ProgramError(f"{where}: instruction {v} is past the end of the program")


@dataclass(frozen=True, slots=True)
class Label:
    """A name for instruction index ``index`` (``index == len(instructions)`` marks the end).

    A program's labels are in instruction order; every label operand targets a labelled index.
    """

    name: str
    index: int


@dataclass(frozen=True, slots=True)
class Program:
    """A descriptor table, an instruction stream and named instruction positions.

    Invariants (checked on construction): descriptor and label names are unique identifiers,
    every operand fits its field and names an existing descriptor or instruction position.
    """

    descriptors: tuple[Descriptor, ...]
    instructions: tuple[Instruction, ...]
    labels: tuple[Label, ...] = ()

    def __post_init__(self) -> None:
        names = [d.name for d in self.descriptors]
        if len(set(names)) != len(names):
            raise ProgramError(f"duplicate descriptor name {_first_duplicate(names)!r}")
        label_names = [lb.name for lb in self.labels]
        if len(set(label_names)) != len(label_names):
            raise ProgramError(f"duplicate label {_first_duplicate(label_names)!r}")
        clash = set(names) & set(label_names)
        if clash:
            raise ProgramError(f"{sorted(clash)[0]!r} names both a descriptor and a label")
        previous = 0
        for lb in self.labels:
            if not is_identifier(lb.name):
                raise ProgramError(f"label name {lb.name!r} is not an identifier")
            if not previous <= lb.index <= len(self.instructions):
                raise ProgramError(f"label {lb.name} is out of order or outside the program")
            previous = lb.index
        labelled = {lb.index for lb in self.labels}
        for i, inst in enumerate(self.instructions):
            try:
                inst.check(len(self.descriptors), len(self.instructions))
                for f, v in zip(inst.spec.fields, inst.operands):
                    if f.kind is FieldKind.LABEL and v not in labelled:
                        raise ProgramError(f"operand {f.name}: no label at instruction {v}")
            except ProgramError as e:
                raise ProgramError(f"instruction {i}: {e}") from None

    def descriptor(self, name: str) -> Descriptor:
        for d in self.descriptors:
            if d.name == name:
                return d
        raise KeyError(name)

    def operand_descriptor(self, inst: Instruction, field_name: str) -> Descriptor:
        return self.descriptors[int(inst[field_name])]


def _first_duplicate(items: list[str]) -> str:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    raise ValueError("no duplicate")
