"""Every plot of a comparison: written, non-empty, labelled axes with units, legends, one colour
per run shared by every plot, a device that cannot run drawn as text (never as a bar)."""

from __future__ import annotations

import math

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.patches import Rectangle

from opbsim.report.compare_layer import FUSED
from opbsim.report.energy import COMPONENTS
from opbsim.report.plot_style import (
    BOUND_COLOURS,
    CLASS_COLOURS,
    DEVICE_PALETTE,
    UNIT_COLOURS,
    component_colours,
    device_colours,
)
from opbsim.report.plots import PLOTS, write_plots
from opbsim.report.plots_ops import roof_at

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DRAW = {name: draw for name, _, _, draw in PLOTS}
BAR_PLOTS = ["tbt_percentiles.png", "energy_per_token.png", "latency_breakdown.png", "stage_split.png"]


def texts_of(fig) -> list[str]:
    out = [t.get_text() for t in fig.texts] + ([fig._suptitle.get_text()] if fig._suptitle else [])
    for ax in fig.axes:
        out += [t.get_text() for t in ax.texts] + [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        out += [t.get_text() for t in ax.get_xticklabels()]
        legend = ax.get_legend()
        out += [t.get_text() for t in legend.get_texts()] + [legend.get_title().get_text()] if legend else []
    for legend in fig.legends:
        out += [t.get_text() for t in legend.get_texts()] + [legend.get_title().get_text()]
    return out


def colours_of(fig) -> set[str]:
    """Every colour an artist of ``fig`` is drawn in (as #rrggbb, alpha dropped)."""
    out: set[str] = set()
    for ax in fig.axes:
        out |= {to_hex(line.get_color()) for line in ax.lines}
        out |= {to_hex(c) for p in ax.patches for c in (p.get_facecolor(), p.get_edgecolor())}
        out |= {to_hex(c) for coll in ax.collections for c in coll.get_facecolor()}
        out |= {to_hex(t.get_color()) for t in [*ax.texts, ax.title, *ax.get_xticklabels()]}
        out |= {to_hex(s.get_edgecolor()) for s in ax.spines.values()}
        legend = ax.get_legend()
        out |= {to_hex(h.get_color()) for h in (legend.legend_handles if legend else []) if hasattr(h, "get_color")}
    return out


@pytest.mark.parametrize("name", [p[0] for p in PLOTS])
def test_every_plot_labels_its_axes_and_has_a_legend(tiny_comparison, name):
    fig = DRAW[name](tiny_comparison)
    data_axes = [ax for ax in fig.axes if ax.axison]
    assert data_axes
    for ax in data_axes:
        labelled_x = ax.get_xlabel() or any(other.get_xlabel() for other in data_axes
                                            if other is not ax and ax.get_shared_x_axes().joined(ax, other))
        assert labelled_x and ax.get_ylabel(), f"{name}: an axis without a label"
        assert ax.has_data()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    assert legends, f"{name}: no legend"
    assert fig._suptitle is not None or any(ax.get_title() for ax in fig.axes)


@pytest.mark.parametrize("name", ["throughput_vs_batch.png", "tbt_percentiles.png", "energy_per_token.png",
                                  "latency_breakdown.png", "timeline.png"])
def test_serving_and_timeline_axes_name_their_units(tiny_comparison, name):
    axes = [ax for ax in DRAW[name](tiny_comparison).axes if ax.axison]
    labels = "".join(ax.get_xlabel() + ax.get_ylabel() for ax in axes)
    assert any(unit in labels for unit in ("(ms)", "(mJ)", "(s)", "tokens/s", "(µs)"))


@pytest.mark.parametrize("name", [p[0] for p in PLOTS])
def test_microseconds_are_written_µs_never_us(tiny_comparison, name):
    words = " ".join(texts_of(DRAW[name](tiny_comparison))).replace("(", " ").replace(")", " ").split()
    assert "us" not in words and "us;" not in words


def test_the_timeline_speaks_of_µs(tiny_comparison):
    assert any("µs" in t for t in texts_of(DRAW["timeline.png"](tiny_comparison)))


@pytest.mark.parametrize("name", [p[0] for p in PLOTS])
def test_every_log_axis_says_so_in_its_label(tiny_comparison, name):
    for ax in DRAW[name](tiny_comparison).axes:
        if ax.get_xscale() == "log":
            assert "log scale" in ax.get_xlabel()
        if ax.get_yscale() == "log":
            assert "log scale" in ax.get_ylabel()


@pytest.mark.parametrize("name", [p[0] for p in PLOTS])
def test_every_plot_marks_each_run_in_its_shared_device_colour(tiny_comparison, name):
    colours = colours_of(DRAW[name](tiny_comparison))
    for label, colour in device_colours(tiny_comparison).items():
        assert colour in colours, f"{name}: {label} is not drawn in its colour {colour}"


def test_no_palette_of_categories_reuses_a_device_colour():
    categories = {*CLASS_COLOURS.values(), *BOUND_COLOURS.values(), *UNIT_COLOURS.values(),
                  *component_colours([*COMPONENTS, "x", "y"]).values()}
    assert not categories & set(DEVICE_PALETTE)


def test_every_energy_component_has_a_colour_of_its_own(tiny_comparison):
    names = [*COMPONENTS, "something new", "and another"]
    colours = component_colours(names)
    assert len(set(colours.values())) == len(names)
    legend = DRAW["energy_per_token.png"](tiny_comparison).axes[0].get_legend()
    drawn = [to_hex(h.get_facecolor()) for h in legend.legend_handles]
    assert len(set(drawn)) == len(drawn)


@pytest.mark.parametrize("name", BAR_PLOTS)
def test_a_device_that_cannot_run_has_no_bar_only_its_reason_at_height_zero(tiny_comparison, name):
    x = next(i for i, r in enumerate(tiny_comparison.runs) if not r.ok)
    ax = DRAW[name](tiny_comparison).axes[0]
    bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_height() > 0]
    assert bars and not [p for p in bars if abs(p.get_x() + p.get_width() / 2 - x) < 0.5]
    (text,) = [t for t in ax.texts if "cannot run" in t.get_text()]
    assert text.get_position() == (x, 0)


@pytest.mark.parametrize("name", ["roofline.png", "timeline.png"])
def test_a_device_that_cannot_run_is_a_panel_saying_why(tiny_comparison, name):
    texts = [t.get_text() for ax in DRAW[name](tiny_comparison).axes for t in ax.texts]
    assert any("cannot run" in t for t in texts)


def test_the_throughput_legend_names_the_device_that_cannot_run(tiny_comparison):
    labels = [t.get_text() for t in DRAW["throughput_vs_batch.png"](tiny_comparison).axes[0].get_legend().get_texts()]
    assert labels[0] == "h100 (xpu-only)" and labels[2].startswith("sn40l: cannot run")


def test_the_roofline_axes_are_op_per_byte_and_attained_flop_per_second(tiny_comparison):
    ax = DRAW["roofline.png"](tiny_comparison).axes[0]
    assert "FLOP per byte" in ax.get_xlabel() and "attained FLOP/s" in ax.get_ylabel()
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"


def test_the_roofline_has_one_panel_per_run_and_its_legends_inside_the_figure(tiny_comparison):
    fig = DRAW["roofline.png"](tiny_comparison)
    assert len(fig.axes) == len(tiny_comparison.runs) and not fig.legends
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    legends = [a for ax in fig.axes for a in ax.get_children() if a.__class__.__name__ == "Legend"]
    assert len(legends) >= 2  # units in each panel, op-class markers in the first
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1


def test_each_roofline_point_is_its_attained_flops_on_the_engine_at_or_below_its_roof(tiny_comparison):
    fig = DRAW["roofline.png"](tiny_comparison)
    for ax, run in zip(fig.axes, tiny_comparison.runs):
        markers = [(float(line.get_xdata()[0]), float(line.get_ydata()[0])) for line in ax.lines
                   if len(line.get_xdata()) == 1]
        shown = [p for p in run.roofline if p.attained_flop_per_s is not None and roof_at(run.spec, p)]
        assert len(shown) == len(markers) and (len(shown) > 0) == run.ok
        for p in shown:
            assert (p.op_per_B, p.flops / p.time_s) in markers
            assert p.flops / p.time_s <= roof_at(run.spec, p) * (1 + 1e-9)


def test_the_timeline_shows_the_decode_only_layer_beside_the_mixed_one_on_one_time_axis(tiny_comparison):
    fig = DRAW["timeline.png"](tiny_comparison)
    drawn = [ax for ax in fig.axes if ax.axison]
    assert len(fig.axes) == 2 * len(tiny_comparison.runs)
    assert all(drawn[0].get_shared_x_axes().joined(drawn[0], ax) for ax in drawn)
    assert [", decode-only:" in ax.get_title() for ax in drawn] == [True, False] * (len(drawn) // 2)
    longest = max(t.stats.time_s for r in tiny_comparison.runs for t in r.timelines if t.stats is not None)
    assert drawn[0].get_xlim()[1] == pytest.approx(longest * 1e6 * 1.01)


def test_a_fused_kernel_is_one_roofline_star_for_a_dataflow_device(sn40l_comparison):
    (run,) = sn40l_comparison.runs
    kernels = [p for p in run.roofline if p.op_class == FUSED]
    assert kernels and all(p.time_s > 0 and math.isfinite(p.op_per_B) for p in kernels)
    assert all(p.flops / p.time_s <= roof_at(run.spec, p) * (1 + 1e-9) for p in kernels)


def test_write_plots_writes_every_png_non_empty(tiny_comparison, tmp_path):
    paths = write_plots(tiny_comparison, tmp_path)
    assert [p.name for p in paths] == [p[0] for p in PLOTS]
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
