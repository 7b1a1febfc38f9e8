"""The demo: the embedded example program through the whole ISA toolchain, into a report folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from opbsim.fileio import atomic_write_bytes, atomic_write_text
from opbsim.isa import assemble, decode, disassemble, encode
from opbsim.isa.summary import ProgramSummary, summarize

__all__ = ["EXAMPLE", "DemoResult", "run_demo"]

EXAMPLE = "decode_step.s"


@dataclass(frozen=True, slots=True)
class DemoResult:
    summary: ProgramSummary
    binary_B: int
    round_trip_ok: bool
    files: tuple[Path, ...]


def run_demo(out_dir: Path) -> DemoResult:
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
    return DemoResult(summary, len(binary), round_trip_ok, files)


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
