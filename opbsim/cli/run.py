"""``opbsim run``: one full-size decoder layer compiled, executed exactly and checked bit for bit."""

from __future__ import annotations

import json
import resource

import click

from opbsim.cli.device import DEVICE_HELP, POLICY_HELP, device_of, hw_option
from opbsim.cli.path import bad_input
from opbsim.cli.progress import progress_bar, progress_option

__all__ = ["run_cmd"]


_ERROR_KEYS = {f"{what}_{tail}" for what in ("attention", "ffn")
               for tail in ("rel_error_max", "rel_error_mean", "unchecked")}


def _text_lines(summary: dict, errors: dict) -> list[tuple[str, object]]:
    """The summary for people: each golden error labelled with its norm (``MAX_NORM``,
    ``MEAN_NORM``), or one ``n/a (reason)`` line where the golden layer does not check it."""
    from opbsim.emulator.layer_check import MAX_NORM, MEAN_NORM

    lines = [(k, v) for k, v in summary.items() if k not in _ERROR_KEYS]
    for what, error in errors.items():
        if error.unchecked:
            lines.append((f"{what} error vs float64", error.describe("max")))
        else:
            lines += [(f"{what} error {MAX_NORM}", error.describe("max")),
                      (f"{what} error {MEAN_NORM}", error.describe("mean"))]
    return lines


def _golden_rows(spec: str) -> int | None:
    """``--golden``: a positive row count, or None for 'all'."""
    from opbsim.errors import InputError

    if spec == "all":
        return None
    if not spec.isdigit() or int(spec) < 1:
        raise InputError(f"--golden {spec[:40]!r}: expected a positive number of rows or 'all'")
    return int(spec)


@click.command("run")
@click.argument("model")
@click.option("--layer", type=click.IntRange(min=0), default=0, show_default=True, help="Decoder layer.")
@click.option("--batch", type=click.IntRange(min=1), default=64, show_default=True, help="Decoding requests.")
@click.option("--ctx", type=click.IntRange(min=2), default=1024, show_default=True, help="Context of each.")
@click.option("-d", "--device", default="duplex", show_default=True, help=DEVICE_HELP)
@click.option("-p", "--policy", help=POLICY_HELP)
@hw_option
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
              help="Seed of the random weights and inputs.")
@click.option("--rtl", "rtl_lanes", type=click.IntRange(1, 256), default=None, metavar="LANES",
              help="Run the program's PIM GEMMs on the RTL Logic-PIM unit with LANES lanes (needs [rtl]).")
@click.option("--golden", "golden_spec", default="8", show_default=True, metavar="ROWS|all",
              help="Tokens whose results the float64 golden layer checks, drawn by --seed; 'all' for every one "
                   "(every output is compared bit for bit either way).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@progress_option
def run_cmd(model: str, layer: int, batch: int, ctx: int, device: str, policy: str | None, hw: tuple[str, ...],
            seed: int, rtl_lanes: int | None, golden_spec: str, as_json: bool, no_progress: bool) -> None:
    """Compile one decoder layer of MODEL for a decode stage, run it on the functional executor with
    seeded random weights, and check every output bit for bit against the numerics definition
    (and its error against the float64 golden layer). Exit status 1 on any mismatch."""
    from opbsim.emulator.layer_check import CHECK_STEPS, check_layer
    from opbsim.workloads import Stage, load_model

    golden_rows = _golden_rows(golden_spec)
    spec, policy = device_of({"device": device, "policy": policy, "hw": hw})
    cfg = load_model(model)
    with progress_bar(CHECK_STEPS, "run", enabled=not no_progress) as step:
        result = check_layer(cfg, layer, Stage.decode(batch, ctx), spec, policy, seed, rtl_lanes, on_step=step,
                             golden_rows=golden_rows)
    peak_GiB = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    summary = {
        "model": result.model, "layer": result.layer, "instructions": result.instructions,
        "bit_exact": result.bit_exact, "outputs_checked": list(result.outputs_checked),
        "mismatches": list(result.mismatches), "generate_s": round(result.generate_s, 3),
        "reference_s": round(result.reference_s, 3), "compile_s": round(result.compile_s, 3),
        "execute_s": round(result.execute_s, 3), "golden_s": round(result.golden_s, 3),
        "attention_rel_error_max": result.attention_error.max_rel,
        "attention_rel_error_mean": result.attention_error.mean_rel,
        "attention_unchecked": result.attention_error.unchecked,
        "ffn_rel_error_max": result.ffn_error.max_rel, "ffn_rel_error_mean": result.ffn_error.mean_rel,
        "ffn_unchecked": result.ffn_error.unchecked,
        "golden_rows": f"{len(result.golden_rows)} of {batch} (seed {result.golden_seed}): "
                       f"{', '.join(map(str, result.golden_rows))}" if len(result.golden_rows) < batch else
                       f"all {batch}",
        "peak_memory_GiB": round(peak_GiB, 2),
    }
    if rtl_lanes:
        summary.update(rtl_lanes=rtl_lanes, rtl_gemm_tiles=result.rtl_tiles, rtl_cycles=result.rtl_cycles)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        lines = _text_lines(summary, {"attention": result.attention_error, "ffn": result.ffn_error})
        width = max(len(k) for k, _ in lines)
        click.echo("\n".join(f"{k:<{width}}  {v}" for k, v in lines))
    if not result.bit_exact:
        raise bad_input(f"outputs differ from the numerics definition: {', '.join(result.mismatches)}")
