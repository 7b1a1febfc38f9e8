"""The ISA example (``opbsim isa --example DIR``): the embedded example program through the whole
ISA toolchain (assemble, encode, decode, disassemble, reassemble), written to a folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from opbsim.fileio import atomic_write_bytes, atomic_write_text
from opbsim.isa import assemble, decode, disassemble, encode
from opbsim.isa.summary import ProgramSummary, summarize
from opbsim.report.tables import format_table

__all__ = ["EXAMPLE", "ExampleResult", "run_example", "example_table"]

EXAMPLE = "decode_step.s"


@dataclass(frozen=True, slots=True)
class ExampleResult:
    summary: ProgramSummary
    binary_B: int
    round_trip_ok: bool
    files: tuple[Path, ...]


def run_example(out_dir: Path) -> ExampleResult:
    """Assemble the example, encode, decode, disassemble and reassemble it; write the results.

    ``round_trip_ok`` is True when the decoded program equals the assembled one and the
    disassembly reassembles to the identical binary.
    """
    source = resources.files("opbsim.examples").joinpath(EXAMPLE).read_text()
    program = assemble(source, file=EXAMPLE)
    binary = encode(program)
    decoded = decode(binary)
    listing = disassemble(decoded)
    round_trip_ok = decoded == program and encode(assemble(listing, file="disasm")) == binary
    summary = summarize(program)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = (out_dir / "program.bin", out_dir / "program.s", out_dir / "summary.json")
    atomic_write_bytes(files[0], binary)
    atomic_write_text(files[1], listing)
    atomic_write_text(files[2], json.dumps(_summary_json(summary, len(binary), round_trip_ok), indent=2) + "\n")
    return ExampleResult(summary, len(binary), round_trip_ok, files)


def _summary_json(s: ProgramSummary, binary_B: int, ok: bool) -> dict:
    return {
        "example": EXAMPLE,
        "instructions": s.instructions,
        "descriptors": s.descriptors,
        "binary_bytes": binary_B,
        "round_trip_ok": ok,
        "instructions_by_group": {g.value: n for g, n in s.by_group},
        "instructions_by_unit": {u.name.lower(): n for u, n in s.by_unit},
        "span_bytes_by_space": {sp.name.lower(): n for sp, n in s.span_B},
    }


def example_table(result: ExampleResult) -> str:
    s = result.summary
    rows = [("instructions", str(s.instructions)), ("descriptors", str(s.descriptors)),
            ("binary size", f"{result.binary_B} B")]
    rows += [(f"  group {g.value}", str(n)) for g, n in s.by_group]
    rows += [(f"  unit {u.name.lower()}", str(n)) for u, n in s.by_unit]
    rows += [(f"  {sp.name.lower()} span", f"{n / 1024:.1f} KiB") for sp, n in s.span_B]
    rows.append(("round trip (asm -> bin -> disasm -> asm)", "identical" if result.round_trip_ok else "DIFFERS"))
    files = "\n".join(f"  {p}" for p in result.files)
    return f"{format_table(('example program', 'value'), rows)}\n\nwrote:\n{files}"
