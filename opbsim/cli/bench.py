"""``opbsim bench``: speed measurements of opbsim's own kernels."""

from __future__ import annotations

import json

import click

from opbsim.cli.path import bad_input
from opbsim.errors import InputError

__all__ = ["bench"]


@click.group("bench")
def bench() -> None:
    """Measure opbsim's kernels on this machine."""


_MAX_WORK_FLOP = 2**35  # ~34 GFLOP: a few seconds of the numpy definition on 2 cores


@bench.command("exact")
@click.option("--m", "m", type=click.IntRange(1, 8192), default=512, show_default=True, help="Rows of A.")
@click.option("--k", "k", type=click.IntRange(1, 8192), default=1024, show_default=True, help="Reduction length.")
@click.option("--n", "n", type=click.IntRange(1, 8192), default=1024, show_default=True, help="Columns of B.")
@click.option("--reps", type=click.IntRange(1, 100), default=3, show_default=True, help="Timed repetitions (best).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def exact_cmd(m: int, k: int, n: int, reps: int, as_json: bool) -> None:
    """Time the exact GEMM, numpy's sgemm and the numpy definition on one shape; check the bits.
    Exit status 1 when the exact result differs from the definition."""
    from opbsim.emulator.bench import bench_exact

    work = 2 * m * k * n * reps
    if work > _MAX_WORK_FLOP:
        raise InputError(f"2 m k n x reps = {work:.3g} FLOP, more than the {_MAX_WORK_FLOP:.3g} a run may take "
                         f"(the numpy definition runs at about 10 GFLOP/s): make the shape or --reps smaller")
    r = bench_exact(m, k, n, reps=reps)
    out = {"m": m, "k": k, "n": n, "exact_gflops": round(r.exact_gflops, 2), "sgemm_gflops": round(r.sgemm_gflops, 2),
           "numpy_definition_gflops": round(r.numpy_definition_gflops, 2),
           "ratio_vs_sgemm": round(r.ratio_vs_sgemm, 3), "bit_exact": r.bit_exact}
    if as_json:
        click.echo(json.dumps(out))
    else:
        click.echo(f"exact GEMM {m} x {k} x {n}: exact {out['exact_gflops']} GFLOP/s, numpy sgemm "
                   f"{out['sgemm_gflops']} GFLOP/s (ratio {out['ratio_vs_sgemm']}), numpy definition "
                   f"{out['numpy_definition_gflops']} GFLOP/s, bit-exact {r.bit_exact}")
    if not r.bit_exact:
        raise bad_input("the exact GEMM differs from the numerics definition")
