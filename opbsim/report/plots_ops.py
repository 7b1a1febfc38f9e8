"""Op-level plots of a device comparison: the roofline with each op at the FLOP/s it attained on
the engine, and the timelines of one decoder layer (decode-only and mixed stage).

Roofline, one panel per run (as many panels as runs, each framed and titled in the run's
colour): for every compute unit with an HBM path, attainable FLOP/s = min(peak, Op/B x bandwidth of
that path) (solid: matrix peak; dashed: vector peak), in the unit's colour. Each op of the
decode-only layer sits at its Op/B (compulsory traffic, ``Estimates.op_per_B``) and its attained
FLOP/s, its FLOPs over its time on the engine (compare_layer.py), with a dotted line up to the roof
of its unit at that Op/B: the gap is what the engine charges beyond the roofline bound. Marker
shape: op class; a dataflow kernel fusing several ops is one star. Ops without FLOPs or engine
time of their own (copies, KV stores, dispatch, collectives) are counted in the panel title.

Timeline: a panel per run and stage (rows: runs; columns: the decode-only and the mixed layer),
every panel on one time axis; a bar per instruction coloured by op class. A kernel fusing ops of
several classes is striped: each class's stripe is as tall as its share of the kernel's modelled
time (time_split.launch_class_shares).
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.types import Space, Unit
from opbsim.report.compare import Comparison, DeviceRun
from opbsim.report.compare_layer import FUSED, LayerTimeline, OpPoint
from opbsim.report.plot_style import CLASS_COLOURS, UNIT_COLOURS, UNIT_NAME, US, device_colours, log_label, subtitle

__all__ = ["plot_roofline", "plot_timeline", "unit_ceiling", "roof_at"]

_MARKERS = {"fc": "o", "attention": "s", "moe": "^", "communication": "D", "other": "v", FUSED: "*"}
_STAGE_NAME = {"decode": "decode-only", "mixed": "mixed"}


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


def roof_at(device: DeviceSpec, p: OpPoint) -> float | None:
    """The roof of ``p``'s unit at its Op/B (FLOP/s): min(peak, Op/B x bandwidth); None where an op
    has no place on a roofline."""
    ceil = unit_ceiling(device, p.unit)
    if ceil is None or p.flops == 0 or not math.isfinite(p.op_per_B) or p.op_per_B <= 0:
        return None
    peak = ceil[0] if p.matrix and ceil[0] > 0 else ceil[1]
    return min(peak, p.op_per_B * ceil[2])


def _frame(ax, colour: str) -> None:
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(1.5)


def _roofline_axes(ax, run: DeviceRun, colour: str) -> float:
    """Draw one run's panel; the lowest attained FLOP/s drawn (for the shared y range)."""
    device = run.spec
    xs = np.logspace(-1, 4, 200)
    for unit in [u.unit for u in device.units if unit_ceiling(device, u.unit) is not None]:
        matrix, vector, bw = unit_ceiling(device, unit)
        if matrix > 0:
            ax.plot(xs, np.minimum(matrix, xs * bw), color=UNIT_COLOURS[unit], lw=1.5,
                    label=f"{UNIT_NAME[unit]}: {matrix / 1e12:.4g} TFLOP/s, {bw / 1e12:.3g} TB/s, "
                          f"ridge {matrix / bw:.0f} FLOP/B")
        if vector > 0:
            ax.plot(xs, np.minimum(vector, xs * bw), color=UNIT_COLOURS[unit], lw=1, ls="--")
    hidden, lowest = 0, math.inf
    groups: dict[tuple[Unit, str], list[tuple[float, float]]] = {}
    for p in run.roofline:
        y, roof = p.attained_flop_per_s, roof_at(device, p)
        if y is None or roof is None:
            hidden += 1
            continue
        unit_colour = UNIT_COLOURS[p.unit]
        ax.plot([p.op_per_B, p.op_per_B], [y, roof], ":", color=unit_colour, lw=1)
        ax.plot(p.op_per_B, y, _MARKERS.get(p.op_class, "o"), color=unit_colour, ms=13 if p.op_class == FUSED else 8,
                mec="black", mew=0.6, alpha=0.85)
        family = _family(p) if p.matrix or p.op_class == FUSED else "vector ops"
        groups.setdefault((p.unit, family), []).append((p.op_per_B, y))
        lowest = min(lowest, y)
    units_with_points = sorted({u for u, _ in groups})
    for unit in units_with_points:
        above = units_with_points.index(unit) % 2 == 1  # a second unit's labels go above-left of its points
        for x, y, label in _labels({f: pts for (u, f), pts in groups.items() if u is unit}):
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(-7, 6) if above else (7, -10),
                        ha="right" if above else "left", fontsize=7, color=UNIT_COLOURS[unit])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(0.1, 1e4)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel(log_label("arithmetic intensity (FLOP per byte of HBM traffic)"))
    ax.set_ylabel(log_label("attained FLOP/s (on the engine)"))
    note = f"\n{hidden} ops without FLOPs or engine time of their own not shown" if hidden else ""
    ax.set_title(f"{run.device} ({run.policy}){note}", fontsize=9, color=colour)
    _frame(ax, colour)
    ax.legend(fontsize=7, loc="lower right")
    return lowest


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
            out[-1] = (px, py, f"{prev},\n{name}" if len(prev) + len(name) > 30 else f"{prev}, {name}")
        else:
            out.append((x, y, name))
    return out


def _family(p: OpPoint) -> str:
    """The op's name without its layer prefix and expert index: ``expert``, ``qkv_proj``; a fused
    kernel ``kernel attn_norm..o_proj``."""
    if p.op_class == FUSED:
        return "kernel " + "..".join(part.split(".", 1)[-1] for part in p.name.split(".."))
    name = p.name.split(".", 1)[-1]
    head, _, tail = name.rpartition(".")
    return head if head and tail.isdigit() else name


def _grid(n: int) -> tuple[int, int]:
    """Rows and columns for ``n`` panels: one row up to three, then two or three columns."""
    cols = n if n <= 3 else (2 if n == 4 else 3)
    return math.ceil(n / cols), cols


def _not_run(ax, run: DeviceRun, what: str, colour: str) -> None:
    ax.set_axis_off()
    ax.set_title(f"{run.device} ({run.policy})", fontsize=9, color=colour)
    reason = run.error or what
    ax.text(0.5, 0.5, "cannot run:\n" + "\n".join(textwrap.wrap(reason, 55)[:5]),
            ha="center", va="center", fontsize=8, transform=ax.transAxes, color=colour,
            bbox={"facecolor": "white", "edgecolor": colour})


def plot_roofline(comp: Comparison) -> Figure:
    """One roofline panel per run (no empty panel); every op of the decode-only layer at its
    attained FLOP/s on the engine, below the roof of its unit."""
    rows, cols = _grid(len(comp.runs))
    fig = Figure(figsize=(5.6 * cols, 4.8 * rows), layout="constrained")
    colours = device_colours(comp)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(len(comp.runs))]
    lowest = math.inf
    for ax, run in zip(axes, comp.runs):
        if run.roofline:
            lowest = min(lowest, _roofline_axes(ax, run, colours[run.label]))
        else:
            _not_run(ax, run, run.roofline_stage, colours[run.label])
    bottom = 10 ** min(10, math.floor(math.log10(lowest / 2))) if math.isfinite(lowest) else 1e10
    for ax in axes:
        if ax.axison:
            ax.set_ylim(bottom, 3e15)
    first = next((ax for ax in axes if ax.axison), None)
    if first is not None:
        markers = [Line2D([], [], marker=m, ls="", color="#555555", ms=10 if c == FUSED else 6, label=c)
                   for c, m in _MARKERS.items()]
        first.add_artist(first.legend(handles=markers, title="op class (marker)", loc="upper left", fontsize=7,
                                      title_fontsize=7))
        first.legend(fontsize=7, loc="lower right")
    stage = next((r.roofline_stage for r in comp.runs if r.roofline), "")
    fig.suptitle(f"Roofline: each op at the FLOP/s it attained on the engine, dotted up to the roof of its unit "
                 f"(colour = unit; dashed = vector peak)\n{subtitle(comp)}; {stage}", fontsize=10)
    return fig


def _timeline_axes(ax, run: DeviceRun, t: LayerTimeline, colour: str) -> bool:
    """Draw one layer's Gantt chart; whether a fused kernel was drawn striped."""
    stats = t.stats
    units = sorted({iv.unit for iv in stats.timeline if iv.unit is not Unit.CTRL and iv.end_s > iv.start_s})
    rows = {u: i for i, u in enumerate(reversed(units))}
    bars: dict[tuple[str, float, float], list[tuple[float, float]]] = {}
    striped = False
    for iv in stats.timeline:
        if iv.unit not in rows or iv.end_s <= iv.start_s:
            continue
        shares = t.shares.get(iv.index) or {"other": 1.0}
        striped |= len(shares) > 1
        y = rows[iv.unit] - 0.38
        for cls in CLASS_COLOURS:  # stripes bottom up in legend order
            h = 0.76 * shares.get(cls, 0.0)
            if h > 0:
                bars.setdefault((cls, y, h), []).append((iv.start_s * 1e6, (iv.end_s - iv.start_s) * 1e6))
                y += h
    for (cls, y, h), spans in bars.items():
        ax.broken_barh(spans, (y, h), facecolors=CLASS_COLOURS[cls], linewidth=0)
    ax.set_yticks(list(rows.values()), [UNIT_NAME[u] for u in rows])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel(f"time ({US})")
    ax.set_ylabel("unit")
    busy = ", ".join(f"{UNIT_NAME[u]} {stats.utilisation(u):.0%}" for u in units)
    ax.set_title(f"{run.device} ({run.policy}), {_STAGE_NAME[t.kind]}: {stats.time_s * 1e6:.0f} {US}; busy {busy}",
                 fontsize=9, color=colour)
    ax.grid(True, axis="x", alpha=0.3)
    _frame(ax, colour)
    return striped


def plot_timeline(comp: Comparison) -> Figure:
    """A Gantt panel per run and stage (decode-only left, mixed right), all on one time axis: each
    unit's instructions of one decoder layer, by op class."""
    n = len(comp.runs)
    fig = Figure(figsize=(14, 1.6 + 1.6 * n), layout="constrained")
    axes = fig.subplots(n, 2, squeeze=False, sharex=True)
    colours = device_colours(comp)
    striped, end_us, stages = False, 0.0, {}
    for row, run in zip(axes, comp.runs):
        for ax, kind in zip(row, ("decode", "mixed")):
            t = next((t for t in run.timelines if t.kind == kind), None)
            if t is None or t.stats is None:
                _not_run(ax, run, t.stage if t else run.error, colours[run.label])
                continue
            striped |= _timeline_axes(ax, run, t, colours[run.label])
            end_us = max(end_us, t.stats.time_s * 1e6)
            stages.setdefault(kind, t.stage)
    if end_us > 0:
        axes[0][0].set_xlim(0, end_us * 1.01)
    for column in axes.T:  # the shared time axis is labelled once, under the last panel drawn in each column
        drawn = [ax for ax in column if ax.axison]
        for ax in drawn[:-1]:
            ax.set_xlabel("")
        if drawn:
            drawn[-1].xaxis.set_tick_params(labelbottom=True)
    handles = [Patch(color=c, label=k) for k, c in CLASS_COLOURS.items()]
    title = "op class" + (" (a fused kernel: stripes as tall as each class's share)" if striped else "")
    fig.legend(handles=handles, title=title, loc="outside lower center", ncol=len(handles), fontsize=8)
    lines = "\n".join(stages[k] for k in ("decode", "mixed") if k in stages)
    served = next((r.result for r in comp.runs if r.result is not None), None)
    share = f", {served.decode_only_stage_share:.0%} of the serving run's stages" if served else ""
    fig.suptitle(f"One decoder layer on the engine, one time axis: decode-only stage (left{share}), mixed stage "
                 f"(right)\n{subtitle(comp)}\n{lines}", fontsize=10)
    return fig
