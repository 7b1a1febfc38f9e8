"""Every preset of ``opbsim models``, cut to small widths, compiles and runs bit-exact against the
numerics definition, or is refused in one line naming the features the compiler cannot lower. The
test iterates over the preset table, so a new preset without a lowering fails here."""

import dataclasses

import numpy as np
import pytest

from opbsim.compiler import compile_graph
from opbsim.errors import InputError
from opbsim.hardware import get_device
from opbsim.workloads.features import unlowered_features
from opbsim.workloads.graph import build_model
from opbsim.workloads.models import MLA
from opbsim.workloads.presets import PRESETS
from opbsim.workloads.stage import Stage

from .harness import read, run_stage
from .test_compiled_values import MIXED, bits_equal


def reduced(model):
    """``model`` at small widths with every feature kept: 4 heads (KV heads: all of them, or 2), head
    dims of 16 (MLA: 16 + 8, values 16, latent 32), ffn widths of 32 to 48, at most 8 experts (16 with
    group-limited routing: 4 groups), windows and chunks of 4, fp8 weight blocks of 16 x 16, enough
    layers for a dense prefix and an interleaved MoE, full and NoPE layer."""
    m = model
    kw = dict(hidden_size=64, num_heads=4, num_kv_heads=4 if m.num_kv_heads == m.num_heads else 2, head_dim=16,
              vocab_size=96, num_layers=min(m.num_layers, max(4, m.first_dense_layers + 2)),
              dense_ffn=48 if m.dense_ffn else 0, expert_ffn=32 if m.expert_ffn else 0,
              shared_ffn=32 if m.shared_ffn else 0, sliding_window=min(m.sliding_window, 4),
              attention_chunk_size=min(m.attention_chunk_size, 4), learned_positions=min(m.learned_positions, 32))
    if m.num_experts:
        groups = min(m.router.n_group, 4)
        experts = 16 if groups > 1 else min(m.num_experts, 8)
        kw.update(num_experts=experts, top_k=min(m.top_k, 4),
                  router=dataclasses.replace(m.router, n_group=groups, topk_group=min(m.router.topk_group, 2)))
    if m.weight_quant is not None:  # fp8 blocks that fit the small widths (MLA's heads start on a block)
        kw.update(weight_quant=dataclasses.replace(m.weight_quant, block=(16, 16)))
    if m.mla is not None:
        kw.update(head_dim=24, mla=MLA(q_lora_rank=24 if m.mla.q_lora_rank else 0, kv_lora_rank=32,
                                       qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16))
    return dataclasses.replace(m, **kw)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_at_small_widths_runs_bit_exact_or_is_refused_naming_its_features(name):
    model = reduced(PRESETS[name])
    missing = unlowered_features(model)
    if missing:
        with pytest.raises(InputError) as refusal:
            compile_graph(build_model(model, Stage.decode(2, 8)), get_device("h100"), "xpu-only")
        message = str(refusal.value)
        assert "\n" not in message and all(feature in message for feature in missing)
        return
    ref, memory, compiled = run_stage(model, MIXED, device="h100", policy="xpu-only")
    last = model.num_layers - 1
    for buffer in (f"L{last}.ffn_out", "logits"):
        got = read(memory, compiled, buffer)
        assert bits_equal(got.reshape(ref[buffer].shape), ref[buffer]), buffer
    assert np.abs(ref["logits"]).max() > 0
