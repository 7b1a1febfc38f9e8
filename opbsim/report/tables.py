"""Plain-text tables for the terminal."""

from __future__ import annotations

from opbsim.report.demo import DemoResult

__all__ = ["format_table", "demo_table"]


def format_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Left-aligned text columns; numbers should arrive already formatted."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(header), line, *map(fmt, rows)])


def demo_table(result: DemoResult) -> str:
    s = result.summary
    rows = [("instructions", str(s.instructions)), ("descriptors", str(s.descriptors)),
            ("binary size", f"{result.binary_B} B")]
    rows += [(f"  group {g.value}", str(n)) for g, n in s.by_group]
    rows += [(f"  unit {u.name.lower()}", str(n)) for u, n in s.by_unit]
    rows += [(f"  {sp.name.lower()} span", f"{n / 1024:.1f} KiB") for sp, n in s.span_B]
    rows.append(("round trip (asm -> bin -> disasm -> asm)", "identical" if result.round_trip_ok else "DIFFERS"))
    files = "\n".join(f"  {p}" for p in result.files)
    return f"{format_table(('example program', 'value'), rows)}\n\nwrote:\n{files}"
