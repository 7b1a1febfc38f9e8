"""``opbsim validate``: hand-built programs of real layers at reduced sizes, executed
functionally, checked bit for bit against numerics.py and measured against float64.

``LAYERS`` maps a layer name to a function ``(seed) -> LayerReport``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from opbsim.emulator import golden
from opbsim.emulator.validation import gqa, moe
from opbsim.emulator.validation.report import LayerReport, OutputCheck, bf16_to_f64, check_output

__all__ = ["LAYERS", "LayerReport", "OutputCheck", "validate_moe", "validate_gqa_decode", "validate_gqa_prefill"]


def validate_moe(seed: int = 0, cfg: moe.MoEConfig | None = None) -> LayerReport:
    cfg = cfg or moe.MoEConfig()
    run = moe.run_moe(cfg, seed)
    want = moe.reference(run)
    x, weights = moe.golden_check_inputs(run)
    g = golden.moe_layer(x, weights, cfg.top_k, cfg.eps, selected=want["topi"])
    own = golden.moe_layer(x, weights, cfg.top_k, cfg.eps)
    rep = LayerReport("moe" + ("-shared" if cfg.shared else ""), cfg.shape,
                      instructions=run.router_stats.instructions + run.expert_stats.instructions,
                      seconds=run.router_stats.seconds + run.expert_stats.seconds)
    y, gates = run.raw("y"), run.raw("gates")
    rep.outputs.append(check_output("y", y, want["y"], bf16_to_f64(y), g.out))
    rep.outputs.append(check_output("topi", run.raw("topi"), want["topi"]))
    rep.outputs.append(check_output("gates", gates, want["gates"], gates.astype(np.float64), g.weights))
    same = int(np.count_nonzero(np.all(np.sort(own.selected, axis=1) == np.sort(want["topi"], axis=1), axis=1)))
    rep.notes.append(f"float64 routing picks the same experts for {same} of {cfg.tokens} tokens")
    return rep


def validate_gqa_decode(seed: int = 0, cfg: gqa.GQAConfig | None = None) -> LayerReport:
    cfg = cfg or gqa.GQAConfig()
    run = gqa.run_decode(cfg, seed)
    want = gqa.reference_decode(run)
    w = gqa.golden_weights(run)
    kvh, dh = cfg.kv_heads, cfg.head_dim
    caches_k, caches_v = [], []
    for s, length in enumerate(cfg.cache_lens):
        for name, out in (("kc", caches_k), ("vc", caches_v)):
            rows = run.val(f"{name}{s}")[:length].astype(np.float64)
            out.append(rows.reshape(length, kvh, dh).transpose(1, 0, 2))
    g = golden.gqa_decode(run.val("x").astype(np.float64), w, caches_k, caches_v, cfg.theta, cfg.eps)
    rep = LayerReport("gqa-decode", cfg.shape(True), instructions=run.stats.instructions, seconds=run.stats.seconds)
    y = run.raw("y")
    rep.outputs.append(check_output("y", y, want["y"], bf16_to_f64(y), g))
    for s, length in enumerate(cfg.cache_lens):
        for name in ("kc", "vc"):
            got = run.raw(f"{name}{s}")[length:length + 1]
            rep.outputs.append(check_output(f"{name}{s}[{length}]", got, want[f"{name}{s}"]))
    return rep


def validate_gqa_prefill(seed: int = 0, cfg: gqa.GQAConfig | None = None) -> LayerReport:
    cfg = cfg or gqa.GQAConfig()
    run = gqa.run_prefill(cfg, seed)
    want = gqa.reference_prefill(run)
    out, k, v = golden.gqa_prefill(run.val("x").astype(np.float64), gqa.golden_weights(run), cfg.theta, cfg.eps)
    t, kd = cfg.prefill_tokens, cfg.kv_heads * cfg.head_dim
    rep = LayerReport("gqa-prefill", cfg.shape(False), instructions=run.stats.instructions, seconds=run.stats.seconds)
    y, kr, vv = run.raw("y"), run.raw("kr"), run.raw("v")
    rep.outputs.append(check_output("y", y, want["y"], bf16_to_f64(y), out))
    rep.outputs.append(check_output("k (rotated)", kr, want["kr"], bf16_to_f64(kr),
                                    k.transpose(1, 0, 2).reshape(t, kd)))
    rep.outputs.append(check_output("v", vv, want["v"], bf16_to_f64(vv), v.transpose(1, 0, 2).reshape(t, kd)))
    return rep


LAYERS: dict[str, Callable[[int], LayerReport]] = {
    "moe": lambda seed: validate_moe(seed),
    "moe-shared": lambda seed: validate_moe(seed, moe.MoEConfig(shared=1)),
    "gqa-decode": lambda seed: validate_gqa_decode(seed),
    "gqa-prefill": lambda seed: validate_gqa_prefill(seed),
}
