"""Serving plots of a device comparison: throughput vs batch, time-between-tokens percentiles,
energy per token by component, and the latency breakdown by op class.

Each function takes a ``Comparison`` and returns a matplotlib ``Figure`` (built without pyplot,
so no global state and no display needed). A device that could not run is drawn as a grey,
hatched placeholder labelled with the reason, never left out.
"""

from __future__ import annotations

import textwrap

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from opbsim.report.compare import Comparison, DeviceRun

__all__ = ["device_colours", "subtitle", "plot_throughput", "plot_tbt", "plot_energy", "plot_breakdown",
           "plot_stage_split", "CLASS_COLOURS"]

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
CLASS_COLOURS = {"fc": "#1f77b4", "attention": "#ff7f0e", "moe": "#2ca02c", "communication": "#9467bd",
                 "other": "#b0b0b0"}
_CLASS_LABEL = {"fc": "FC (projections)", "attention": "attention", "moe": "MoE (router, experts)",
                "communication": "communication", "other": "other (norms, embedding, LM head, idle)"}
_MISSING = "#d9d9d9"


def device_colours(comp: Comparison) -> dict[str, str]:
    """One colour per device, the same in every plot."""
    return {r.label: _PALETTE[i % len(_PALETTE)] for i, r in enumerate(comp.runs)}


def subtitle(comp: Comparison) -> str:
    s = comp.settings
    lengths = f"{s.lin} in / {s.lout} out tokens"
    if s.lin_std or s.lout_std:
        lengths += f" (std {s.lin_std:g} / {s.lout_std:g})"
    plural = lambda n, word: f"{n} {word}" + ("s" if n != 1 else "")  # noqa: E731
    return (f"{comp.model.name}, {plural(s.nodes, 'node')} x {plural(s.devices_per_node, 'device')}, {lengths}, "
            f"closed loop")


def _label(run: DeviceRun) -> str:
    return f"{run.device}\n({run.policy})"


def _short(error: str, width: int = 28) -> str:
    head = error.split(";")[0].split(":")[0] if error.startswith("does not fit") else error
    return "\n".join(textwrap.wrap(head, width)[:3])


def _missing_bar(ax, x: float, run: DeviceRun, height: float) -> None:
    ax.bar(x, height, width=0.6, color=_MISSING, hatch="//", edgecolor="#888888")
    ax.text(x, height / 2, "cannot run:\n" + _short(run.error, 16), ha="center", va="center", fontsize=7)


_COMPONENT_COLOURS = (  # by prefix, in stacking order (bottom first)
    ("HBM via xPU", "#08519c"), ("HBM via PIM", "#d62728"), ("HBM via PCU", "#2ca02c"), ("HBM via PMU", "#98df8a"),
    ("HBM via DMA", "#9467bd"), ("DDR", "#8c564b"), ("host", "#4d4d4d"), ("compute", "#f2c12e"),
    ("SRAM", "#bdbdbd"), ("PIM buffers", "#f7b6d2"),
)


def _component_order(name: str) -> tuple[int, str]:
    for i, (prefix, _) in enumerate(_COMPONENT_COLOURS):
        if name.startswith(prefix):
            return i, name
    return len(_COMPONENT_COLOURS), name


def _component_colour(name: str) -> str:
    for prefix, colour in _COMPONENT_COLOURS:
        if name.startswith(prefix):
            return colour
    return "#17becf"


def _ymax(values: list[float]) -> float:
    return max([v for v in values if v > 0], default=1.0)


def plot_throughput(comp: Comparison) -> Figure:
    """Output tokens/s of the whole cluster vs the batch, one line per device; a hollow marker
    where capacity capped the batch."""
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    colours = device_colours(comp)
    handles = []
    for run in comp.runs:
        pts = [p for p in run.curve if p.tokens_per_s is not None]
        colour = colours[run.label]
        if not pts:
            handles.append(Line2D([], [], color=_MISSING, lw=6, label=f"{run.label}: cannot run "
                                  f"({_short(run.error, 60).replace(chr(10), ' ')})"))
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
        failed = [p for p in run.curve if p.tokens_per_s is None]
        for p in failed:
            ax.axvline(p.batch, color=colour, ls=":", lw=1)
    batches = comp.settings.curve_batches
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.minorticks_off()
    ax.set_xlabel("batch (requests running at once)")
    ax.set_ylabel("throughput (output tokens/s, whole cluster)")
    ax.set_ylim(0, _ymax([p.tokens_per_s or 0.0 for r in comp.runs for p in r.curve]) * 1.1)
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, loc="upper left", fontsize=8)
    ax.set_title(f"Throughput vs batch\n{subtitle(comp)}", fontsize=10)
    return fig


def plot_tbt(comp: Comparison) -> Figure:
    """Time between tokens p50 / p90 / p99 per device (grouped bars, ms)."""
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    shades = {"p50": "#6baed6", "p90": "#2171b5", "p99": "#08306b"}
    ok = [r.result for r in comp.runs if r.result is not None]
    top = _ymax([r.tbt_p99_ms for r in ok])
    width = 0.25
    labelled: set[str] = set()
    for i, run in enumerate(comp.runs):
        if run.result is None:
            _missing_bar(ax, i, run, top * 0.6)
            continue
        r = run.result
        for j, (name, value) in enumerate((("p50", r.tbt_p50_ms), ("p90", r.tbt_p90_ms), ("p99", r.tbt_p99_ms))):
            x = i + (j - 1) * width
            ax.bar(x, value, width=width, color=shades[name], label=None if name in labelled else name)
            labelled.add(name)
            ax.text(x, value, f"{value:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(comp.runs)), [_label(r) for r in comp.runs])
    ax.set_xlabel("device (policy)")
    ax.set_ylabel("time between tokens (ms)")
    ax.set_ylim(0, top * 1.15)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(title="percentile", fontsize=8)
    ax.set_title(f"Time between tokens, batch {comp.settings.batch}\n{subtitle(comp)}", fontsize=10)
    return fig


def plot_energy(comp: Comparison) -> Figure:
    """Energy per output token, stacked by component (mJ)."""
    fig = Figure(figsize=(8.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    seen = {name for run in comp.runs for name, _ in run.energy_mJ_by_component}
    components = sorted(seen, key=_component_order)
    colour = {c: _component_colour(c) for c in components}
    ok = [r.result for r in comp.runs if r.result is not None]
    top = _ymax([r.energy_per_token_mJ for r in ok])
    for i, run in enumerate(comp.runs):
        if run.result is None:
            _missing_bar(ax, i, run, top * 0.6)
            continue
        parts = dict(run.energy_mJ_by_component)
        bottom = 0.0
        for c in components:
            value = parts.get(c, 0.0)
            if value > 0:
                ax.bar(i, value, bottom=bottom, width=0.6, color=colour[c])
                bottom += value
        ax.text(i, bottom, f"{run.result.energy_per_token_mJ:.1f}", ha="center", va="bottom", fontsize=8)
    handles = [Line2D([], [], color=colour[c], lw=8, label=c) for c in components]
    ax.set_xticks(range(len(comp.runs)), [_label(r) for r in comp.runs])
    ax.set_xlabel("device (policy)")
    ax.set_ylabel("energy per output token (mJ)")
    ax.set_ylim(0, top * 1.12)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(handles=handles[::-1], title="component", fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(f"Energy per token by component, batch {comp.settings.batch}\n{subtitle(comp)}", fontsize=10)
    return fig


def _stacked(comp: Comparison, shares_of, total_of, colours: dict[str, str], labels: dict[str, str],
             unit: str) -> tuple[Figure, object, float]:
    """One stacked bar per device: ``total_of(result)`` split by ``shares_of(result)``."""
    fig = Figure(figsize=(8.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    ok = [r.result for r in comp.runs if r.result is not None]
    top = _ymax([total_of(r) for r in ok])
    for i, run in enumerate(comp.runs):
        if run.result is None:
            _missing_bar(ax, i, run, top * 0.6)
            continue
        r = run.result
        shares, total = shares_of(r), total_of(r)
        bottom = 0.0
        for key in colours:
            value = shares.get(key, 0.0) * total
            if value > 0:
                ax.bar(i, value, bottom=bottom, width=0.6, color=colours[key])
                if value > 0.06 * top:
                    ax.text(i, bottom + value / 2, f"{shares[key]:.0%}", ha="center", va="center", fontsize=7,
                            color="white" if key not in ("other", "idle") else "black")
                bottom += value
        ax.text(i, bottom, f"{total:.3g} {unit}", ha="center", va="bottom", fontsize=8)
    handles = [Line2D([], [], color=colours[c], lw=8, label=labels[c]) for c in colours]
    ax.set_xticks(range(len(comp.runs)), [_label(r) for r in comp.runs])
    ax.set_xlabel("device (policy)")
    ax.set_ylim(0, top * 1.12)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(handles=handles[::-1], fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig, ax, top


def plot_breakdown(comp: Comparison) -> Figure:
    """The serving run's wall-clock time split by op class (s), stacked per device."""
    fig, ax, _ = _stacked(comp, lambda r: dict(r.time_share_by_class), lambda r: r.duration_s, CLASS_COLOURS,
                          _CLASS_LABEL, "s")
    ax.set_ylabel("serving time (s), split by op class")
    s = comp.settings
    ax.set_title(f"Latency breakdown by op class: {s.requests(s.batch)} requests at batch {s.batch}\n"
                 f"{subtitle(comp)}", fontsize=10)
    if any(r.result is not None and r.spec.dataflow is not None for r in comp.runs):
        ax.text(1.02, 0.02, "Dataflow devices (SN40L) run\nfused kernels spanning several\nop classes: their time "
                "counts\nas other.", transform=ax.transAxes, fontsize=7, color="#555555", va="bottom")
    return fig


BOUND_COLOURS = {"compute": "#d62728", "memory": "#17becf", "communication": "#9467bd", "idle": "#b0b0b0"}
_BOUND_LABEL = {"compute": "compute-bound", "memory": "memory-bound", "communication": "communication",
                "idle": "idle (launch gaps)"}


def plot_stage_split(comp: Comparison) -> Figure:
    """The mean stage time (ms) split into compute-bound, memory-bound and communication time."""
    fig, ax, _ = _stacked(comp, lambda r: dict(r.time_share_by_bound),
                          lambda r: 1e3 * sum(r.stage_time_s) / max(r.stages, 1), BOUND_COLOURS, _BOUND_LABEL, "ms")
    ax.set_ylabel("mean stage time (ms), split by what bounds it")
    ax.set_title(f"Stage time: compute, memory and communication, batch {comp.settings.batch}\n{subtitle(comp)}",
                 fontsize=10)
    return fig
