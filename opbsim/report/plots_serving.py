"""Serving plots of a device comparison: throughput vs batch, time-between-tokens percentiles,
energy per token by component, and the latency breakdown by op class.

Each function takes a ``Comparison`` and returns a matplotlib ``Figure`` (built without pyplot,
so no global state and no display needed). A device that could not run is drawn as text at
height zero with the reason (no bar, whose height would read as a value), never left out. Every
plot marks each run in its colour (plot_style.device_colours).
"""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from opbsim.report.compare import Comparison
from opbsim.report.energy import COMPONENT_LABEL
from opbsim.report.plot_style import (
    BOUND_COLOURS,
    BOUND_LABEL,
    CLASS_COLOURS,
    CLASS_LABEL,
    cannot_run_text,
    colour_device_ticks,
    component_colours,
    device_colours,
    log_label,
    short_reason,
    subtitle,
)

__all__ = ["plot_throughput", "plot_tbt", "plot_energy", "plot_breakdown", "plot_stage_split"]

_PERCENTILE_ALPHA = {"p50": 0.4, "p90": 0.7, "p99": 1.0}


def _ymax(values: list[float]) -> float:
    return max([v for v in values if v > 0], default=1.0)


def plot_throughput(comp: Comparison) -> Figure:
    """Output tokens/s of the whole cluster vs the batch, one line per run; a hollow marker
    where capacity capped the batch."""
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    colours = device_colours(comp)
    handles = []
    for run in comp.runs:
        pts = [p for p in run.curve if p.tokens_per_s is not None]
        colour = colours[run.label]
        if not pts:
            handles.append(Line2D([], [], color=colour, lw=1, ls=":", label=f"{run.label}: cannot run "
                                  f"({short_reason(run.error, 60).replace(chr(10), ' ')})"))
            continue
        xs = [p.batch for p in pts]
        ys = [p.tokens_per_s for p in pts]
        (line,) = ax.plot(xs, ys, "-o", color=colour, label=f"{run.device} ({run.policy})")
        handles.append(line)
        capped = [p for p in pts if p.max_batch is not None and p.max_batch < p.batch]
        if capped:
            ax.plot([p.batch for p in capped], [p.tokens_per_s for p in capped], "o", mfc="white", mec=colour,
                    ms=9, mew=2)
            ax.annotate(f"batch capped at {capped[0].max_batch}\n(the KV cache fits no more)",
                        (capped[0].batch, capped[0].tokens_per_s), textcoords="offset points", xytext=(-12, -28),
                        ha="right", fontsize=8, color=colour)
        for p in run.curve:
            if p.tokens_per_s is None:
                ax.axvline(p.batch, color=colour, ls=":", lw=1)
    batches = comp.settings.curve_batches
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.minorticks_off()
    ax.set_xlabel(log_label("batch (requests running at once)"))
    ax.set_ylabel("throughput (output tokens/s, whole cluster)")
    ax.set_ylim(0, _ymax([p.tokens_per_s or 0.0 for r in comp.runs for p in r.curve]) * 1.1)
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, loc="upper left", fontsize=8)
    ax.set_title(f"Throughput vs batch\n{subtitle(comp)}", fontsize=10)
    return fig


def plot_tbt(comp: Comparison) -> Figure:
    """Time between tokens p50 / p90 / p99 per run (grouped bars in the run's colour, lighter for
    lower percentiles; ms)."""
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    colours = device_colours(comp)
    top = _ymax([r.result.tbt_p99_ms for r in comp.runs if r.result is not None])
    width = 0.25
    for i, run in enumerate(comp.runs):
        if run.result is None:
            cannot_run_text(ax, i, run)
            continue
        r = run.result
        for j, (name, value) in enumerate((("p50", r.tbt_p50_ms), ("p90", r.tbt_p90_ms), ("p99", r.tbt_p99_ms))):
            x = i + (j - 1) * width
            ax.bar(x, value, width=width, color=colours[run.label], alpha=_PERCENTILE_ALPHA[name])
            ax.text(x, value, f"{value:.1f}", ha="center", va="bottom", fontsize=7)
    colour_device_ticks(ax, comp)
    ax.set_xlabel("device (policy)")
    ax.set_ylabel("time between tokens (ms)")
    ax.set_ylim(0, top * 1.15)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(handles=[Patch(color="#444444", alpha=a, label=n) for n, a in _PERCENTILE_ALPHA.items()],
              title="percentile (left to right)", fontsize=8)
    ax.set_title(f"Time between tokens, batch {comp.settings.batch}\n{subtitle(comp)}", fontsize=10)
    return fig


def _stack(ax, i: int, parts: list[tuple[str, float]], colours: dict[str, str], outline: str) -> float:
    """One stacked bar at ``i`` (bottom first), outlined in the run's colour; its top."""
    bottom = 0.0
    for key, value in parts:
        if value > 0:
            ax.bar(i, value, bottom=bottom, width=0.6, color=colours[key], edgecolor="white", linewidth=0.5)
            bottom += value
    ax.bar(i, bottom, width=0.6, fill=False, edgecolor=outline, linewidth=2)
    return bottom


def plot_energy(comp: Comparison) -> Figure:
    """Energy per output token, stacked by component (mJ), each component its own colour."""
    fig = Figure(figsize=(8.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    colour = component_colours({name for run in comp.runs for name, mJ in run.energy_mJ_by_component if mJ > 0})
    runs = device_colours(comp)
    top = _ymax([r.result.energy_per_token_mJ for r in comp.runs if r.result is not None])
    for i, run in enumerate(comp.runs):
        if run.result is None:
            cannot_run_text(ax, i, run)
            continue
        parts = dict(run.energy_mJ_by_component)
        bottom = _stack(ax, i, [(c, parts.get(c, 0.0)) for c in colour], colour, runs[run.label])
        ax.text(i, bottom, f"{run.result.energy_per_token_mJ:.1f}", ha="center", va="bottom", fontsize=8)
    handles = [Patch(color=colour[c], label=COMPONENT_LABEL.get(c, c)) for c in colour]
    colour_device_ticks(ax, comp)
    ax.set_xlabel("device (policy)")
    ax.set_ylabel("energy per output token (mJ)")
    ax.set_ylim(0, top * 1.12)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(handles=handles[::-1], title="component", fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(f"Energy per token by component, batch {comp.settings.batch}\n{subtitle(comp)}", fontsize=10)
    return fig


def _stacked(comp: Comparison, shares_of, total_of, colours: dict[str, str], labels: dict[str, str],
             unit: str) -> tuple[Figure, object]:
    """One stacked bar per run: ``total_of(result)`` split by ``shares_of(result)``."""
    fig = Figure(figsize=(8.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    runs = device_colours(comp)
    top = _ymax([total_of(r.result) for r in comp.runs if r.result is not None])
    for i, run in enumerate(comp.runs):
        if run.result is None:
            cannot_run_text(ax, i, run)
            continue
        shares, total = shares_of(run.result), total_of(run.result)
        parts = [(key, shares.get(key, 0.0) * total) for key in colours]
        bottom = 0.0
        for key, value in parts:
            if value > 0.06 * top:
                ax.text(i, bottom + value / 2, f"{shares[key]:.0%}", ha="center", va="center", fontsize=7)
            bottom += max(value, 0.0)
        _stack(ax, i, parts, colours, runs[run.label])
        ax.text(i, bottom, f"{total:.3g} {unit}", ha="center", va="bottom", fontsize=8)
    handles = [Patch(color=colours[c], label=labels[c]) for c in colours]
    colour_device_ticks(ax, comp)
    ax.set_xlabel("device (policy)")
    ax.set_ylim(0, top * 1.12)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(handles=handles[::-1], fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig, ax


def plot_breakdown(comp: Comparison) -> Figure:
    """The serving run's wall-clock time split by op class (s), stacked per run; a fused kernel's
    time split over the classes of its ops (time_split.launch_class_shares)."""
    fig, ax = _stacked(comp, lambda r: dict(r.time_share_by_class), lambda r: r.duration_s, CLASS_COLOURS,
                       CLASS_LABEL, "s")
    ax.set_ylabel("serving time (s), split by op class")
    s = comp.settings
    ax.set_title(f"Latency breakdown by op class: {s.requests(s.batch)} requests at batch {s.batch}\n"
                 f"{subtitle(comp)}", fontsize=10)
    if any(r.result is not None and r.spec.model.fuses_ops for r in comp.runs):
        ax.text(1.02, 0.02, "A fused dataflow kernel (SN40L)\nis split over the classes of its\nops by their "
                "modelled time.", transform=ax.transAxes, fontsize=7, color="#555555", va="bottom")
    return fig


def plot_stage_split(comp: Comparison) -> Figure:
    """The mean stage time (ms) split into compute-bound, memory-bound and communication time."""
    fig, ax = _stacked(comp, lambda r: dict(r.time_share_by_bound),
                       lambda r: 1e3 * sum(r.stage_time_s) / max(r.stages, 1), BOUND_COLOURS, BOUND_LABEL, "ms")
    ax.set_ylabel("mean stage time (ms), split by what bounds it")
    ax.set_title(f"Stage time: compute, memory and communication, batch {comp.settings.batch}\n{subtitle(comp)}",
                 fontsize=10)
    return fig
