"""Plain-text tables for the terminal."""

from __future__ import annotations

from opbsim.emulator.engine import RunStats
from opbsim.hardware.spec import DeviceSpec

__all__ = ["format_table", "markdown_table", "timing_table", "devices_table"]


def format_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Left-aligned text columns; numbers should arrive already formatted."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(header), line, *map(fmt, rows)])


def markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A Markdown table; a ``|`` inside a cell is escaped."""
    esc = lambda c: c.replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def timing_table(stats: RunStats) -> str:
    rows = [("time", f"{stats.time_s * 1e6:.3f} us"), ("energy", f"{stats.energy_J * 1e6:.3f} uJ"),
            ("FLOPs", f"{stats.flops:.4g}")]
    rows += [(f"  {u.name.lower()} busy", f"{busy * 1e6:.3f} us ({stats.utilisation(u):.0%})")
             for u, busy in stats.busy_s_by_unit]
    rows += [(f"  {sp.name.lower()} traffic", f"{n / 2**20:.3f} MiB") for sp, n in stats.bytes_by_space]
    rows += [(f"  {g.value} energy", f"{e * 1e6:.3f} uJ") for g, e in stats.energy_J_by_group]
    rows += [(f"  {k} energy", f"{e * 1e6:.3f} uJ") for k, e in stats.energy.items().items() if e]
    return format_table((f"on {stats.device}", "value"), rows)


def devices_table(specs: list[DeviceSpec]) -> str:
    rows = []
    for d in specs:
        units = ", ".join(f"{u.unit.name.lower()} {u.matrix_TFLOPS:.4g}/{u.vector_TFLOPS:.4g}" for u in d.units
                          if u.matrix_TFLOPS)
        memory = ", ".join(f"{m.space.name.lower()} {m.capacity_B / 2**30:.4g}" for m in d.memories
                           if m.capacity_B >= 2**30)
        bw = ", ".join(f"{c.name} {c.bw_GBps:.6g}" for c in d.channels)
        rows.append((d.name, units, memory, bw, f"{d.link_GBps:.4g}", d.source))
    return format_table(("device", "matrix/vector TFLOPS", "memory GiB", "channels GB/s", "link GB/s", "source"),
                        rows) + "\nEvery field with its unit: opbsim devices show NAME"
