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


_MAX_DIM = 65536
_MAX_GEMM_FLOP = 2**37  # ~137 GFLOP: the numpy definition, run once, takes 10-30 s at this size
_MAX_TIMED_FLOP = 2**39  # the exact GEMM and sgemm, each run reps + 1 times: a few seconds apiece
_MAX_BYTES = 2**32  # operands, their fp32 copies, the accumulator and the definition's temporaries


def _check_size(m: int, k: int, n: int, reps: int) -> None:
    """Refuse shapes whose run would take minutes or more memory than a workstation has."""
    flop = 2 * m * k * n
    nbytes = 6 * (m * k + k * n) + 16 * m * n
    if flop > _MAX_GEMM_FLOP:
        raise InputError(f"2 m k n = {flop:.3g} FLOP, more than the {_MAX_GEMM_FLOP:.3g} one run may take "
                         f"(the numpy definition runs at about 10 GFLOP/s): make the shape smaller")
    if flop * (reps + 1) > _MAX_TIMED_FLOP:
        raise InputError(f"2 m k n x (reps + 1) = {flop * (reps + 1):.3g} FLOP, more than {_MAX_TIMED_FLOP:.3g}: "
                         f"make --reps smaller")
    if nbytes > _MAX_BYTES:
        raise InputError(f"the operands of {m} x {k} x {n} need {nbytes / 2**30:.1f} GiB, more than the "
                         f"{_MAX_BYTES / 2**30:.0f} GiB a run may take: make the shape smaller")


@bench.command("exact")
@click.option("--m", "m", type=click.IntRange(1, _MAX_DIM), default=512, show_default=True, help="Rows of A.")
@click.option("--k", "k", type=click.IntRange(1, _MAX_DIM), default=1024, show_default=True,
              help="Reduction length.")
@click.option("--n", "n", type=click.IntRange(1, _MAX_DIM), default=1024, show_default=True, help="Columns of B.")
@click.option("--reps", type=click.IntRange(1, 100), default=3, show_default=True, help="Timed repetitions (best).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def exact_cmd(m: int, k: int, n: int, reps: int, as_json: bool) -> None:
    """Time the exact GEMM, numpy's sgemm and the numpy definition on one shape; check the bits.
    Exit status 1 when the exact result differs from the definition."""
    from opbsim.emulator.bench import bench_exact

    _check_size(m, k, n, reps)
    r = bench_exact(m, k, n, reps=reps)
    out = {"m": m, "k": k, "n": n, "exact_gflops": round(r.exact_gflops, 2), "sgemm_gflops": round(r.sgemm_gflops, 2),
           "numpy_definition_gflops": round(r.numpy_definition_gflops, 2),
           "ratio_vs_sgemm": round(r.ratio_vs_sgemm, 3), "bit_exact": r.bit_exact, "threads": r.threads,
           "load_average_1min": r.load_1min}
    if as_json:
        click.echo(json.dumps(out))
    else:
        click.echo(f"exact GEMM {m} x {k} x {n}: exact {out['exact_gflops']} GFLOP/s, numpy sgemm "
                   f"{out['sgemm_gflops']} GFLOP/s (ratio {out['ratio_vs_sgemm']}), numpy definition "
                   f"{out['numpy_definition_gflops']} GFLOP/s, bit-exact {r.bit_exact} ({r.threads} threads, "
                   f"load average {r.load_1min})")
    if not r.bit_exact:
        raise bad_input("the exact GEMM differs from the numerics definition")
