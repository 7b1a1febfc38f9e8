"""Every plot of a device comparison, written as PNG files (matplotlib, Agg, no display).

``PLOTS`` lists them in report order: file name, title, what the plot shows, and the function
that draws it (plots_serving.py, plots_ops.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from matplotlib.figure import Figure

from opbsim.fileio import atomic_write_bytes
from opbsim.report.compare import Comparison
from opbsim.report.plots_ops import plot_roofline, plot_timeline
from opbsim.report.plots_serving import plot_breakdown, plot_energy, plot_stage_split, plot_tbt, plot_throughput

__all__ = ["PLOTS", "write_plots", "save_png"]

PLOTS: tuple[tuple[str, str, str, Callable[[Comparison], Figure]], ...] = (
    ("throughput_vs_batch.png", "Throughput vs batch",
     "Output tokens per second of the whole cluster as the batch grows; a hollow marker where the KV cache "
     "capped the batch.", plot_throughput),
    ("tbt_percentiles.png", "Time between tokens",
     "p50 / p90 / p99 of the time between two tokens of a request, at the headline batch.", plot_tbt),
    ("energy_per_token.png", "Energy per token by component",
     "Energy per output token, split into compute and the bytes each unit moved to or from each memory.",
     plot_energy),
    ("latency_breakdown.png", "Latency breakdown by op class",
     "The serving run's wall-clock time split over FC, attention, MoE, communication and other.", plot_breakdown),
    ("stage_split.png", "Stage time: compute, memory, communication",
     "The mean stage time split by what bounds each instruction: its datapaths, its memory channels, or the "
     "links (collectives).", plot_stage_split),
    ("roofline.png", "Roofline with each op at its attained FLOP/s",
     "Each op of one decoder layer of a decode-only stage at its Op/B and the FLOP/s it attained on the engine "
     "(its FLOPs over its time), dotted up to the roof of the unit its policy chose.", plot_roofline),
    ("timeline.png", "Timeline of co-processing",
     "One decoder layer of a decode-only stage (left) and of a mixed stage (right) on the engine, on one time "
     "axis: when each unit runs what.", plot_timeline),
)


def save_png(fig: Figure, path: Path, dpi: int = 110) -> None:
    """Write ``fig`` to ``path`` as PNG, whole or not at all."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())


def write_plots(comp: Comparison, out_dir: Path, on_step: Callable[[str], None] | None = None) -> list[Path]:
    """Draw every plot of ``PLOTS`` into ``out_dir`` (created if needed); the paths written.
    ``on_step(name)`` is called after each plot."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, _, _, draw in PLOTS:
        save_png(draw(comp), out_dir / name)
        paths.append(out_dir / name)
        if on_step is not None:
            on_step(name)
    return paths
