"""The validation layer programs (emulator/validation) as cases for the GPU: each program executed
functionally, its inputs and weights read back from the executor's memory, the same computation
composed from the kernels in the program's order (reference/layers.py) on any ``Ops``, and every
output compared bit for bit with what the executor wrote."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from opbsim.reference.compare import Comparison, compare
from opbsim.reference.interface import Ops
from opbsim.reference.layers import GQAWeights, MoEWeights, gqa_decode, gqa_prefill, moe_layer

__all__ = ["LayerCase", "layer_case", "run_layer"]


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
