"""``opbsim validate --gpu``: every CUDA kernel against numerics.py, and whole layers against the
functional executor, bit for bit.

The layers are the programs ``opbsim validate`` runs (emulator/validation): each is executed
functionally as usual, its inputs and weights are read back from the executor's memory, the
same computation runs as the CUDA kernels composed in the program's order
(reference/layers.py), and every output is compared bit for bit with what the executor wrote.
Mismatches are reported with their coordinates and both values.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import click
import numpy as np

from opbsim.cli_path import bad_input
from opbsim.reference.compare import Comparison, compare
from opbsim.reference.interface import Ops
from opbsim.reference.layers import GQAWeights, MoEWeights, gqa_decode, gqa_prefill, moe_layer

__all__ = ["LayerCase", "layer_case", "run_layer", "validate_on_gpu"]


@dataclass(frozen=True)
class LayerCase:
    """One executed layer program: what its kernels composition needs, and what it wrote."""

    name: str
    shape: str
    run: Callable[[Ops], dict[str, np.ndarray]]
    expected: dict[str, np.ndarray]


def _moe_case(name: str, cfg, seed: int) -> LayerCase:
    from opbsim.emulator.validation import moe

    r = moe.run_moe(cfg, seed)

    def many(fmt: str, n: int) -> tuple[np.ndarray, ...]:
        return tuple(r.raw(fmt.format(i)) for i in range(n))

    w = MoEWeights(ln_w=r.raw("ln_w"), wr=r.raw("wr"), w1=many("w1_{}", cfg.experts), w3=many("w3_{}", cfg.experts),
                   w2=many("w2_{}", cfg.experts), sw1=many("sw1_{}", cfg.shared), sw3=many("sw3_{}", cfg.shared),
                   sw2=many("sw2_{}", cfg.shared))
    x = r.raw("x")
    expected = {k: r.raw(k) for k in ("y", "topi", "gates")}
    return LayerCase(name, cfg.shape, lambda ops: moe_layer(ops, x, w, cfg.top_k, cfg.eps), expected)


def _gqa_weights(r, cfg) -> GQAWeights:
    return GQAWeights(r.raw("ln_w"), r.raw("wq"), r.raw("wk"), r.raw("wv"), r.raw("wo"), cfg.heads, cfg.kv_heads,
                      cfg.head_dim, cfg.theta, cfg.eps)


def _decode_case(cfg, seed: int) -> LayerCase:
    from opbsim.emulator.validation import gqa

    r = gqa.run_decode(cfg, seed)
    w, x = _gqa_weights(r, cfg), r.raw("x")
    caches = [(r.raw(f"kc{s}")[:n], r.raw(f"vc{s}")[:n]) for s, n in enumerate(cfg.cache_lens)]
    expected = {"y": r.raw("y")}
    for s, n in enumerate(cfg.cache_lens):
        expected[f"kc{s}"] = r.raw(f"kc{s}")[n:n + 1]
        expected[f"vc{s}"] = r.raw(f"vc{s}")[n:n + 1]
    return LayerCase("gqa-decode", cfg.shape(True), lambda ops: gqa_decode(ops, x, w, caches), expected)


def _prefill_case(cfg, seed: int) -> LayerCase:
    from opbsim.emulator.validation import gqa

    r = gqa.run_prefill(cfg, seed)
    w, x = _gqa_weights(r, cfg), r.raw("x")
    expected = {"y": r.raw("y"), "kr": r.raw("kr"), "v": r.raw("v")}
    return LayerCase("gqa-prefill", cfg.shape(False), lambda ops: gqa_prefill(ops, x, w), expected)


def layer_case(name: str, cfg, seed: int) -> LayerCase:
    """Execute layer program ``name`` (moe, moe-shared, gqa-decode, gqa-prefill) functionally."""
    if name.startswith("moe"):
        return _moe_case(name, cfg, seed)
    return _decode_case(cfg, seed) if name == "gqa-decode" else _prefill_case(cfg, seed)


def run_layer(ops: Ops, case: LayerCase) -> list[Comparison]:
    """The layer's kernels on ``ops``, each output compared with the executor's."""
    got = case.run(ops)
    return [compare(f"{case.name}:{k}", got[k], want) for k, want in case.expected.items()]


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
        raise bad_input(f"GPU results differ from numerics.py / the executor in {', '.join(bad)}")


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
        lines.append(f"{case.name}: {case.shape}  (vs the functional executor)")
        lines += ["  " + line for o in outs for line in o.lines()]
    ok = all(c.bit_exact for c in kernels) and all(o.bit_exact for _, outs in layers for o in outs)
    lines.append("all GPU results bit-exact" if ok else "MISMATCH")
    return "\n".join(lines)
