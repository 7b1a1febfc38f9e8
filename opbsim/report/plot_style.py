"""What every plot of a comparison shares: one colour per run (``device_colours``, used by every
plot function), the palettes of categories (op classes, bounds, units, energy components, none of
which reuses a device colour), the subtitle and the axis-label conventions (``US`` for
microseconds, ``log_label`` for a log axis).
"""

from __future__ import annotations

import textwrap

from opbsim.isa.types import Unit
from opbsim.report.compare import Comparison, DeviceRun

__all__ = ["DEVICE_PALETTE", "US", "MISSING", "CLASS_COLOURS", "CLASS_LABEL", "BOUND_COLOURS", "BOUND_LABEL",
           "UNIT_COLOURS", "UNIT_NAME", "COMPONENT_COLOURS", "device_colours", "component_colours", "component_order",
           "subtitle", "log_label", "run_label", "short_reason", "colour_device_ticks", "cannot_run_text"]

US = "µs"
DEVICE_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
MISSING = "#555555"  # the text of a run that cannot run
CLASS_COLOURS = {"fc": "#8da0cb", "attention": "#fc8d62", "moe": "#66c2a5", "communication": "#e78ac3",
                 "other": "#b3b3b3"}
CLASS_LABEL = {"fc": "FC (projections)", "attention": "attention", "moe": "MoE (router, experts)",
               "communication": "communication", "other": "other (norms, embedding, LM head, idle)"}
BOUND_COLOURS = {"compute": "#ffd92f", "memory": "#a6d854", "communication": "#e78ac3", "idle": "#b3b3b3"}
BOUND_LABEL = {"compute": "compute-bound", "memory": "memory-bound", "communication": "communication",
               "idle": "idle (launch gaps)"}
UNIT_COLOURS = {Unit.XPU: "#252525", Unit.PIM: "#e6ab02", Unit.PCU: "#737373", Unit.PMU: "#a6761d",
                Unit.DMA: "#bdbdbd", Unit.CTRL: "#bdbdbd"}
UNIT_NAME = {Unit.XPU: "xPU", Unit.PIM: "PIM", Unit.PCU: "PCU", Unit.PMU: "PMU", Unit.DMA: "DMA", Unit.CTRL: "ctrl"}

COMPONENT_COLOURS = (  # stacking order (bottom first) and colour of each energy component
    ("static", "#b3b3b3"), ("compute", "#ffd92f"), ("dram_activation", "#8c510a"), ("dram_column", "#d8b365"),
    ("dram_datapath", "#01665e"), ("sram", "#80cdc1"), ("interconnect", "#e78ac3"),
)
_SPARE = ("#66a61e", "#7570b3", "#e7298a", "#a6761d", "#666666", "#1b9e77", "#d95f02", "#bababa", "#35978f",
          "#fddbc7", "#c7eae5", "#878787")


def device_colours(comp: Comparison) -> dict[str, str]:
    """The colour of each run (by ``DeviceRun.label``), the same in every plot."""
    return {r.label: DEVICE_PALETTE[i % len(DEVICE_PALETTE)] for i, r in enumerate(comp.runs)}


def component_order(name: str) -> tuple[int, str]:
    known = [n for n, _ in COMPONENT_COLOURS]
    return (known.index(name), name) if name in known else (len(known), name)


def component_colours(names) -> dict[str, str]:
    """A distinct colour for each energy component of ``names``: its own where it has one, else
    the next spare one."""
    fixed = dict(COMPONENT_COLOURS)
    spare = iter(_SPARE)
    out = {}
    for name in sorted(names, key=component_order):
        out[name] = fixed.get(name) or next(spare, None) or f"C{len(out) % 10}"
    return out


def subtitle(comp: Comparison) -> str:
    s = comp.settings
    lengths = f"{s.lin} in / {s.lout} out tokens"
    if s.lin_std or s.lout_std:
        lengths += f" (std {s.lin_std:g} / {s.lout_std:g})"
    plural = lambda n, word: f"{n} {word}" + ("s" if n != 1 else "")  # noqa: E731
    return (f"{comp.model.name}, {plural(s.nodes, 'node')} x {plural(s.devices_per_node, 'device')}, {lengths}, "
            f"closed loop")


def log_label(text: str) -> str:
    """The label of a log-scaled axis: ``text`` and that it is on a log scale."""
    return f"{text}, log scale"


def run_label(run: DeviceRun) -> str:
    """A run under a bar: the device, its policy below."""
    return f"{run.device}\n({run.policy})"


def short_reason(error: str, width: int = 28) -> str:
    head = error.split(";")[0].split(":")[0] if error.startswith("does not fit") else error
    return "\n".join(textwrap.wrap(head, width)[:3])


def colour_device_ticks(ax, comp: Comparison) -> None:
    """One x tick per run, labelled ``run_label`` in the run's colour."""
    colours = device_colours(comp)
    ax.set_xticks(range(len(comp.runs)), [run_label(r) for r in comp.runs])
    for tick, run in zip(ax.get_xticklabels(), comp.runs):
        tick.set_color(colours[run.label])
        tick.set_fontweight("bold")


def cannot_run_text(ax, x: float, run: DeviceRun) -> None:
    """A run that cannot run, in a bar chart: text at height zero, no bar."""
    ax.text(x, 0, "cannot run:\n" + short_reason(run.error, 16), ha="center", va="bottom", fontsize=7,
            color=MISSING, style="italic")
