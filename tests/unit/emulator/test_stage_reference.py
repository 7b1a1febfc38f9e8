"""The numerics reference with its products formed by ordered_gemm (fp32 operands and bf16 weight
bits) gives the same bits as with numerics.gemm, and tells its routing before the experts run."""

from __future__ import annotations

import numpy as np

from opbsim.compiler.lower_attention import requests
from opbsim.emulator import ordered_gemm, seeded_bits
from opbsim.emulator import stage_reference as ref
from opbsim.emulator.layer_check import weight_shapes
from opbsim.isa.floatbits import bf16_widen
from opbsim.workloads import Stage, load_model
from opbsim.workloads.stage import PrefillChunk

from ..cli.test_cli_run import small_mixtral


def _small_mixtral(tmp_path):
    return load_model(small_mixtral(tmp_path, layers=2))


def _inputs(model, stage, layer):
    bits = {n: seeded_bits.weight_bits(0, n, s) for n, s in weight_shapes(model, stage, layer).items()}
    rng = np.random.default_rng(1)
    reqs = requests(stage)
    shape = (len(reqs), max(r.context for r in reqs), model.num_kv_heads, model.head_dim)
    caches = []
    for _ in range(2):
        c = np.zeros(shape, np.float32)
        for slot, r in enumerate(reqs):
            c[slot, :r.past] = ref.r16(rng.standard_normal((r.past, *shape[2:])).astype(np.float32))
        caches.append(c)
    stream = ref.r16(rng.standard_normal((stage.tokens, model.hidden_size)).astype(np.float32))
    delta = ref.r16(rng.standard_normal((stage.tokens, model.hidden_size)).astype(np.float32))
    return bits, {layer: tuple(caches)}, stream, delta


def test_the_reference_with_ordered_products_equals_the_definition_bit_for_bit(tmp_path):
    model = _small_mixtral(tmp_path)
    mixed = Stage(prefill=(PrefillChunk(3), PrefillChunk(5, 2), PrefillChunk(3)), decode_ctx_tokens=(6, 9, 6))
    for stage in (Stage.decode(5, 9), mixed):  # mixed: requests of one shape batched, not side by side
        bits, caches, stream, delta = _inputs(model, stage, 1)
        values = {n: bf16_widen(b) for n, b in bits.items()}
        want = ref.stage(model, stage, values, None, caches, layers=(1,), stream=stream, delta=delta)
        got = ref.stage(model, stage, values, None, caches, layers=(1,), stream=stream, delta=delta,
                        gemm=ordered_gemm.gemm, times=lambda x, name, bits=bits: ordered_gemm.gemm_bf16(x, bits[name]))
        assert sorted(got) == sorted(want) and "L1.topk_ids" in got
        for name in want:
            assert np.array_equal(np.asarray(got[name]).view(np.uint32), np.asarray(want[name]).view(np.uint32)), name


def test_the_routing_is_told_before_any_expert_weight_is_read(tmp_path):
    model = _small_mixtral(tmp_path)
    stage = Stage.decode(6, 5)
    bits, caches, stream, delta = _inputs(model, stage, 0)
    events = []

    class Watched(dict):
        def __getitem__(self, name):
            events.append(name)
            return super().__getitem__(name)

    values = Watched({n: bf16_widen(b) for n, b in bits.items()})
    out = ref.stage(model, stage, values, None, caches, layers=(0,), stream=stream,
                    routed=lambda layer, ids: events.append(("routed", layer, ids.copy())))
    told = [e for e in events if isinstance(e, tuple)]
    assert len(told) == 1 and told[0][1] == 0 and np.array_equal(told[0][2], out["L0.topk_ids"])
    first_expert = next(i for i, e in enumerate(events) if isinstance(e, str) and ".expert." in e)
    assert events.index(told[0]) < first_expert
