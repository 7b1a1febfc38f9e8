"""``opbsim devices``: list the registered devices; ``show`` every field of one, ``export`` a device
file to start from."""

from __future__ import annotations

import json
from pathlib import Path

import click

from opbsim.cli.device import hw_option, spec_of
from opbsim.cli.path import FilePath
from opbsim.fileio import atomic_write_text

__all__ = ["devices_group"]


@click.group("devices", invoke_without_command=True)
@click.pass_context
def devices_group(ctx: click.Context) -> None:
    """List the registered devices: units, channel bandwidths and sources."""
    if ctx.invoked_subcommand is not None:
        return
    from opbsim.hardware import device_names, get_device
    from opbsim.report.tables import devices_table

    click.echo(devices_table([get_device(n) for n in device_names()]))


@devices_group.command("show")
@click.argument("device")
@hw_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (every field, nested).")
def show_cmd(device: str, hw: tuple[str, ...], as_json: bool) -> None:
    """Every field of DEVICE (a name or a device file) with its unit, its hardware parameters
    (the --hw vocabulary) and its sources."""
    from opbsim.compiler.policies import default_policy
    from opbsim.hardware.describe import as_dict, field_rows
    from opbsim.hardware.params import hw_params, read_hw
    from opbsim.report.tables import format_table

    spec = spec_of(device, hw)
    params = read_hw(spec)
    if as_json:
        click.echo(json.dumps({"device": as_dict(spec), "default_policy": default_policy(spec), "hw": params},
                              indent=2, ensure_ascii=False))
        return
    click.echo(f"{spec.name}: device model {spec.model.name}, default policy {default_policy(spec)}\n"
               f"sources: {spec.source}\n")
    click.echo(format_table(("hardware parameter (--hw)", "value", "what"),
                            [(k, f"{v:.6g}", hw_params(spec)[k].doc) for k, v in params.items()]))
    click.echo()
    click.echo(format_table(("field", "value", "unit"), field_rows(spec)))


@devices_group.command("export")
@click.argument("device")
@click.option("-o", "--output", type=FilePath(dir_okay=False, path_type=Path),
              help="Write the device file here (.json) [default: print it].")
@click.option("--name", help="Name of the new device [default: DEVICE-custom].")
def export_cmd(device: str, output: Path | None, name: str | None) -> None:
    """A device file for DEVICE with every hardware parameter it takes: edit hw, then pass the file
    as -d FILE.json."""
    from opbsim.cli.path import check_output
    from opbsim.hardware import get_device
    from opbsim.hardware.device_file import device_file

    if output is not None:
        check_output(output)
    spec = get_device(device)
    text = json.dumps(device_file(spec, name or f"{spec.name}-custom"), indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    atomic_write_text(output, text)
    click.echo(f"wrote {output}")
