"""``opbsim compile``: one serving stage of a model, compiled for a device by a placement policy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from opbsim.errors import InputError
from opbsim.fileio import atomic_write_bytes, atomic_write_text

__all__ = ["compile_cmd", "stage_of"]


def stage_of(kind: str, batch: int, ctx: int, prefill: int):
    """decode: ``batch`` decode tokens at context ``ctx``; mixed: the same plus one prefill chunk."""
    from opbsim.workloads import PrefillChunk, Stage

    if kind == "decode":
        return Stage.decode(batch, ctx)
    return Stage(prefill=(PrefillChunk(prefill or ctx),), decode_ctx_tokens=(ctx,) * batch)


@click.command("compile")
@click.argument("model")
@click.option("-d", "--device", required=True, help="Device preset (see `opbsim devices`).")
@click.option("-p", "--policy", default="duplex", show_default=True, help="Placement policy.")
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True, help="Decoding requests.")
@click.option("--ctx", type=click.IntRange(min=1), default=1024, show_default=True, help="Context of each.")
@click.option("--stage", "kind", type=click.Choice(["decode", "mixed"]), default="decode", show_default=True)
@click.option("--prefill", type=click.IntRange(min=0), default=0, help="Prompt tokens of the mixed stage's "
              "prefill chunk [default: CTX].")
@click.option("--tp", type=click.IntRange(min=1), default=1, show_default=True, help="Tensor-parallel devices.")
@click.option("--layer", type=click.IntRange(min=0), default=None, help="Compile only this decoder layer.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the program: assembly, or a binary when the name ends in .bin.")
@click.option("--explain", is_flag=True, help="Print each op, its Op/B, the unit chosen and why.")
@click.option("--dump-after", "dump_after", help="Print the intermediate form after this pass and stop.")
def compile_cmd(model: str, device: str, policy: str, batch: int, ctx: int, kind: str, prefill: int, tp: int,
                layer: int | None, output: Path | None, explain: bool, dump_after: str | None) -> None:
    """Compile one stage of MODEL (a preset or a config.json) for a device."""
    from opbsim.compiler import PASS_NAMES, Source, Target, run_passes
    from opbsim.compiler.dump import dump
    from opbsim.compiler.dump import explain as explain_placement
    from opbsim.hardware import get_device
    from opbsim.isa import disassemble, encode
    from opbsim.workloads import build_model, load_model

    if dump_after is not None and dump_after not in PASS_NAMES:
        raise click.BadParameter(f"{dump_after!r} is not a pass ({', '.join(PASS_NAMES)})", param_hint="--dump-after")
    cfg = load_model(model)
    graph = build_model(cfg, stage_of(kind, batch, ctx, prefill), tp=tp)
    if layer is not None:
        if layer >= cfg.num_layers:
            raise InputError(f"--layer {layer} is outside 0..{cfg.num_layers - 1} ({cfg.name})")
        graph = replace(graph, prologue=(), layers=(graph.layers[layer],), epilogue=())
    source = Source(graph, Target(get_device(device), policy))
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
    click.echo(f"{cfg.name} on {device} ({policy}): {len(program.instructions)} instructions ({per_unit}), "
               f"{len(program.descriptors)} descriptors{where}")
