"""Every plot of a comparison: written, non-empty, labelled axes with units, legends, placeholders
for a device that cannot run."""

from __future__ import annotations

import pytest

from opbsim.report.plots import PLOTS, write_plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", [p[0] for p in PLOTS])
def test_every_plot_labels_its_axes_and_has_a_legend(tiny_comparison, name):
    draw = next(p[3] for p in PLOTS if p[0] == name)
    fig = draw(tiny_comparison)
    data_axes = [ax for ax in fig.axes if ax.axison]
    assert data_axes
    for ax in data_axes:
        assert ax.get_xlabel() and ax.get_ylabel(), f"{name}: an axis without a label"
        assert ax.has_data()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    assert legends, f"{name}: no legend"
    assert fig._suptitle is not None or any(ax.get_title() for ax in fig.axes)


@pytest.mark.parametrize("name", ["throughput_vs_batch.png", "tbt_percentiles.png", "energy_per_token.png",
                                  "latency_breakdown.png", "timeline.png"])
def test_serving_and_timeline_axes_name_their_units(tiny_comparison, name):
    draw = next(p[3] for p in PLOTS if p[0] == name)
    ax = next(ax for ax in draw(tiny_comparison).axes if ax.axison)
    labels = ax.get_xlabel() + ax.get_ylabel()
    assert any(unit in labels for unit in ("(ms)", "(mJ)", "(s)", "tokens/s", "(us)"))


def test_the_roofline_axes_are_op_per_byte_and_flop_per_second(tiny_comparison):
    fig = dict((p[0], p[3]) for p in PLOTS)["roofline.png"](tiny_comparison)
    ax = fig.axes[0]
    assert "FLOP per byte" in ax.get_xlabel() and "FLOP/s" in ax.get_ylabel()
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"


@pytest.mark.parametrize("name", ["tbt_percentiles.png", "energy_per_token.png", "latency_breakdown.png",
                                  "roofline.png", "timeline.png"])
def test_a_device_that_cannot_run_is_drawn_as_such(tiny_comparison, name):
    fig = dict((p[0], p[3]) for p in PLOTS)[name](tiny_comparison)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("cannot run" in t for t in texts)


def test_the_throughput_legend_names_the_device_that_cannot_run(tiny_comparison):
    fig = dict((p[0], p[3]) for p in PLOTS)["throughput_vs_batch.png"](tiny_comparison)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0] == "h100 (xpu-only)" and labels[2].startswith("sn40l: cannot run")


def test_write_plots_writes_every_png_non_empty(tiny_comparison, tmp_path):
    paths = write_plots(tiny_comparison, tmp_path)
    assert [p.name for p in paths] == [p[0] for p in PLOTS]
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
