"""The validation layers (emulator/validation) as cases for the GPU: each case's decoder layer is
compiled and executed functionally as ``opbsim validate`` does (so its inputs, weights and routing
are those the numerics definition computed with), then the layer definitions run again, each
instruction as kernels of an ``Ops`` (emulator/ops_values.py: CUDA kernels on a GPU, numerics.py
on the CPU), and every output is compared bit for bit with the numerics definition."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from opbsim.emulator import validation
from opbsim.emulator.ops_values import ops_stage_values
from opbsim.reference.compare import Comparison, compare
from opbsim.reference.interface import Ops

__all__ = ["LayerCase", "layer_case", "run_layer"]

Reader = Callable[[Callable[[str], np.ndarray]], np.ndarray]
"""An output of a case read from a stage's buffers: ``read(raw)`` with ``raw(name)`` a buffer's raw
storage, shaped as the program's view."""


@dataclass(frozen=True)
class LayerCase:
    """One validation layer, compiled and executed: ``run(ops)`` interprets its definitions on
    ``ops`` and returns its outputs (raw storage) by name; ``expected`` the numerics definition's."""

    name: str
    shape: str
    run: Callable[[Ops], dict[str, np.ndarray]]
    expected: dict[str, np.ndarray]


def _model_stage(name: str, cfg) -> tuple:
    if name.startswith("moe"):
        return cfg.model(), cfg.stage(), cfg.shape
    if name == "gqa-decode":
        return cfg.model(), cfg.decode_stage(), cfg.shape(True)
    return cfg.model(), cfg.prefill_stage(), cfg.shape(False)


def _cache_row(which: str, slot: int, rows: slice, cache_shape: tuple[int, ...]) -> Reader:
    return lambda raw: raw(f"L0.{which}_cache").reshape(cache_shape)[slot, rows].reshape(-1, math.prod(
        cache_shape[2:]))


def _outputs(name: str, cfg, cache_shape: tuple[int, ...]) -> dict[str, Reader]:
    """The outputs of case ``name`` by the names ``opbsim validate`` reports them under."""
    buffer: Callable[[str], Reader] = lambda n: lambda raw: raw(n)  # noqa: E731
    if name.startswith("moe"):
        return {"h": buffer("L0.h"), "y": buffer("L0.ffn_out"), "topi": buffer("L0.topk_ids"),
                "gates": buffer("L0.topk_weights")}
    out = {"y": buffer("L0.h")}
    if name == "gqa-decode":
        for s, n in enumerate(cfg.cache_lens):
            out[f"kc{s}"] = _cache_row("k", s, slice(n, n + 1), cache_shape)
            out[f"vc{s}"] = _cache_row("v", s, slice(n, n + 1), cache_shape)
    else:
        out["kr"] = _cache_row("k", 0, slice(0, cfg.prefill_tokens), cache_shape)
        out["v"] = _cache_row("v", 0, slice(0, cfg.prefill_tokens), cache_shape)
    return {**out, "ffn_out": buffer("L0.ffn_out")}


def layer_case(name: str, cfg, seed: int) -> LayerCase:
    """Compile and execute validation layer ``name`` (moe, moe-shared, gqa-decode, gqa-prefill)
    of sizes ``cfg`` (a MoEConfig or GQAConfig) with ``seed``'s weights and inputs."""
    model, stage, shape = _model_stage(name, cfg)
    run = validation.compiled_layer(model, stage, seed)
    outputs = _outputs(name, cfg, run.k_bits.shape)
    expected = {o: read(lambda n: validation.expected(run, n)) for o, read in outputs.items()}

    def on(ops: Ops) -> dict[str, np.ndarray]:
        got = ops_stage_values(ops, model, stage, run.weights.bits_or_none, layers=(0,), stream=run.stream_bits,
                               delta=run.delta_bits, caches={0: (run.k_bits.copy(), run.v_bits.copy())})
        return {o: read(lambda n: got.raw(n).reshape(run.got(n).shape)) for o, read in outputs.items()}

    return LayerCase(name, shape, on, expected)


def run_layer(ops: Ops, case: LayerCase) -> list[Comparison]:
    """The layer's definitions on ``ops``, each output compared with the numerics definition's."""
    got = case.run(ops)
    return [compare(f"{case.name}:{k}", got[k], want) for k, want in case.expected.items()]
