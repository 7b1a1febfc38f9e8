"""Op-level plots of a device comparison: the roofline with each op placed by its policy, and the
timeline of one decoder layer on the engine (xPU vs PIM co-processing).

Roofline, per device: for every compute unit with an HBM path, attainable FLOP/s =
min(peak, Op/B x bandwidth of that path) (solid: matrix peak; dashed: vector peak). Each op of
the layer sits on the roofline of the unit its policy placed it on, at its own Op/B (compulsory
traffic, ``Estimates.op_per_B``), coloured by that unit and shaped by op class. Ops without
FLOPs (copies, KV stores, dispatch) and collectives have no place on a roofline and are counted
in a note instead.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.types import Space, Unit
from opbsim.report.compare import FUSED, Comparison, DeviceRun, OpPoint
from opbsim.report.plots_serving import CLASS_COLOURS, subtitle

__all__ = ["plot_roofline", "plot_timeline", "unit_ceiling"]

UNIT_COLOURS = {Unit.XPU: "#1f77b4", Unit.PIM: "#d62728", Unit.PCU: "#2ca02c", Unit.PMU: "#8c564b",
                Unit.DMA: "#7f7f7f", Unit.CTRL: "#7f7f7f"}
_UNIT_NAME = {Unit.XPU: "xPU", Unit.PIM: "PIM", Unit.PCU: "PCU", Unit.PMU: "PMU", Unit.DMA: "DMA",
              Unit.CTRL: "ctrl"}
_TIMELINE_COLOURS = {**CLASS_COLOURS, FUSED: "#8dd3c7"}
_MARKERS = {"fc": "o", "attention": "s", "moe": "^", "communication": "D", "other": "v"}


def unit_ceiling(device: DeviceSpec, unit: Unit) -> tuple[float, float, float] | None:
    """(matrix FLOP/s, vector FLOP/s, HBM bytes/s) of ``unit``, or None when it has no compute
    or no path to HBM. The bandwidth is the narrowest channel of the path."""
    try:
        spec = device.compute(unit)
        path = device.path(unit, Space.HBM)
    except Exception:
        return None
    if spec.matrix_TFLOPS <= 0 and spec.vector_TFLOPS <= 0:
        return None
    bw = min(device.channel_bw_GBps(c) for c in path.channels) * 1e9
    return spec.matrix_TFLOPS * 1e12, spec.vector_TFLOPS * 1e12, bw


def _attainable(device: DeviceSpec, p: OpPoint) -> float | None:
    ceil = unit_ceiling(device, p.unit)
    if ceil is None or p.flops == 0 or not math.isfinite(p.op_per_B) or p.op_per_B <= 0:
        return None
    peak = ceil[0] if p.matrix and ceil[0] > 0 else ceil[1]
    return min(peak, p.op_per_B * ceil[2])


def _roofline_axes(ax, run: DeviceRun) -> None:
    device = run.spec
    xs = np.logspace(-1, 4, 200)
    units = [u.unit for u in device.units if unit_ceiling(device, u.unit) is not None]
    for unit in units:
        matrix, vector, bw = unit_ceiling(device, unit)
        colour = UNIT_COLOURS[unit]
        if matrix > 0:
            ax.plot(xs, np.minimum(matrix, xs * bw), color=colour, lw=1.5,
                    label=f"{_UNIT_NAME[unit]}: {matrix / 1e12:.4g} TFLOP/s, {bw / 1e12:.3g} TB/s, "
                          f"ridge {matrix / bw:.0f} FLOP/B")
        if vector > 0:
            ax.plot(xs, np.minimum(vector, xs * bw), color=colour, lw=1, ls="--")
    hidden = 0
    groups: dict[tuple[Unit, str], list[tuple[float, float]]] = {}
    for p in run.roofline:
        y = _attainable(device, p)
        if y is None:
            hidden += 1
            continue
        ax.plot(p.op_per_B, y, _MARKERS.get(p.op_class, "o"), color=UNIT_COLOURS[p.unit], ms=8, mec="black", mew=0.6,
                alpha=0.85)
        family = _family(p) if p.matrix else "vector ops"
        groups.setdefault((p.unit, family), []).append((p.op_per_B, y))
    units_with_points = sorted({u for u, _ in groups})
    for unit in units_with_points:
        above = units_with_points.index(unit) % 2 == 1  # a second unit's labels go above-left of its points
        for x, y, label in _labels({f: pts for (u, f), pts in groups.items() if u is unit}):
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(-7, 6) if above else (7, -10),
                        ha="right" if above else "left", fontsize=7, color=UNIT_COLOURS[unit])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(0.1, 1e4)
    ax.set_ylim(1e10, 3e15)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("arithmetic intensity (FLOP per byte of HBM traffic)")
    ax.set_ylabel("attainable FLOP/s")
    ax.set_title(f"{run.device} ({run.policy})", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    if hidden:
        ax.text(0.02, 0.98, f"{hidden} ops without FLOPs or off-HBM\n(copies, KV store, collectives) not shown",
                transform=ax.transAxes, va="top", fontsize=7, color="#555555")


def _labels(families: dict[str, list[tuple[float, float]]]) -> list[tuple[float, float, str]]:
    """One label per cluster of op families whose leftmost points lie within 25% in Op/B:
    ``"expert x6"``, ``"qkv_proj, o_proj"``; vector ops as one ``"vector ops (norm, rope, ...)"``."""
    firsts = sorted((min(pts), f, len(pts)) for f, pts in families.items())
    out: list[tuple[float, float, str]] = []
    for (x, y), family, n in firsts:
        name = "vector ops (norms, rope, top-k, combine)" if family == "vector ops" else \
            (f"{family} x{n}" if n > 1 else family)
        if out and family != "vector ops" and "vector ops" not in out[-1][2] and x <= out[-1][0] * 1.25:
            px, py, prev = out[-1]
            out[-1] = (px, py, f"{prev}, {name}")
        else:
            out.append((x, y, name))
    return out


def _family(p: OpPoint) -> str:
    """The op's name without its layer prefix and expert index: ``expert``, ``qkv_proj``."""
    name = p.name.split(".", 1)[-1]
    head, _, tail = name.rpartition(".")
    return head if head and tail.isdigit() else name


def _grid(n: int) -> tuple[int, int]:
    cols = 1 if n == 1 else 2
    return math.ceil(n / cols), cols


def _not_run(ax, run: DeviceRun, what: str) -> None:
    ax.set_axis_off()
    ax.set_title(f"{run.device} ({run.policy})", fontsize=9)
    reason = run.error or what
    ax.text(0.5, 0.5, "cannot run:\n" + "\n".join(textwrap.wrap(reason, 55)[:5]),
            ha="center", va="center", fontsize=8, transform=ax.transAxes,
            bbox={"facecolor": "#eeeeee", "edgecolor": "#888888", "hatch": "//"})


def plot_roofline(comp: Comparison) -> Figure:
    """One roofline panel per device; every op of the roofline layer placed by its policy."""
    rows, cols = _grid(len(comp.runs))
    fig = Figure(figsize=(6.5 * cols, 4.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, run in zip(axes, comp.runs):
        if run.roofline:
            _roofline_axes(ax, run)
        else:
            _not_run(ax, run, run.roofline_stage)
    for ax in axes[len(comp.runs):]:
        ax.set_axis_off()
    markers = [Line2D([], [], marker=m, ls="", color="#555555", label=c) for c, m in _MARKERS.items()]
    stage = next((r.roofline_stage for r in comp.runs if r.roofline), "")
    fig.legend(handles=markers, title="op class (marker)", loc="outside right center", fontsize=8)
    fig.suptitle(f"Roofline, each op on the unit its policy placed it on (colour = unit; dashed = vector peak)\n"
                 f"{subtitle(comp)}; {stage}", fontsize=10)
    return fig


def _timeline_axes(ax, run: DeviceRun) -> None:
    stats = run.timeline
    units = sorted({iv.unit for iv in stats.timeline if iv.unit is not Unit.CTRL and iv.end_s > iv.start_s})
    rows = {u: i for i, u in enumerate(reversed(units))}
    for cls, colour in _TIMELINE_COLOURS.items():
        for unit in units:
            spans = [(iv.start_s * 1e6, (iv.end_s - iv.start_s) * 1e6) for iv in stats.timeline
                     if iv.unit is unit and iv.end_s > iv.start_s
                     and run.timeline_classes.get(iv.index, "other") == cls]
            if spans:
                ax.broken_barh(spans, (rows[unit] - 0.38, 0.76), facecolors=colour, linewidth=0)
    ax.set_yticks(list(rows.values()), [_UNIT_NAME[u] for u in rows])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlim(0, stats.time_s * 1e6 * 1.01)
    ax.set_xlabel("time (us)")
    ax.set_ylabel("unit")
    busy = ", ".join(f"{_UNIT_NAME[u]} {stats.utilisation(u):.0%}" for u in units)
    ax.set_title(f"{run.device} ({run.policy}): {stats.time_s * 1e6:.0f} us; busy {busy}", fontsize=9)
    ax.grid(True, axis="x", alpha=0.3)


def plot_timeline(comp: Comparison) -> Figure:
    """One Gantt panel per device: each unit's instructions of the timeline layer, by op class."""
    n = len(comp.runs)
    fig = Figure(figsize=(10, 1.3 + 1.5 * n), layout="constrained")
    axes = fig.subplots(n, 1, squeeze=False).ravel()
    for ax, run in zip(axes, comp.runs):
        if run.timeline is not None:
            _timeline_axes(ax, run)
        else:
            _not_run(ax, run, run.timeline_stage)
    present = {c for r in comp.runs for c in r.timeline_classes.values()}
    handles = [Line2D([], [], color=c, lw=8, label=k) for k, c in _TIMELINE_COLOURS.items()
               if k in CLASS_COLOURS or k in present]
    fig.legend(handles=handles, title="op class", loc="outside right center", fontsize=8)
    stage = next((r.timeline_stage for r in comp.runs if r.timeline is not None), "")
    fig.suptitle(f"Timeline of one decoder layer on the engine: xPU vs PIM co-processing\n{subtitle(comp)}\n{stage}",
                 fontsize=10)
    return fig
