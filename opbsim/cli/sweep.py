"""``opbsim sweep``: a grid of serving configurations into one results table, on local processes
or a Dask cluster, resumable after a crash."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from opbsim.cli.path import FilePath
from opbsim.errors import InputError

__all__ = ["sweep_cmd"]


@click.command("sweep")
@click.argument("sweep_file", type=FilePath(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("-o", "--output", type=FilePath(dir_okay=False, path_type=Path), required=True,
              help="Results table: .csv, or .parquet (needs pyarrow). Rows already there are not run again.")
@click.option("--workers", type=int, help="Local worker processes [default: the CPU count; 1: in this process].")
@click.option("--scheduler", metavar="ADDRESS",
              help="Run on a Dask distributed cluster (e.g. tcp://host:8786; needs the cluster extra).")
@click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")
def sweep_cmd(sweep_file: Path, output: Path, workers: int | None, scheduler: str | None, no_progress: bool) -> None:
    """Run every configuration of SWEEP_FILE (YAML or JSON; see docs/tutorial.md) and append one
    row per configuration to the results table as it finishes. A configuration that fails is
    recorded with its error; a killed sweep, run again, resumes where it stopped."""
    from opbsim.report.sweep_run import run_sweep
    from opbsim.report.sweep_spec import load_sweep

    if workers is not None and scheduler is not None:
        raise InputError("--workers sets the local pool; with --scheduler the cluster's workers run the sweep")
    configs = load_sweep(sweep_file)
    bar = None

    def start(n: int) -> None:
        nonlocal bar
        if n and not no_progress and sys.stderr.isatty():
            bar = click.progressbar(length=n, label="sweep", file=sys.stderr, show_pos=True)
            bar.__enter__()

    def row(r: dict) -> None:
        if bar is not None:
            bar.update(1)

    try:
        summary = run_sweep(configs, output, workers=workers, scheduler=scheduler, on_start=start, on_row=row)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    click.echo(f"{output}: {summary.total} configurations; {summary.skipped} already there, {summary.ran} run, "
               f"{summary.failed} failed (see the error column)"
               + (f"; {summary.dropped} corrupt or torn rows dropped and run again" if summary.dropped else ""))
