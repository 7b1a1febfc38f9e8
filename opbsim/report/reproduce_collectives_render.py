"""The collectives section of docs/validation.md and its terminal table."""

from __future__ import annotations

from pathlib import Path

from opbsim.report.reproduce_collectives import TOLERANCE, CollectiveRow, Sensitivity
from opbsim.report.tables import format_table, markdown_table
from opbsim.report.validation_page import markers
from opbsim.report.validation_page import write_section as _write_section

__all__ = ["rows_table", "section_markdown", "write_section", "BEGIN", "END"]

BEGIN, END = markers("opbsim reproduce collectives")
_HEADER = ("system", "collective", "size", "measured us", "ours us", "measured busbw GB/s", "ours busbw GB/s",
           "ours / measured", "status", "ours: algorithm")


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def _cells(r: CollectiveRow) -> tuple[str, ...]:
    m = r.measured
    name = m.collective + (f" ({m.algorithm})" if m.algorithm else "")
    return (m.system, name, _size(m.size_B), f"{m.time_us:.1f}", f"{r.ours.time_s * 1e6:.1f}",
            f"{m.busbw_GBps:.1f}", f"{r.ours_busbw_GBps:.1f}", f"{r.ratio:.2f}", "ok" if r.within else "miss",
            r.ours.name)


def rows_table(rows: tuple[CollectiveRow, ...]) -> str:
    return format_table(_HEADER, [_cells(r) for r in rows])


def write_section(path: Path, section: str) -> None:
    _write_section(path, section, BEGIN, END)


def section_markdown(rows: tuple[CollectiveRow, ...], sensitivity: tuple[Sensitivity, ...], command: str) -> str:
    ok = sum(r.within for r in rows)
    sources = sorted({r.measured.source for r in rows})
    misses = [r for r in rows if not r.within]
    parts = [
        BEGIN,
        "## Collectives (nccl-tests on 8 x H100 and 8 x A100)",
        "",
        f"Written by `{command}`; do not edit by hand. Ours is the collective model of "
        "opbsim/hardware/collectives.py with NCCL's own cost constants and the datasheet link bandwidths "
        "(opbsim/hardware/links.py, the NCCL library without the custom all-reduce, since nccl-tests runs "
        "NCCL); no constant is fitted to these measurements. Measured rows are copied from their sources "
        f"(opbsim/report/nccl_published.py). Tolerance: ours / measured bus bandwidth within "
        f"1 +- {TOLERANCE:.2f}.",
        "",
        f"**{ok} of {len(rows)} rows within tolerance.**",
        "",
        markdown_table(_HEADER, [_cells(r) for r in rows]),
        "",
    ]
    if misses:
        parts += ["### Misses and their causes", ""]
        parts += [f"- {r.measured.system} {r.measured.collective} {_size(r.measured.size_B)}: {r.cause}"
                  for r in misses]
        parts.append("")
    parts += ["### Sources", ""]
    parts += [f"- {s}" for s in sources]
    notes = sorted({f"{r.measured.source}: {r.measured.note}" for r in rows if r.measured.note})
    if notes:
        parts += ["", "Notes from the sources:", ""] + [f"- {n}" for n in notes]
    parts += [
        "", "### Sensitivity of a decode stage to the collective assumptions", "",
        "Mixtral-8x7B, 4 x h100 (tp=4), one decode stage of 64 requests at 1,536 tokens of context; the "
        "assumed terms are the custom all-reduce's launch and barrier latencies (links.py) and NCCL's latency "
        "constants.", "",
        markdown_table(("collectives", "decode stage ms", "communication share"),
                       [(s.variant, f"{s.decode_stage_ms:.3f}", f"{s.comm_share:.1%}") for s in sensitivity]),
        "", END, "",
    ]
    return "\n".join(parts)
