"""``opbsim validate``: real layers compiled and executed functionally, bit for bit against the numerics
definition."""

from __future__ import annotations

import json

import click

from opbsim.cli.path import bad_input

__all__ = ["validate_cmd"]

_LAYER_NAMES = ("moe", "moe-shared", "gqa-decode", "gqa-prefill")


def _lengths(text: str) -> tuple[int, ...]:
    from opbsim.errors import InputError

    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--ctx must be comma-separated integers, got {text!r}") from None
    return values


@click.command("validate")
@click.option("--layer", type=click.Choice(("all",) + _LAYER_NAMES), default="all", show_default=True,
              help="Which layer to compile and run.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Seed of the random weights and inputs.")
@click.option("--tokens", type=int, default=16, show_default=True, help="MoE tokens; prefill tokens.")
@click.option("--hidden", type=int, default=256, show_default=True, help="Hidden size H.")
@click.option("--ffn", type=int, default=512, show_default=True,
              help="FFN size F: each expert's (MoE), the dense FFN's (GQA layers).")
@click.option("--experts", type=int, default=8, show_default=True, help="Routed experts E.")
@click.option("--top-k", type=int, default=2, show_default=True, help="Experts per token.")
@click.option("--heads", type=int, default=4, show_default=True, help="Query heads.")
@click.option("--kv-heads", type=int, default=2, show_default=True, help="Key/value heads.")
@click.option("--head-dim", type=int, default=64, show_default=True, help="Head size Dh.")
@click.option("--ctx", default="37,100", show_default=True,
              help="Decode: KV-cache length of each sequence, comma-separated.")
@click.option("--max-mib", type=click.IntRange(1, 4096), default=64, show_default=True,
              help="Refuse layers whose weights, caches and scores exceed this many MiB: a run holds up to about "
                   "20x this and takes about 0.2 s per MiB on the CPU (exact numerics).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--gpu", is_flag=True, help="Run every CUDA kernel and the layers' definitions on a GPU instead, bit "
              "for bit against numerics.py and the numerics definition (needs pycuda or cupy and a GPU; exit 1 "
              "without).")
@click.option("--backend", type=click.Choice(("auto", "pycuda", "cupy")), default="auto", show_default=True,
              help="With --gpu: which package compiles and launches the kernels.")
def validate_cmd(layer: str, seed: int, tokens: int, hidden: int, ffn: int, experts: int, top_k: int,
                 heads: int, kv_heads: int, head_dim: int, ctx: str, max_mib: int, as_json: bool, gpu: bool,
                 backend: str) -> None:
    """Compile a Mixtral-shaped MoE decoder layer and Llama-shaped GQA decoder layers (decode, prefill)
    at reduced sizes and run them on the functional executor.

    Each output is compared bit for bit with the numerics definition (the layer definitions executed
    instruction by instruction), and against a float64 golden layer (max|y-g|/max|g|,
    mean|y-g|/mean|g|). Exit status 1 on any bit mismatch.
    """
    from opbsim.emulator.validation import validate_gqa_decode, validate_gqa_prefill, validate_moe
    from opbsim.emulator.validation.gqa import GQAConfig
    from opbsim.emulator.validation.moe import MoEConfig
    from opbsim.errors import InputError

    names = _LAYER_NAMES if layer == "all" else (layer,)

    def moe_cfg(shared: int) -> MoEConfig:
        return MoEConfig(tokens=tokens, hidden=hidden, ffn=ffn, experts=experts, top_k=top_k,
                         shared=shared, shared_ffn=ffn)

    def gqa_cfg() -> GQAConfig:
        return GQAConfig(hidden=hidden, heads=heads, kv_heads=kv_heads, head_dim=head_dim,
                         cache_lens=_lengths(ctx), prefill_tokens=tokens, ffn=ffn)

    configs = {"moe": lambda: moe_cfg(0), "moe-shared": lambda: moe_cfg(1), "gqa-decode": gqa_cfg,
               "gqa-prefill": gqa_cfg}
    runs = {"moe": validate_moe, "moe-shared": validate_moe, "gqa-decode": validate_gqa_decode,
            "gqa-prefill": validate_gqa_prefill}
    chosen = [(name, configs[name]()) for name in names]
    for name, cfg in chosen:
        if cfg.footprint_B() > max_mib * 2**20:
            raise InputError(f"{name} at these sizes needs {cfg.footprint_B() / 2**20:,.0f} MiB, over --max-mib "
                             f"{max_mib}")
    if gpu:
        from opbsim.cli.validate_gpu import validate_on_gpu

        validate_on_gpu(chosen, seed, as_json, None if backend == "auto" else backend)
        return
    reports = [runs[name](seed, cfg) for name, cfg in chosen]
    if as_json:
        click.echo(json.dumps([_as_dict(r) for r in reports], indent=2))
    else:
        click.echo(_table(reports))
    bad = [f"{r.layer}:{o.name}" for r in reports for o in r.outputs if not o.bit_exact]
    if bad:
        raise bad_input(f"bit mismatch against numerics.py in {', '.join(bad)}")


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2e}"


def _table(reports) -> str:
    head = f"{'output':<14} {'bit-exact vs numerics.py':<26} {'max rel err':>11} {'mean rel err':>12}"
    lines = []
    for r in reports:
        lines.append(f"{r.layer}: {r.shape}  ({r.instructions} instructions, {r.seconds:.2f} s)")
        lines.append("  " + head)
        for o in r.outputs:
            verdict = f"{'yes' if o.bit_exact else 'NO'} ({o.equal}/{o.count})"
            lines.append(f"  {o.name:<14} {verdict:<26} {_fmt(o.max_rel):>11} {_fmt(o.mean_rel):>12}")
        lines.extend(f"  note: {n}" for n in r.notes)
    ok = all(r.bit_exact for r in reports)
    lines.append(f"{'all outputs bit-exact' if ok else 'MISMATCH'}: errors are against the float64 golden layers")
    return "\n".join(lines)


def _as_dict(r) -> dict:
    return {
        "layer": r.layer, "shape": r.shape, "instructions": r.instructions, "seconds": r.seconds,
        "bit_exact": r.bit_exact, "notes": r.notes,
        "outputs": [{"name": o.name, "values": o.count, "bit_equal": o.equal, "max_rel_err": o.max_rel,
                     "mean_rel_err": o.mean_rel} for o in r.outputs],
    }
