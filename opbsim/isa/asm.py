"""Text assembly <-> Program, driven by the ISA table.

Syntax, one statement per line; ``;`` or ``#`` starts a comment:

    .desc NAME SPACE BASE DTYPE [D0, D1, ...] [strides=[S0, S1, ...]]
    LABEL:                                   (alone, or before an instruction)
    MNEMONIC[.UNIT] DESC_OR_LABEL, ..., name=value, ...

The ``.unit`` suffix is required when more than one unit can execute the instruction. Descriptor
operands and label operands are positional, in table order; immediates are ``name=value`` in any
order and may be omitted when the table gives a default. F32 immediates round to the nearest
binary32 value. A comment after an instruction becomes its note. Descriptors are declared before
use; labels may be referenced before they are defined.

``disassemble`` prints the canonical form, and ``assemble(disassemble(p)) == p`` for every Program.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass

import numpy as np

from opbsim.errors import AsmError, ProgramError
from opbsim.isa.program import Instruction, Label, Program
from opbsim.isa.spec import BY_MNEMONIC, FieldKind, OpSpec
from opbsim.isa.types import Descriptor, DType, Space, Unit, row_major_strides

__all__ = ["assemble", "disassemble", "format_f32", "instruction_text"]

_TOKEN = re.compile(
    r"""(?P<ws>[ \t]+)
      | (?P<num>[+-]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))
      | (?P<ident>\.?[A-Za-z_][A-Za-z0-9_.]*)
      | (?P<punct>[\[\],=:])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # "num", "ident", "punct", "end"
    text: str
    col: int  # 1-based


class _Line:
    """The tokens of one source line, with error reporting at a column."""

    def __init__(self, text: str, file: str, lineno: int):
        self.file, self.lineno = file, lineno
        self.toks: list[_Tok] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise self.error(f"unexpected character {text[pos]!r}", pos + 1)
            if m.lastgroup != "ws":
                self.toks.append(_Tok(m.lastgroup or "", m.group(), pos + 1))
            pos = m.end()
        self.toks.append(_Tok("end", "end of line", len(text) + 1))
        self.i = 0

    def error(self, message: str, col: int) -> AsmError:
        return AsmError(message, file=self.file, line=self.lineno, column=col)

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def expect(self, kind: str, what: str, text: str | None = None) -> _Tok:
        tok = self.peek()
        if tok.kind != kind or (text is not None and tok.text != text):
            raise self.error(f"expected {what}, found {_show(tok)}", tok.col)
        return self.next()

    def accept(self, text: str) -> bool:
        if self.peek().kind == "punct" and self.peek().text == text:
            self.next()
            return True
        return False

    def uint(self, what: str, limit: int) -> int:
        tok = self.expect("num", what)
        value = _parse_int(tok.text)
        if value is None or not 0 <= value < limit:
            raise self.error(f"expected {what} in 0..{limit - 1}, found {_q(tok.text)}", tok.col)
        return value

    def int_list(self, what: str, limit: int) -> tuple[int, ...]:
        self.expect("punct", f"'[' opening the {what}", "[")
        values = [self.uint(f"a {what} entry", limit)]
        while self.accept(","):
            values.append(self.uint(f"a {what} entry", limit))
        self.expect("punct", f"',' or ']' in the {what}", "]")
        return tuple(values)

    def end(self) -> None:
        tok = self.peek()
        if tok.kind != "end":
            raise self.error(f"expected end of line, found {_show(tok)}", tok.col)


_ECHO_CHARS = 40  # an error message quotes at most this much of an offending token


def _clip(text: str) -> str:
    """``text`` cut to ``_ECHO_CHARS`` characters for an error message."""
    return text if len(text) <= _ECHO_CHARS else text[:_ECHO_CHARS - 3] + "..."


def _q(text: str) -> str:
    return repr(_clip(text))


def _show(tok: _Tok) -> str:
    return "end of line" if tok.kind == "end" else _q(tok.text)


def _parse_int(text: str) -> int | None:
    if text.startswith(("+", "-")):
        return None
    try:
        return int(text, 16) if text[:2].lower() == "0x" else int(text, 10)
    except ValueError:
        return None


def _round_f32(value: float) -> float | None:
    """Nearest binary32 value, or None when it overflows."""
    try:
        return struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        return None


def format_f32(value: float) -> str:
    """The shortest decimal that reads back as the same binary32 value."""
    return str(np.float32(value))


def _enum_by_name(enum_type, text: str):
    return enum_type.__members__.get(text.upper()) if text.islower() else None


def _names(enum_type) -> str:
    return "|".join(m.name.lower() for m in enum_type)


class _Assembler:
    def __init__(self, file: str):
        self.file = file
        self.descriptors: list[Descriptor] = []
        self.desc_index: dict[str, int] = {}
        self.instructions: list[Instruction] = []
        self.labels: list[Label] = []
        self.label_index: dict[str, int] = {}
        self.label_refs: list[tuple[int, int, str, _Line, _Tok]] = []  # inst, operand, name, where

    def line(self, raw: str, lineno: int) -> None:
        code, note = _split_comment(raw)
        ln = _Line(code, self.file, lineno)
        tok = ln.peek()
        if tok.kind == "ident" and len(ln.toks) > 1 and ln.toks[1].kind == "punct" and ln.toks[1].text == ":":  # label
            self.define_label(ln, ln.next())
            ln.next()
            tok = ln.peek()
        if tok.kind == "end":
            return
        if tok.kind == "ident" and tok.text == ".desc":
            ln.next()
            self.declare(ln)
        elif tok.kind == "ident" and not tok.text.startswith("."):
            self.instruction(ln, note)
        else:
            raise ln.error(f"expected a mnemonic, a label or .desc, found {_show(tok)}", tok.col)

    def define_label(self, ln: _Line, tok: _Tok) -> None:
        if tok.text in self.label_index or tok.text in self.desc_index:
            raise ln.error(f"{_q(tok.text)} is already defined", tok.col)
        self.label_index[tok.text] = len(self.instructions)
        self.labels.append(Label(tok.text, len(self.instructions)))

    def declare(self, ln: _Line) -> None:
        name = ln.expect("ident", "a descriptor name")
        if name.text in self.desc_index or name.text in self.label_index:
            raise ln.error(f"{_q(name.text)} is already defined", name.col)
        space_tok = ln.expect("ident", f"an address space ({_names(Space)})")
        space = _enum_by_name(Space, space_tok.text)
        if space is None:
            raise ln.error(f"expected an address space ({_names(Space)}), found {_q(space_tok.text)}", space_tok.col)
        base = ln.uint("a base address in bytes", 2**64)
        dtype_tok = ln.expect("ident", f"a dtype ({_names(DType)})")
        dtype = _enum_by_name(DType, dtype_tok.text)
        if dtype is None:
            raise ln.error(f"expected a dtype ({_names(DType)}), found {_q(dtype_tok.text)}", dtype_tok.col)
        shape_col = ln.peek().col
        shape = ln.int_list("shape", 2**32)
        strides = row_major_strides(shape)
        if ln.peek().kind == "ident":
            ln.expect("ident", "'strides'", "strides")
            ln.expect("punct", "'=' after strides", "=")
            strides = ln.int_list("strides", 2**31)
        ln.end()
        try:
            desc = Descriptor(name.text, space, base, dtype, shape, strides)
        except ProgramError as e:
            raise ln.error(str(e), shape_col) from None
        self.desc_index[name.text] = len(self.descriptors)
        self.descriptors.append(desc)

    def instruction(self, ln: _Line, note: str) -> None:
        head = ln.next()
        mnemonic, _, unit_text = head.text.partition(".")
        spec = BY_MNEMONIC.get(mnemonic)
        if spec is None:
            raise ln.error(f"unknown mnemonic {_q(mnemonic)}", head.col)
        unit = self.unit(ln, head, spec, unit_text)
        operands: list[int | float | None] = [None] * len(spec.fields)
        positional = [i for i, f in enumerate(spec.fields) if f.positional]
        for n, i in enumerate(positional):
            if n:
                ln.expect("punct", f"',' before operand {spec.fields[i].name}", ",")
            operands[i] = self.reference(ln, spec, i)
        seen: set[str] = set()
        while ln.peek().kind != "end":
            if positional or seen:
                ln.expect("punct", "',' or end of line", ",")
            self.immediate(ln, spec, operands, seen)
        for i, f in enumerate(spec.fields):
            if operands[i] is None:
                if f.default is None:
                    raise ln.error(f"{spec.mnemonic} needs {f.name}=...", ln.peek().col)
                operands[i] = float(f.default) if f.kind is FieldKind.F32 else int(f.default)
        self.instructions.append(Instruction(spec.mnemonic, unit, tuple(operands), note))

    def unit(self, ln: _Line, head: _Tok, spec: OpSpec, unit_text: str) -> Unit:
        choices = "|".join(f"{spec.mnemonic}.{u.name.lower()}" for u in spec.units)
        if not unit_text:
            if spec.unit_implied:
                return spec.units[0]
            raise ln.error(f"{spec.mnemonic} needs a unit suffix: {choices}", head.col)
        unit = _enum_by_name(Unit, unit_text)
        if unit is None or unit not in spec.units:
            col = head.col + len(spec.mnemonic) + 1
            raise ln.error(f"expected {choices}, found {_q(head.text)}", col)
        return unit

    def reference(self, ln: _Line, spec: OpSpec, i: int) -> int:
        f = spec.fields[i]
        what = "a descriptor name" if f.kind is FieldKind.DESC else "a label"
        tok = ln.expect("ident", f"{what} for {spec.mnemonic} operand {f.name}")
        if f.kind is FieldKind.DESC:
            if tok.text not in self.desc_index:
                raise ln.error(f"unknown descriptor {_q(tok.text)}", tok.col)
            return self.desc_index[tok.text]
        self.label_refs.append((len(self.instructions), i, tok.text, ln, tok))
        return 0

    def immediate(self, ln: _Line, spec: OpSpec, operands: list, seen: set[str]) -> None:
        key = ln.expect("ident", f"an immediate name=value for {spec.mnemonic}")
        fields = {f.name: (i, f) for i, f in enumerate(spec.fields) if not f.positional}
        if key.text not in fields:
            expected = ", ".join(fields) or "none"
            raise ln.error(f"{spec.mnemonic} has no immediate {_q(key.text)} (immediates: {expected})", key.col)
        if key.text in seen:
            raise ln.error(f"{key.text} given twice", key.col)
        seen.add(key.text)
        ln.expect("punct", f"'=' after {key.text}", "=")
        i, f = fields[key.text]
        if f.kind is FieldKind.F32:
            tok = ln.expect("num", f"a number for {f.name}")
            try:
                value = _round_f32(float(int(tok.text, 16)) if "x" in tok.text.lower() else float(tok.text))
            except OverflowError:
                value = None
            if value is None or not math.isfinite(value):
                raise ln.error(f"{f.name}={_clip(tok.text)} does not fit a finite binary32", tok.col)
            operands[i] = value
        else:
            operands[i] = ln.uint(f"{f.name} (a {f.width}-bit unsigned integer)", 2**f.width)

    def finish(self) -> Program:
        instructions = self.instructions
        for inst_i, op_i, name, ln, tok in self.label_refs:
            if name not in self.label_index:
                raise ln.error(f"undefined label {_q(name)}", tok.col)
            inst = instructions[inst_i]
            ops = list(inst.operands)
            ops[op_i] = self.label_index[name]
            instructions[inst_i] = Instruction(inst.mnemonic, inst.unit, tuple(ops), inst.note)
        try:
            return Program(tuple(self.descriptors), tuple(instructions), tuple(self.labels))
        except ProgramError as e:
            raise AsmError(str(e), file=self.file) from None


def _split_comment(raw: str) -> tuple[str, str]:
    cut = min((i for i in (raw.find(";"), raw.find("#")) if i >= 0), default=-1)
    if cut < 0:
        return raw.rstrip("\r\n"), ""
    return raw[:cut], raw[cut + 1:].strip()


def assemble(text: str, file: str = "<input>") -> Program:
    """Assemble source text; errors are AsmError at file:line:column."""
    asm = _Assembler(file)
    for lineno, raw in enumerate(text.splitlines(), start=1):
        asm.line(raw, lineno)
    return asm.finish()


def disassemble(program: Program) -> str:
    """Canonical assembly text of ``program``."""
    lines = [
        f"; opbsim program: {len(program.descriptors)} descriptors, "
        f"{len(program.instructions)} instructions"
    ]
    width = max((len(d.name) for d in program.descriptors), default=0)
    for d in program.descriptors:
        text = (
            f".desc {d.name:<{width}}  {d.space.name.lower():<6} {d.base_B:#012x}  "
            f"{d.dtype.name.lower():<4} [{', '.join(map(str, d.shape))}]"
        )
        if not d.is_contiguous:
            text += f"  strides=[{', '.join(map(str, d.strides_elems))}]"
        lines.append(text)
    by_index: dict[int, list[str]] = {}
    for lb in program.labels:
        by_index.setdefault(lb.index, []).append(lb.name)
    for i, inst in enumerate(program.instructions):
        lines.extend(f"{name}:" for name in by_index.get(i, ()))
        lines.append("    " + _format_instruction(program, inst))
    lines.extend(f"{name}:" for name in by_index.get(len(program.instructions), ()))
    return "\n".join(lines) + "\n"


def _parts(program: Program, inst: Instruction) -> tuple[str, str]:
    """(mnemonic with its unit suffix, the operands as written)."""
    spec = inst.spec
    head = spec.mnemonic if spec.unit_implied else f"{spec.mnemonic}.{inst.unit.name.lower()}"
    args = []
    for f, v in zip(spec.fields, inst.operands):
        if f.kind is FieldKind.DESC:
            args.append(program.descriptors[int(v)].name)
        elif f.kind is FieldKind.LABEL:
            args.append(next((lb.name for lb in program.labels if lb.index == v), str(v)))
        elif f.kind is FieldKind.F32:
            args.append(f"{f.name}={format_f32(float(v))}")
        else:
            args.append(f"{f.name}={int(v)}")
    return head, ", ".join(args)


def instruction_text(program: Program, inst: Instruction) -> str:
    """The canonical assembly of one instruction of ``program``, single-spaced, without its note."""
    head, args = _parts(program, inst)
    return f"{head} {args}" if args else head


def _format_instruction(program: Program, inst: Instruction) -> str:
    head, args = _parts(program, inst)
    text = f"{head:<15} {args}" if args else head  # at least one space after a 16-character head
    note = " ".join(inst.note.split())
    return f"{text:<48}; {note}" if note else text
