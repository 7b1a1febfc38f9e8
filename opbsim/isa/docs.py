"""Renderings of the ISA table: the text table of ``opbsim isa``, docs/isa.md, JSON, Verilog."""

from __future__ import annotations

import json

from opbsim.isa.encoding import MAGIC, VERSION, WORD_B
from opbsim.isa.spec import OPCODE_HI, OPCODE_LO, TABLE, UNIT_HI, UNIT_LO, Field, FieldKind, OpSpec
from opbsim.isa.types import DType, OpGroup, Space, Unit

__all__ = ["FORMATS", "render"]


def _units(spec: OpSpec) -> str:
    return ",".join(u.name.lower() for u in spec.units)


def _syntax(spec: OpSpec) -> str:
    head = spec.mnemonic if spec.unit_implied else f"{spec.mnemonic}.UNIT"
    args = [f.name if f.positional else _immediate_syntax(f) for f in spec.fields]
    return f"{head} {', '.join(args)}".rstrip()


def _immediate_syntax(f: Field) -> str:
    text = f"{f.name}={f.kind.value}"
    return f"[{text}]" if f.default is not None else text


def _field_text(f: Field) -> str:
    role = f" {f.role.value}" if f.kind is FieldKind.DESC else ""
    default = f", default {f.default}" if f.default is not None else ""
    return f"`{f.name}` [{f.hi}:{f.lo}] {f.kind.value}{role}{default}: {f.doc}"


def _text() -> str:
    rows = [("opcode", "mnemonic", "group", "units", "syntax / meaning")]
    for s in TABLE:
        rows.append((f"0x{s.opcode:02x}", s.mnemonic, s.group.value, _units(s), _syntax(s)))
        rows.append(("", "", "", "", f"  {s.doc}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows
    ) + "\n"


def _markdown() -> str:
    out = [
        "# opbsim ISA reference",
        "",
        "Generated from `opbsim/isa/spec.py` by `make docs` (`opbsim isa --format markdown`);",
        "a test fails when this page is stale. Do not edit by hand.",
        "",
        "## Encoding",
        "",
        f"Every instruction is one {WORD_B * 8}-bit word: opcode [{OPCODE_HI}:{OPCODE_LO}], "
        f"unit [{UNIT_HI}:{UNIT_LO}], operand fields below; every other bit is reserved and zero.",
        f"A binary program starts with the magic `{MAGIC.decode()}`, version {VERSION}; the "
        "layout is in `opbsim/isa/encoding.py`.",
        "",
        "| enum | codes |",
        "|---|---|",
    ]
    for enum_type in (Unit, Space, DType):
        codes = ", ".join(f"`{m.name.lower()}`={int(m)}" for m in enum_type)
        out.append(f"| {enum_type.__name__} | {codes} |")
    out += ["", "## Instructions", ""]
    for group in OpGroup:
        specs = [s for s in TABLE if s.group is group]
        if not specs:
            continue
        out += [f"### {group.value}", ""]
        for s in specs:
            out += [
                f"#### `{s.mnemonic}` (opcode 0x{s.opcode:02x}; units: {_units(s)})",
                "",
                s.doc,
                "",
                f"    {_syntax(s)}",
                "",
            ]
            out += [f"- {_field_text(f)}" for f in s.fields] or ["- no operands"]
            if s.ops_per_element:
                out.append(f"- timing and FLOP counts: {s.ops_per_element} fp32 operation"
                           f"{'s' if s.ops_per_element > 1 else ''} per element")
            out.append("")
    return "\n".join(out)


def _json() -> str:
    table = [
        {
            "mnemonic": s.mnemonic,
            "opcode": s.opcode,
            "group": s.group.value,
            "units": [u.name.lower() for u in s.units],
            "doc": s.doc,
            "ops_per_element": s.ops_per_element,
            "fields": [
                {"name": f.name, "kind": f.kind.value, "hi": f.hi, "lo": f.lo, "role": f.role.value,
                 "default": f.default, "doc": f.doc}
                for f in s.fields
            ],
        }
        for s in TABLE
    ]
    return json.dumps(table, indent=2) + "\n"


def _verilog() -> str:
    out = [
        "// opbsim ISA constants, generated from opbsim/isa/spec.py (opbsim isa --format verilog).",
        "`ifndef OPBSIM_ISA_SVH",
        "`define OPBSIM_ISA_SVH",
        f"localparam int OPBSIM_WORD_BITS = {WORD_B * 8};",
    ]
    out += [f"localparam logic [7:0] OP_{s.mnemonic.upper()} = 8'h{s.opcode:02x};" for s in TABLE]
    out += [f"localparam logic [3:0] UNIT_{u.name} = 4'd{int(u)};" for u in Unit]
    out += [f"localparam logic [7:0] DTYPE_{d.name} = 8'd{int(d)};" for d in DType]
    out += ["`endif", ""]
    return "\n".join(out)


FORMATS = {"table": _text, "markdown": _markdown, "json": _json, "verilog": _verilog}


def render(fmt: str) -> str:
    return FORMATS[fmt]()
