"""``opbsim validate``: real layers at reduced sizes, compiled by the normal compiler, executed on
the functional executor, checked bit for bit against the numerics definition and measured
against float64.

Each case builds a one-layer model of its shape (moe.py, gqa.py), compiles its decoder layer for
``DEVICE`` with ``POLICY`` (a MoE layer specialised on the routing the numerics definition
computes) and executes it with seeded weights and inputs (emulator/layer_check.run_layer). Every
output the program writes is compared bit for bit with the layer definitions executed by
layer_values.py (``expected``); the error of each against the float64 golden layer (golden.py)
is measured on every token.

``LAYERS`` maps a case name to a function ``(seed) -> LayerReport``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from opbsim.emulator import golden
from opbsim.emulator.layer_check import LayerRun, run_layer
from opbsim.emulator.layer_golden import gqa_weights, moe_weights
from opbsim.emulator.validation import gqa, moe
from opbsim.emulator.validation.report import LayerReport, OutputCheck, bf16_to_f64, check_output
from opbsim.hardware import get_device
from opbsim.isa import numerics as N
from opbsim.isa.types import DType
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.stage import Stage

__all__ = ["LAYERS", "DEVICE", "POLICY", "LayerReport", "OutputCheck", "compiled_layer", "expected",
           "validate_moe", "validate_gqa_decode", "validate_gqa_prefill"]

DEVICE, POLICY = "duplex", "duplex"
"""The device the cases are compiled for: its GEMMs split between PIM row tiles and the xPU, the
placement that most changes a program (and so checks most of the compiler)."""


def compiled_layer(model: ModelConfig, stage: Stage, seed: int) -> LayerRun:
    """Decoder layer 0 of ``model`` compiled for ``DEVICE`` / ``POLICY`` and executed."""
    return run_layer(model, 0, stage, get_device(DEVICE), POLICY, seed)


def expected(run: LayerRun, name: str) -> np.ndarray:
    """The numerics definition's raw storage of buffer ``name``, shaped as the program's view."""
    return run.want.raw(name).reshape(run.got(name).shape)


def _check(run: LayerRun, label: str, name: str, golden_values: np.ndarray | None = None,
           got_f64: np.ndarray | None = None, rows: slice = slice(None)) -> OutputCheck:
    got, want = run.got(name)[rows], expected(run, name)[rows]
    if golden_values is not None and got_f64 is None:
        got_f64 = bf16_to_f64(got)
    return check_output(label, got, want, got_f64, golden_values)


def _report(layer: str, shape: str, run: LayerRun) -> LayerReport:
    return LayerReport(layer, shape, instructions=run.instructions, seconds=run.execute_s)


def _stream(run: LayerRun) -> np.ndarray:
    return bf16_to_f64(run.stream_bits)


def validate_moe(seed: int = 0, cfg: moe.MoEConfig | None = None) -> LayerReport:
    cfg = cfg or moe.MoEConfig()
    model = cfg.model()
    run = compiled_layer(model, cfg.stage(), seed)
    bits, eps = run.weights.bits, float(model.norm_eps)
    h_golden = golden.gqa_prefill(_stream(run), gqa_weights(model, 0, bits), float(model.rope_theta), eps,
                                  model.rope_scaling)[0]
    h = N.widen(expected(run, "L0.h"), DType.BF16).astype(np.float64)
    ids = expected(run, "L0.topk_ids")
    mw = moe_weights(model, 0, bits)
    g = golden.moe_layer(h, mw, cfg.top_k, eps, selected=ids)
    own = golden.moe_layer(h, mw, cfg.top_k, eps)
    rep = _report("moe" + ("-shared" if cfg.shared else ""), cfg.shape, run)
    y = run.got("L0.ffn_out")
    rep.outputs.append(_check(run, "h (attention)", "L0.h", h_golden))
    rep.outputs.append(_check(run, "y", "L0.ffn_out", g.out, h + bf16_to_f64(y)))
    rep.outputs.append(_check(run, "topi", "L0.topk_ids"))
    gates = run.got("L0.topk_weights")
    rep.outputs.append(_check(run, "gates", "L0.topk_weights", g.weights, gates.astype(np.float64)))
    same = int(np.count_nonzero(np.all(np.sort(own.selected, axis=1) == np.sort(ids, axis=1), axis=1)))
    rep.notes.append(f"float64 routing picks the same experts for {same} of {cfg.tokens} tokens")
    rep.notes.append("y is the MoE block's output; its error is that of h + y against the float64 block")
    return rep


def _cache_rows(run: LayerRun, which: str, slot: int, rows: slice) -> tuple[np.ndarray, np.ndarray]:
    """(got, want) raw rows ``rows`` of KV-cache slot ``slot`` ("k" or "v"), [rows, KV * d]."""
    name, shape = f"L0.{which}_cache", run.k_bits.shape
    got = run.got(name).reshape(shape)[slot, rows]
    want = run.want.raw(name).reshape(shape)[slot, rows]
    return got.reshape(got.shape[0], -1), want.reshape(want.shape[0], -1)


def validate_gqa_decode(seed: int = 0, cfg: gqa.GQAConfig | None = None) -> LayerReport:
    cfg = cfg or gqa.GQAConfig()
    model = cfg.model()
    run = compiled_layer(model, cfg.decode_stage(), seed)
    k_past = [bf16_to_f64(run.k_bits[s, :n]).transpose(1, 0, 2) for s, n in enumerate(cfg.cache_lens)]
    v_past = [bf16_to_f64(run.v_bits[s, :n]).transpose(1, 0, 2) for s, n in enumerate(cfg.cache_lens)]
    g = golden.gqa_decode(_stream(run), gqa_weights(model, 0, run.weights.bits), k_past, v_past,
                          float(model.rope_theta), float(model.norm_eps), model.rope_scaling)
    rep = _report("gqa-decode", cfg.shape(True), run)
    rep.outputs.append(_check(run, "y", "L0.h", g))
    for s, length in enumerate(cfg.cache_lens):
        for which in ("k", "v"):
            got, want = _cache_rows(run, which, s, slice(length, length + 1))
            rep.outputs.append(check_output(f"{which}c{s}[{length}]", got, want))
    rep.outputs.append(_check(run, "ffn_out", "L0.ffn_out"))
    return rep


def validate_gqa_prefill(seed: int = 0, cfg: gqa.GQAConfig | None = None) -> LayerReport:
    cfg = cfg or gqa.GQAConfig()
    model = cfg.model()
    run = compiled_layer(model, cfg.prefill_stage(), seed)
    out, k, v = golden.gqa_prefill(_stream(run), gqa_weights(model, 0, run.weights.bits), float(model.rope_theta),
                                   float(model.norm_eps), model.rope_scaling)
    t, kd = cfg.prefill_tokens, cfg.kv_heads * cfg.head_dim
    rep = _report("gqa-prefill", cfg.shape(False), run)
    rep.outputs.append(_check(run, "y", "L0.h", out))
    for label, which, g in (("k (rotated)", "k", k), ("v", "v", v)):
        got, want = _cache_rows(run, which, 0, slice(0, t))
        rep.outputs.append(check_output(label, got, want, bf16_to_f64(got), g.transpose(1, 0, 2).reshape(t, kd)))
    rep.outputs.append(_check(run, "ffn_out", "L0.ffn_out"))
    return rep


LAYERS: dict[str, Callable[[int], LayerReport]] = {
    "moe": lambda seed: validate_moe(seed),
    "moe-shared": lambda seed: validate_moe(seed, moe.MoEConfig(shared=1)),
    "gqa-decode": lambda seed: validate_gqa_decode(seed),
    "gqa-prefill": lambda seed: validate_gqa_prefill(seed),
}
