"""``opbsim validate --gpu``: every CUDA kernel against numerics.py, and whole layers against the
numerics definition, bit for bit.

The layers are the ones ``opbsim validate`` compiles (emulator/validation): each is compiled and
executed functionally as usual (the routing, inputs and weights are those of that run), then its
layer definitions run again with every instruction as CUDA kernels (emulator/ops_values.py), and
every output is compared bit for bit with the numerics definition. Mismatches are reported with
their coordinates and both values.
"""

from __future__ import annotations

import json

import click

from opbsim.cli.path import bad_input
from opbsim.emulator.validation.gpu_layers import layer_case, run_layer
from opbsim.reference.compare import Comparison

__all__ = ["validate_on_gpu"]


def validate_on_gpu(chosen: list[tuple[str, object]], seed: int, as_json: bool, backend: str | None = None) -> None:
    """Run the kernel checks and the chosen layers on the GPU; print; exit 1 on a mismatch.

    Without pycuda / cupy or without a GPU: one line on stderr and exit status 1.
    """
    from opbsim.reference.checks import run_checks
    from opbsim.reference.pycuda_runner import GpuUnavailable, open_gpu

    try:
        ops = open_gpu(backend)
    except GpuUnavailable as e:
        raise bad_input(f"validate --gpu: {e}") from None
    info = ops.backend.info()
    kernels = run_checks(ops, seed)
    layers = [(case, run_layer(ops, case)) for case in (layer_case(n, cfg, seed) for n, cfg in chosen)]
    if as_json:
        click.echo(json.dumps({"gpu": info, "kernels": [_as_dict(c) for c in kernels],
                               "layers": [{"layer": c.name, "shape": c.shape, "outputs": [_as_dict(o) for o in outs]}
                                          for c, outs in layers]}, indent=2, default=str))
    else:
        click.echo(_table(info, kernels, layers))
    bad = [c.name for c in kernels if not c.bit_exact] + [o.name for _, outs in layers for o in outs if not o.bit_exact]
    if bad:
        raise bad_input(f"GPU results differ from numerics.py / the numerics definition in {', '.join(bad)}")


def _as_dict(c: Comparison) -> dict:
    return {"name": c.name, "values": c.count, "bit_equal": c.equal, "bit_exact": c.bit_exact, "problem": c.problem,
            "mismatches": [{"index": list(m.index), "got_bits": m.got_bits, "want_bits": m.want_bits,
                            "got": m.got, "want": m.want} for m in c.mismatches]}


def _table(info: dict, kernels: list[Comparison], layers) -> str:
    head = (f"GPU: {info.get('name')} ({info.get('backend')}, {info.get('compute_capability', '?')}, "
            f"driver {info.get('driver', info.get('cuda_driver_api'))})")
    lines = [head, f"kernels vs numerics.py ({len(kernels)} checks):"]
    lines += ["  " + line for c in kernels for line in c.lines()]
    for case, outs in layers:
        lines.append(f"{case.name}: {case.shape}  (vs the numerics definition)")
        lines += ["  " + line for o in outs for line in o.lines()]
    ok = all(c.bit_exact for c in kernels) and all(o.bit_exact for _, outs in layers for o in outs)
    lines.append("all GPU results bit-exact" if ok else "MISMATCH")
    return "\n".join(lines)
