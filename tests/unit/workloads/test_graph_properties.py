"""Graph invariants over random small models and stages (hypothesis)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from opbsim.workloads import (
    FFNAct,
    ModelConfig,
    PrefillChunk,
    Role,
    Stage,
    UniformRouting,
    build_model,
)
from opbsim.workloads.attention import attended_pairs


@st.composite
def models(draw) -> ModelConfig:
    kv = draw(st.sampled_from([1, 2, 4]))
    heads = kv * draw(st.sampled_from([1, 2, 4]))
    experts = draw(st.sampled_from([0, 4, 8]))
    moe = dict(num_experts=experts, top_k=draw(st.integers(1, experts)), expert_ffn=32,
               first_dense_layers=draw(st.integers(0, 1)), moe_every=draw(st.integers(1, 2)),
               norm_topk_prob=draw(st.booleans())) if experts else {}
    shared = dict(num_shared_experts=1, shared_ffn=16) if experts and draw(st.booleans()) else {}
    m = dict(name="p", hidden_size=64, num_layers=3, num_heads=heads, num_kv_heads=kv, head_dim=16, vocab_size=50,
             ffn_act=draw(st.sampled_from(list(FFNAct))), sliding_window=draw(st.sampled_from([0, 8])),
             tie_word_embeddings=draw(st.booleans()), rope_theta=draw(st.sampled_from([0.0, 10000.0, 5e5])),
             norm_eps=draw(st.sampled_from([1e-6, 1e-5])))
    has_dense = not experts or moe["first_dense_layers"] or moe["moe_every"] > 1
    return ModelConfig(**m, **moe, **shared, dense_ffn=48 if has_dense else 0)


@settings(max_examples=60, deadline=None)
@given(models(), st.lists(st.builds(PrefillChunk, st.integers(1, 12), st.integers(0, 20), st.booleans()), max_size=2),
       st.lists(st.integers(1, 40), min_size=1, max_size=5), st.sampled_from([1, 2]), st.integers(0, 3))
def test_every_graph_is_well_formed(model, prefill, decode, tp, seed):
    stage = Stage(prefill=tuple(prefill), decode_ctx_tokens=tuple(decode))
    routing = UniformRouting(model.num_experts, model.top_k, seed=seed) if model.is_moe else None
    if model.num_heads % tp:
        return
    graph = build_model(model, stage, routing=routing, tp=tp)
    written = {"token_ids"}
    names = [op.name for op in graph.ops]
    assert len(names) == len(set(names))
    for op in graph.ops:
        for t in op.inputs:
            assert t.role is not Role.ACTIVATION or t.name in written, (op.name, t.name)
        written.update(t.name for t in op.outputs)
        assert op.estimates.bytes_B == sum(t.nbytes for t in (*op.inputs, *op.outputs))
    for layer in graph.layers:
        tokens = [op.params["tokens"] for op in layer.ops if op.name.split(".")[1] == "expert"]
        assert sum(tokens) == (stage.tokens * model.top_k if layer.moe else 0)
        assert layer.moe == model.is_moe_layer(layer.layer)
    assert len(graph.epilogue) == (0 if stage.logit_rows == 0 else 2 + (tp > 1))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 50), st.integers(1, 50), st.integers(0, 30))
def test_attended_pairs_equal_the_brute_force_count(past, new, window):
    brute = sum(min(p, window) if window else p for p in range(past + 1, past + new + 1))
    assert attended_pairs(past, new, window) == brute


def test_weights_read_by_an_all_expert_decode_step_match_the_parameter_count():
    model = ModelConfig(name="w", hidden_size=64, num_layers=4, num_heads=4, num_kv_heads=2, head_dim=16,
                        vocab_size=50, num_experts=4, top_k=2, expert_ffn=32, num_shared_experts=1, shared_ffn=16,
                        first_dense_layers=1, dense_ffn=48, qkv_bias=True, ffn_act=FFNAct.GELU, rope_theta=10000.0,
                        norm_eps=1e-5)
    T = 8  # 8 tokens x top-2 over 4 experts: every expert gets 4
    graph = build_model(model, Stage.decode(T, 16))
    weight_B = sum(op.weight_B for op in graph.ops)
    assert weight_B == (model.params_total - 50 * 64 + T * 64) * 2  # all but the ungathered embedding rows
