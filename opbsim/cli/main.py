"""The ``opbsim`` command line.

Exit status: 0 success, 1 bad input (a one-line message naming the problem), 2 usage error.
Output files are written atomically: a failed command leaves no partial file behind.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from opbsim import __version__
from opbsim.cli.bench import bench
from opbsim.cli.calibrate import calibrate_cmd
from opbsim.cli.capacity import capacity_cmd
from opbsim.cli.coe import coe_cmd
from opbsim.cli.compare import compare_cmd, demo_cmd
from opbsim.cli.compile import compile_cmd
from opbsim.cli.device import DEVICE_HELP, hw_option, spec_of
from opbsim.cli.devices import devices_group
from opbsim.cli.models import models_group
from opbsim.cli.path import FilePath, bad_input
from opbsim.cli.reproduce import reproduce
from opbsim.cli.rtl import rtl
from opbsim.cli.run import run_cmd
from opbsim.cli.simulate import simulate_cmd
from opbsim.cli.sweep import sweep_cmd
from opbsim.cli.validate import validate_cmd
from opbsim.errors import InputError
from opbsim.fileio import atomic_write_bytes, atomic_write_text
from opbsim.isa import assemble, decode, disassemble, encode
from opbsim.isa.docs import FORMATS, render
from opbsim.isa.loader import load_program

__all__ = ["main"]


class _Group(click.Group):
    """Turns input errors into one line on stderr and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except InputError as e:
            raise bad_input(str(e)) from None
        except BrokenPipeError:  # the reader went away (| head): nothing more to say
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the interpreter flushes it at exit
            raise SystemExit(0) from None
        except OSError as e:
            raise bad_input(f"{e.filename}: {e.strerror}" if e.filename else str(e)) from None


_IN_FILE = FilePath(exists=True, dir_okay=False, readable=True, path_type=Path)
_OUT_FILE = FilePath(dir_okay=False, writable=True, path_type=Path)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="opbsim")
def cli() -> None:
    """opbsim: Op/B-driven co-design emulator for MoE and GQA inference hardware."""


cli.add_command(rtl)
cli.add_command(validate_cmd)


@cli.command("isa")
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default="table", show_default=True,
              help="table: for reading; markdown: docs/isa.md; json; verilog: an include for RTL.")
@click.option("-o", "--output", type=_OUT_FILE, help="Write to this file instead of stdout.")
@click.option("--example", "example_dir", type=FilePath(file_okay=False, path_type=Path),
              help="Instead: take the example program through asm -> bin -> disasm -> asm into this folder.")
def isa_cmd(fmt: str, output: Path | None, example_dir: Path | None) -> None:
    """Print the instruction set, generated from its one table."""
    if example_dir is not None:
        from opbsim.report.isa_example import example_table, run_example

        result = run_example(example_dir)
        click.echo(example_table(result))
        if not result.round_trip_ok:
            raise bad_input("round trip failed: the decoded or reassembled program differs")
        return
    _emit(render(fmt), output)


@cli.command("asm")
@click.argument("source", type=_IN_FILE)
@click.option("-o", "--output", type=_OUT_FILE, help="Binary to write [default: SOURCE with .bin].")
def asm_cmd(source: Path, output: Path | None) -> None:
    """Assemble SOURCE (.s text) into a binary program."""
    program = assemble(_read_text(source), file=str(source))
    target = output or source.with_suffix(".bin")
    atomic_write_bytes(target, encode(program))
    click.echo(f"{target}: {len(program.instructions)} instructions, {len(program.descriptors)} descriptors")


@cli.command("disasm")
@click.argument("binary", type=_IN_FILE)
@click.option("-o", "--output", type=_OUT_FILE, help="Write the listing here instead of stdout.")
def disasm_cmd(binary: Path, output: Path | None) -> None:
    """Print the assembly of a binary program; it reassembles to the identical binary."""
    _emit(disassemble(decode(binary.read_bytes())), output)


@cli.command("time")
@click.argument("program", type=_IN_FILE)
@click.option("-d", "--device", required=True, help=DEVICE_HELP)
@hw_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--trace", type=_OUT_FILE, help="Write a Chrome/Perfetto trace of the timeline here.")
def time_cmd(program: Path, device: str, hw: tuple[str, ...], as_json: bool, trace: Path | None) -> None:
    """Time PROGRAM (.s or .bin) on a device with the discrete-event engine."""
    import json

    from opbsim.emulator.engine import run
    from opbsim.report.tables import timing_table
    from opbsim.report.trace import chrome_trace

    spec = spec_of(device, hw)
    stats = run(load_program(program.read_bytes(), str(program)), spec)
    if trace is not None:
        atomic_write_text(trace, chrome_trace(stats))
        click.echo(f"wrote {trace}", err=True)
    if as_json:
        click.echo(json.dumps({
            "device": stats.device, "time_s": stats.time_s, "energy_J": stats.energy_J, "flops": stats.flops,
            "busy_s": {u.name.lower(): t for u, t in stats.busy_s_by_unit},
            "bytes": {sp.name.lower(): n for sp, n in stats.bytes_by_space},
            "energy_J_by_group": {g.value: e for g, e in stats.energy_J_by_group},
            "energy_J_by_component": stats.energy.items(),
        }, indent=2))
    else:
        click.echo(timing_table(stats))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start})") from None


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
    else:
        atomic_write_text(output, text)
        click.echo(f"wrote {output}")


cli.add_command(models_group)
cli.add_command(devices_group)
cli.add_command(compile_cmd)
cli.add_command(bench)
cli.add_command(run_cmd)
cli.add_command(simulate_cmd)
cli.add_command(capacity_cmd)
cli.add_command(coe_cmd)
cli.add_command(reproduce)
cli.add_command(compare_cmd)
cli.add_command(demo_cmd)
cli.add_command(sweep_cmd)
cli.add_command(calibrate_cmd)


def main() -> None:
    cli(prog_name="opbsim")


if __name__ == "__main__":
    sys.exit(main())
