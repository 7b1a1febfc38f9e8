"""``opbsim calibrate --gpu``: GPU-measured times against a device model's per-op predictions.

Measures (reference/timing.py, CUDA events, cold L2): the exact GEMM / GEMV across Op/B (tokens
per expert 1..512 on one Mixtral expert projection), the vendor bf16 GEMM on the same shapes
where PyTorch is installed, and decode attention across group sizes. Predicts each with the
timing engine on a program of the same instructions on ``--device`` (default h100). Writes
calibration.md (GPU, driver, clocks; the measured roofline and Op/B crossover; model vs measured
per op), calibration.png and calibration.json into ``--out-dir`` (default docs/).
Without pycuda / cupy or without a GPU: one line on stderr, exit status 1.
"""

from __future__ import annotations

from pathlib import Path

import click

from opbsim.cli.path import FilePath, make_out_dir
from opbsim.errors import InputError
from opbsim.report.calibration import write_report

__all__ = ["calibrate_cmd"]


@click.command("calibrate")
@click.option("--gpu", is_flag=True, help="Measure on the GPU (required: calibration is a measurement).")
@click.option("-d", "--device", default="h100", show_default=True, help="Device model to compare with.")
@click.option("-o", "--out-dir", type=FilePath(file_okay=False, path_type=Path), default=Path("docs"),
              show_default=True, help="Folder for calibration.md, .png and .json.")
@click.option("--quick", is_flag=True, help="Small shapes and few repeats: a smoke run, not a calibration.")
@click.option("--repeats", type=click.IntRange(1, 1000), default=20, show_default=True, help="Repeats per point.")
@click.option("--backend", type=click.Choice(("auto", "pycuda", "cupy")), default="auto", show_default=True,
              help="Which package compiles and launches the kernels.")
def calibrate_cmd(gpu: bool, device: str, out_dir: Path, quick: bool, repeats: int, backend: str) -> None:
    """Time GEMM / GEMV across Op/B and decode attention across group sizes on a GPU, and compare
    with the device model's per-op predictions."""
    from opbsim.hardware import get_device

    spec = get_device(device)
    if not gpu:
        raise InputError("calibrate measures on a GPU: pass --gpu")
    from opbsim.reference.pycuda_runner import GpuUnavailable, open_gpu
    from opbsim.reference.timing import attention_sweep, gemm_sweep

    try:
        ops = open_gpu(None if backend == "auto" else backend)
    except GpuUnavailable as e:
        raise InputError(f"calibrate --gpu: {e}") from None
    make_out_dir(out_dir)
    if quick:
        timings = gemm_sweep(ops, (1, 8, 64), 1024, 2048, min(repeats, 5))
        timings += attention_sweep(ops, (1, 4), 2, 512, 128, 2, min(repeats, 5))
    else:
        timings = gemm_sweep(ops, repeats=repeats) + attention_sweep(ops, repeats=repeats)
    paths = write_report(out_dir, ops.backend.info(), spec, timings)
    click.echo(paths[0].read_text(encoding="utf-8"))
    click.echo("wrote " + ", ".join(str(p) for p in paths))
