"""The numerics definition of a stage (the layer definitions executed at once): its routing is told
before any expert weight is read, a layer alone gives the whole model's values, and a request's
rows do not depend on the other requests of its stage."""

from __future__ import annotations

import numpy as np
import pytest

from opbsim.emulator import seeded_bits
from opbsim.emulator.layer_check import weight_shapes
from opbsim.emulator.layer_values import stage_values
from opbsim.isa import numerics as N
from opbsim.isa.types import DType
from opbsim.layers.stage_rows import requests
from opbsim.workloads import Stage, load_model
from opbsim.workloads.stage import PrefillChunk

from ..cli.test_cli_run import small_mixtral

MIXED = Stage(prefill=(PrefillChunk(3), PrefillChunk(5, 2), PrefillChunk(3)), decode_ctx_tokens=(6, 9, 6))


def _small_mixtral(tmp_path):
    return load_model(small_mixtral(tmp_path, layers=2))


def _bits(model, stage):
    bits = {n: seeded_bits.weight_bits(0, n, s) for layer in range(model.num_layers)
            for n, s in weight_shapes(model, stage, layer).items()}
    bits["embed_tokens"] = seeded_bits.weight_bits(0, "embed_tokens", (model.vocab_size, model.hidden_size))
    bits["final_norm.weight"] = seeded_bits.weight_bits(0, "final_norm.weight", (model.hidden_size,))
    bits["lm_head"] = seeded_bits.weight_bits(0, "lm_head", (model.hidden_size, model.vocab_size))
    return bits


def _caches(model, stage, seed=1):
    rng = np.random.default_rng(seed)
    reqs = requests(stage)
    shape = (len(reqs), max(r.context for r in reqs), model.num_kv_heads, model.head_dim)
    out = {}
    for layer in range(model.num_layers):
        pair = []
        for _ in range(2):
            c = np.zeros(shape, np.uint16)
            for slot, r in enumerate(reqs):
                c[slot, :r.past] = N.store(rng.standard_normal((r.past, *shape[2:])).astype(np.float32), DType.BF16)
            pair.append(c)
        out[layer] = tuple(pair)
    return out


def _copy(caches):
    return {layer: (k.copy(), v.copy()) for layer, (k, v) in caches.items()}


def test_the_routing_is_told_before_any_expert_weight_is_read(tmp_path):
    model = _small_mixtral(tmp_path)
    stage = Stage.decode(6, 5)
    bits, events = _bits(model, stage), []

    def weights(name):
        if name in bits:
            events.append(name)
        return bits.get(name)

    stream = N.store(np.random.default_rng(2).standard_normal((stage.tokens, model.hidden_size)).astype(np.float32),
                     DType.BF16)
    out = stage_values(model, stage, weights, caches=_copy(_caches(model, stage)), layers=(0,), stream=stream,
                       routed=lambda layer, ids: events.append(("routed", layer, ids.copy())))
    told = [e for e in events if isinstance(e, tuple)]
    assert len(told) == 1 and told[0][1] == 0 and np.array_equal(told[0][2], out["L0.topk_ids"])
    first_expert = next(i for i, e in enumerate(events) if isinstance(e, str) and ".expert." in e)
    assert events.index(told[0]) < first_expert


@pytest.mark.parametrize("stage", [Stage.decode(5, 9), MIXED], ids=["decode", "mixed"])
def test_a_layer_run_alone_from_the_models_stream_gives_the_models_values_bit_for_bit(tmp_path, stage):
    model = _small_mixtral(tmp_path)
    bits, caches = _bits(model, stage), _caches(model, stage)
    ids = np.random.default_rng(3).integers(0, model.vocab_size, stage.tokens).astype(np.int32)
    whole = stage_values(model, stage, bits.get, token_ids=ids, caches=_copy(caches))
    alone = stage_values(model, stage, bits.get, caches={1: _copy(caches)[1]}, layers=(1,),
                         stream=whole.raw("L0.h"), delta=whole.raw("L0.ffn_out"))
    for name in ("L1.h", "L1.ffn_out", "L1.k_cache", "L1.v_cache", "L1.topk_ids"):
        assert np.array_equal(alone.raw(name), whole.raw(name)), name


def test_a_decode_requests_rows_do_not_depend_on_the_other_requests_of_its_stage(tmp_path):
    model = _small_mixtral(tmp_path)
    batch = Stage.decode(4, 7)
    alone = Stage.decode(1, 7)
    bits, caches = _bits(model, batch), _caches(model, batch)
    ids = np.random.default_rng(4).integers(0, model.vocab_size, batch.tokens).astype(np.int32)
    together = stage_values(model, batch, bits.get, token_ids=ids, caches=_copy(caches))
    for slot in range(batch.tokens):
        own = {layer: (k[slot:slot + 1].copy(), v[slot:slot + 1].copy()) for layer, (k, v) in caches.items()}
        single = stage_values(model, alone, bits.get, token_ids=ids[slot:slot + 1], caches=own)
        assert np.array_equal(single.raw("logits")[0], together.raw("logits")[slot]), slot
        shape = caches[1][0].shape
        assert np.array_equal(single.raw("L1.k_cache").reshape(1, *shape[1:])[0],
                              together.raw("L1.k_cache").reshape(shape)[slot]), slot


def test_a_weight_the_caller_does_not_give_is_an_error_not_zeros(tmp_path):
    model = _small_mixtral(tmp_path)
    stage = Stage.decode(2, 4)
    bits = _bits(model, stage)
    del bits["L0.w_o"]
    with pytest.raises(KeyError, match="L0.w_o"):
        stage_values(model, stage, bits.get, token_ids=np.zeros(2, np.int32), caches=_copy(_caches(model, stage)))
