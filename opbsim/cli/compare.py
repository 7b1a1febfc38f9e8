"""``opbsim compare`` (one model on several devices: a table and plots) and ``opbsim demo`` (the
same on the embedded default, into a report folder). Progress goes to stderr as a bar."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import click

from opbsim.cli.device import hw_of, hw_option
from opbsim.cli.parallel import layout_given, parallel_of, parallel_options
from opbsim.cli.path import FilePath, make_out_dir
from opbsim.cli.progress import progress_bar
from opbsim.cli.stage_options import (
    buckets_option,
    cuda_graphs_option,
    format_options,
    preemption_of,
    preemption_option,
    prefill_chunk_option,
)
from opbsim.errors import InputError

__all__ = ["compare_cmd", "demo_cmd"]


def _int_list(option: str, text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"{option} {text!r}: expected positive integers separated by commas") from None
    if not values or any(v < 1 for v in values):
        raise InputError(f"{option} {text!r}: expected positive integers separated by commas")
    return values


@contextmanager
def _removed_on_failure(folder: Path | None):
    """Remove ``folder`` (made by this command) when the block fails while it is still empty."""
    try:
        yield
    except BaseException:
        if folder is not None and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise


def _smallest_common_layout(settings, cfg, plans):
    """``settings`` with the smallest tensor-parallel degree that holds the model and the headline
    batch on every device that can hold it at all (the same layout for all), and a note saying so."""
    from dataclasses import replace

    from opbsim.cli.parallel import layout_text
    from opbsim.emulator.cluster import smallest_tp

    context = settings.lin + settings.lout + int(3 * (settings.lin_std + settings.lout_std))
    fits = [smallest_tp(cfg, p.spec, p.policy, context_tokens=context, batch=settings.batch,
                        node_devices=settings.node_devices) for p in plans]
    held = [c for c in fits if c is not None]
    if not held or max(c.parallel.devices for c in held) == 1:
        return settings, ""
    chosen = max(held, key=lambda c: (c.parallel.devices, c.parallel.tp))
    shown_nodes = settings.node_devices or (chosen.devices_per_node if chosen.parallel.dp > 1 else 0)
    return replace(settings, parallel=chosen.parallel, node_devices=shown_nodes), (
        f"layout: {layout_text(chosen.parallel)}, the fewest devices that hold {cfg.name}'s weights and the KV cache "
        f"of {settings.batch} requests of {context} tokens on every device that can (give --tp to choose)")


def _policies(pairs: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    out = []
    for p in pairs:
        device, sep, policy = p.partition("=")
        if not sep or not device or not policy:
            raise InputError(f"--policy {p!r}: expected DEVICE=POLICY, e.g. duplex=duplex-no-pe")
        out.append((device, policy))
    return tuple(out)


@click.command("compare")
@click.argument("model")
@click.option("--devices", default="h100,duplex,bank-pim,sn40l", show_default=True,
              help="Device presets to compare, separated by commas (see `opbsim devices`); DEVICE:POLICY runs a "
                   "device under a given policy, so one device may appear under several "
                   "(duplex:duplex,duplex:duplex-no-pe).")
@click.option("-p", "--policy", "policy", multiple=True, metavar="DEVICE=POLICY",
              help="Placement policy of the entries of DEVICE in --devices that name none (repeatable) "
                   "[default: the policy named after the device, "
                   "else duplex with PIM, sn40l on a dataflow device, else xpu-only].")
@hw_option
@parallel_options
@click.option("--batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="The headline batch (table, percentiles, energy, breakdown).")
@click.option("--batches", default="8,16,32,64,128", show_default=True, help="Batches of the throughput curve.")
@click.option("--lin", type=click.IntRange(min=1), default=1024, show_default=True, help="Prompt tokens.")
@click.option("--lout", type=click.IntRange(min=1), default=1024, show_default=True, help="Output tokens.")
@click.option("--lin-std", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Standard deviation of Gaussian prompt lengths (0: fixed).")
@click.option("--lout-std", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Standard deviation of Gaussian output lengths (0: fixed).")
@click.option("--requests-per-slot", type=click.IntRange(min=1), default=1, show_default=True,
              help="Requests per batch slot: each run serves this x batch requests (closed loop).")
@prefill_chunk_option
@preemption_option
@cuda_graphs_option
@buckets_option
@format_options
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the request lengths and random routing.")
@click.option("-o", "--out-dir", type=FilePath(file_okay=False, path_type=Path),
              help="Also write the report folder (report.md, report.json, PNG plots, traces) here.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON object instead of the table.")
@click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")
def compare_cmd(model: str, devices: str, policy: tuple[str, ...], hw: tuple[str, ...], batch: int, batches: str,
                lin: int, lout: int, lin_std: float, lout_std: float, requests_per_slot: int, prefill_chunk: int,
                preemption: str, cuda_graphs: bool, buckets: int, seed: int, out_dir: Path | None, as_json: bool,
                no_progress: bool, dtype: str | None, kv_dtype: str | None, **layout) -> None:
    """Compare MODEL (a preset, a config.json or a cached Hugging Face id) served on several devices.

    Every device runs the same layout (--tp --dp --ep --etp --pp, as for simulate).

    A device that cannot run the configuration (it does not fit, the compiler cannot lower the
    model for it) stays in the table and the plots with its reason."""
    from opbsim.report.compare import CompareSettings, DeviceEntry, compare, steps_of
    from opbsim.report.compare_render import comparison_json, comparison_table
    from opbsim.report.demo import write_report

    names = tuple(DeviceEntry.parse(d) for d in devices.split(",") if d.strip())
    given = layout_given(layout)
    parallel, node_devices = parallel_of(layout)
    settings = CompareSettings(model=model, devices=names, policies=_policies(policy), hw=tuple(hw_of(hw).items()),
                               parallel=parallel,
                               node_devices=node_devices, batch=batch,
                               batches=_int_list("--batches", batches), lin=lin, lout=lout, lin_std=lin_std,
                               lout_std=lout_std, requests_per_slot=requests_per_slot, prefill_chunk=prefill_chunk,
                               preemption=preemption_of(preemption), cuda_graphs=cuda_graphs, buckets=buckets,
                               seed=seed, dtype=dtype, kv_dtype=kv_dtype)
    from opbsim.report.compare import resolve
    from opbsim.report.plots import PLOTS

    cfg, plans = resolve(settings)  # an unknown model, device or policy fails before the progress bar and the folder
    note = ""
    if not given:
        settings, note = _smallest_common_layout(settings, cfg, plans)
    made = out_dir is not None and not out_dir.exists()
    if out_dir is not None:
        make_out_dir(out_dir)
    steps = steps_of(settings) + (len(PLOTS) if out_dir is not None else 0)
    with _removed_on_failure(out_dir if made else None), \
            progress_bar(steps, "comparing", enabled=not no_progress) as step:
        comp = compare(settings, on_step=step)
        if all(r.result is None for r in comp.runs):
            first = comp.runs[0]
            raise InputError(f"no device could run this configuration ({first.label}: {first.error})")
        if out_dir is not None:
            write_report(comp, out_dir, title=f"{comp.model.name} on {', '.join(r.label for r in comp.runs)}",
                         on_step=step)
    click.echo(comparison_json(comp) if as_json else comparison_table(comp))
    if out_dir is not None and not as_json:
        click.echo(f"\nwrote {out_dir}/report.md, report.json and the plots")
    if note:
        click.echo(note, err=True)


@click.command("demo")
@click.option("-o", "--out-dir", type=FilePath(file_okay=False, path_type=Path), default=Path("opbsim-demo"),
              show_default=True, help="Folder for the report.")
@click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")
def demo_cmd(out_dir: Path, no_progress: bool) -> None:
    """The main job on the embedded default: Mixtral-8x7B, 1 node x 4 devices, batch 64, 1024 in /
    1024 out, on h100, duplex and sn40l; prints a summary table and writes a report folder."""
    from opbsim.report.compare_render import comparison_table
    from opbsim.report.demo import demo_steps, run_demo

    make_out_dir(out_dir)
    with progress_bar(demo_steps(), "demo", enabled=not no_progress) as step:
        result = run_demo(out_dir, on_step=step)
    click.echo(comparison_table(result.comparison))
    for note in result.notes:
        click.echo(f"note: {note}")
    click.echo(f"\nwrote {out_dir}/report.md (with {sum(p.suffix == '.png' for p in result.files)} plots), "
               f"report.json and traces in {result.wall_s:.1f} s")
