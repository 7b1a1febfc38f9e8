"""``opbsim compile``: one serving stage of a model, compiled for a device by a placement policy."""

from __future__ import annotations

from pathlib import Path

import click

from opbsim.cli.device import device_of, device_options
from opbsim.cli.parallel import PARALLEL_HELP, layout_of
from opbsim.cli.path import FilePath
from opbsim.cli.stage_options import format_options
from opbsim.errors import InputError
from opbsim.fileio import atomic_write_bytes, atomic_write_text

__all__ = ["compile_cmd", "stage_of", "device_part"]


def device_part(cfg, spec, policy: str, parallel, stage, part: str, layer: int | None):
    """One of the graphs a device runs for ``stage`` under ``parallel`` (StageTimer.parts)."""
    from opbsim.emulator.cluster import Cluster
    from opbsim.emulator.stage_timer import Bucketing, StageTimer

    if layer is None:
        raise InputError(f"--layer is needed: under {parallel.label} a device runs one program per part "
                         "(--part layer, experts or head)")
    timer = StageTimer(cfg, Cluster(device=spec, policy=policy, parallel=parallel), bucketing=Bucketing(0))
    return timer.part(stage, part, layer)


def stage_of(kind: str, batch: int, ctx: int, prefill: int):
    """decode: ``batch`` decode tokens at context ``ctx``; mixed: the same plus one prefill chunk."""
    from opbsim.workloads import PrefillChunk, Stage

    if kind == "decode":
        return Stage.decode(batch, ctx)
    return Stage(prefill=(PrefillChunk(prefill or ctx),), decode_ctx_tokens=(ctx,) * batch)


@click.command("compile")
@click.argument("model")
@device_options
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True, help="Decoding requests.")
@click.option("--ctx", type=click.IntRange(min=1), default=1024, show_default=True, help="Context of each.")
@click.option("--stage", "kind", type=click.Choice(["decode", "mixed"]), default="decode", show_default=True,
              help="decode: BATCH decode tokens at context CTX; mixed: the same plus one prefill chunk.")
@click.option("--prefill", type=click.IntRange(min=0), default=0, help="Prompt tokens of the mixed stage's "
              "prefill chunk [default: CTX].")
@click.option("--tp", type=click.IntRange(1, 4096), help=PARALLEL_HELP["tp"] + " [default: with no layout flag, the "
              "fewest devices that hold the weights and the stage's KV cache]")
@click.option("--dp", type=click.IntRange(1, 4096), help=PARALLEL_HELP["dp"])
@click.option("--ep", type=click.IntRange(1, 4096), help=PARALLEL_HELP["ep"])
@click.option("--etp", type=click.IntRange(1, 4096), help=PARALLEL_HELP["etp"])
@click.option("--pp", type=click.IntRange(1, 4096), help=PARALLEL_HELP["pp"])
@click.option("--part", type=click.Choice(["layer", "experts", "head"]), default="layer", show_default=True,
              help="With experts exchanged (--ep > 1 or --dp > 1) or --pp > 1, a device runs several programs per "
                   "stage: which one to compile (the representative MoE layer without its experts, the device's "
                   "experts, or the embedding and LM head). Requires --layer to name the layer.")
@click.option("--layer", type=click.IntRange(min=0), default=None, help="Compile only this decoder layer.")
@click.option("-o", "--output", type=FilePath(dir_okay=False, path_type=Path),
              help="Write the program: assembly, or a binary when the name ends in .bin.")
@click.option("--explain", is_flag=True, help="Print each op, its Op/B, the unit chosen and why.")
@click.option("--dump-after", "dump_after", help="Print the intermediate form after this pass and stop.")
@format_options
def compile_cmd(model: str, device: str, policy: str | None, hw: tuple[str, ...], batch: int, ctx: int, kind: str,
                prefill: int, tp: int | None, dp: int | None, ep: int | None, etp: int | None, pp: int | None,
                part: str, layer: int | None, output: Path | None, explain: bool, dump_after: str | None,
                dtype: str | None, kv_dtype: str | None) -> None:
    """Compile one stage of MODEL (a preset, a config.json or a cached Hugging Face id) for a device:
    the program one device runs (its share of the stage under the layout given by --tp --dp --ep
    --etp --pp)."""
    from opbsim.compiler import PASS_NAMES, Source, Target, run_passes
    from opbsim.compiler.dump import dump
    from opbsim.compiler.dump import explain as explain_placement
    from opbsim.isa import disassemble, encode
    from opbsim.workloads import ModelGraph, build_layer, build_model, load_model

    if dump_after is not None and dump_after not in PASS_NAMES:
        raise click.BadParameter(f"{dump_after!r} is not a pass ({', '.join(PASS_NAMES)})", param_hint="--dump-after")
    spec, policy = device_of({"device": device, "policy": policy, "hw": hw})
    cfg = load_model(model, dtype=dtype, kv_dtype=kv_dtype)
    if layer is not None and layer >= cfg.num_layers:
        raise InputError(f"--layer {layer} is outside 0..{cfg.num_layers - 1} ({cfg.name})")
    stage = stage_of(kind, batch, ctx, prefill)
    flags = {"tp": tp, "dp": dp, "ep": ep, "etp": etp, "pp": pp, "parallel_spec": None, "node_size": None,
             "devices_per_node": None, "nodes": None}
    context = ctx + (prefill or ctx if kind == "mixed" else 0)
    parallel, _, note = layout_of(flags, cfg, spec, policy, context_tokens=context, batch=batch)
    tp = parallel.tp
    if parallel.dp == 1 and parallel.pp == 1 and (parallel.ep == 1 or not cfg.is_moe):
        if layer is None:
            graph = build_model(cfg, stage, tp=tp)
        else:  # that layer alone: the cost is the layer's, whatever the model's depth
            graph = ModelGraph(cfg, stage, tp, (), (build_layer(cfg, stage, layer, tp=tp),), ())
    else:
        graph = device_part(cfg, spec, policy, parallel, stage, part, layer)
    source = Source(graph, Target(spec, policy))
    if dump_after is not None:
        click.echo(dump(run_passes(source, dump_after)), nl=False)
        return
    compiled = run_passes(source)
    if explain:
        click.echo(explain_placement(compiled.placement), nl=False)
    if output is not None:
        if output.suffix == ".bin":
            atomic_write_bytes(output, encode(compiled.program))
        else:
            atomic_write_text(output, disassemble(compiled.program))
    program = compiled.program
    units: dict[str, int] = {}
    for inst in program.instructions:
        units[inst.unit.name.lower()] = units.get(inst.unit.name.lower(), 0) + 1
    per_unit = ", ".join(f"{u} {n}" for u, n in sorted(units.items()))
    where = f" -> {output}" if output else ""
    click.echo(f"{cfg.name} on {spec.name} ({policy}, {parallel.label}): {len(program.instructions)} instructions "
               f"({per_unit}), {len(program.descriptors)} descriptors{where}")
    if note:
        click.echo(note, err=True)
