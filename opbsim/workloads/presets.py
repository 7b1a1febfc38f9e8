"""Model presets: the public configurations of the models, each with its source (docs/models.md).

This table is the one source of truth for named models; ``opbsim models`` lists it. ``rope_theta``,
``norm_eps`` and ``norm_topk_prob`` come from the same source as the shapes unless the comment
names another (or marks a value assumed).
"""

from __future__ import annotations

from types import MappingProxyType

from opbsim.errors import InputError
from opbsim.workloads.models import (
    MLA,
    FFNAct,
    ModelConfig,
    Norm,
    QKNorm,
    QueryTemperature,
    RopeScaling,
    Router,
    RouterScoring,
    WeightQuant,
)

__all__ = ["PRESETS", "get_preset"]


# The rope_scaling objects of the published config.json files (tests/fixtures holds copies of DeepSeek-V3's,
# gpt-oss's and Llama 4 Scout's; DeepSeek-V2's and V2-Lite's are the same object, factor 40 over 4096
# pretraining tokens with DeepSeek's mscale = mscale_all_dim = 0.707). Every key is the file's; the others
# keep transformers' defaults (beta_fast 32, beta_slow 1, truncate true).
_DEEPSEEK_V2_YARN = RopeScaling(kind="yarn", factor=40.0, original_max_position_embeddings=4096, beta_fast=32,
                                beta_slow=1, mscale=0.707, mscale_all_dim=0.707)
_DEEPSEEK_V3_YARN = RopeScaling(kind="yarn", factor=40.0, original_max_position_embeddings=4096, beta_fast=32,
                                beta_slow=1, mscale=1.0, mscale_all_dim=1.0)
_GPT_OSS_YARN = RopeScaling(kind="yarn", factor=32.0, original_max_position_embeddings=4096, beta_fast=32.0,
                            beta_slow=1.0, truncate=False)
_LLAMA4_SCOUT_LLAMA3 = RopeScaling(kind="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                   original_max_position_embeddings=8192)

_PRESETS = (
    # Hugging Face mistralai/Mixtral-8x7B-v0.1 config.json (tests/fixtures holds a copy). norm_topk_prob:
    # MixtralSparseMoeBlock softmaxes the router logits, takes the top 2 and divides them by their sum.
    ModelConfig(name="mixtral-8x7b", hidden_size=4096, num_layers=32, num_heads=32, num_kv_heads=8, head_dim=128,
                vocab_size=32000, num_experts=8, top_k=2, norm_topk_prob=True, expert_ffn=14336,
                rope_theta=1e6, norm_eps=1e-5,
                source="HF mistralai/Mixtral-8x7B-v0.1 config.json"),
    # Hugging Face mistralai/Mixtral-8x22B-v0.1 config.json (vocabulary of v0.1); top-2 renormalised as above.
    ModelConfig(name="mixtral-8x22b", hidden_size=6144, num_layers=56, num_heads=48, num_kv_heads=8, head_dim=128,
                vocab_size=32000, num_experts=8, top_k=2, norm_topk_prob=True, expert_ffn=16384,
                rope_theta=1e6, norm_eps=1e-5,
                source="HF mistralai/Mixtral-8x22B-v0.1 config.json"),
    # xai-org/grok-1 run.py and model.py: emb_size 48 * 128, widening_factor 8 -> ffn 32768, vocab 128 * 1024,
    # GeGLU experts (gelu(x W) * x V), output layer decodes with the input embedding (tied). Grok-1's extra
    # post-sublayer RMSNorms (2 x 6144 weights per layer) are not counted. model.py: RotaryEmbedding with
    # base_exponent int(1e4), RMSNorm eps 1e-5, and MoELayer weighs the experts by the top-2 of the softmax
    # over all 8 router logits without renormalising them.
    ModelConfig(name="grok-1", hidden_size=6144, num_layers=64, num_heads=48, num_kv_heads=8, head_dim=128,
                vocab_size=131072, ffn_act=FFNAct.GEGLU, num_experts=8, top_k=2, norm_topk_prob=False,
                expert_ffn=32768, rope_theta=10000.0, norm_eps=1e-5, tie_word_embeddings=True,
                source="xai-org/grok-1 (run.py, model.py)"),
    # Duplex paper (arXiv 2409.01141) Table I and the LLMSimulator preset: 2-matrix GELU FFN, MoE every 2nd
    # layer, 64 experts top-2. Tied embeddings assumed: 142.7e9 parameters, Table I rounds to 143B.
    # rope_theta 0.0: the GLaM paper (arXiv 2112.06905, section 4) uses Transformer-XL's per-layer relative
    # position bias, not RoPE (the bias is not modelled). Assumed, as GLaM states neither: norm_topk_prob True
    # (GLaM follows GShard's top-2 gating, whose Lingvo implementation, Top2Gating, divides both gates by
    # their sum) and norm_eps 1e-6 (the default epsilon of Lingvo's LayerNorm).
    ModelConfig(name="glam-143b", hidden_size=4096, num_layers=32, num_heads=32, num_kv_heads=32, head_dim=128,
                vocab_size=256000, ffn_act=FFNAct.GELU, dense_ffn=16384, num_experts=64, top_k=2,
                norm_topk_prob=True, expert_ffn=16384, moe_every=2, rope_theta=0.0, norm_eps=1e-6,
                tie_word_embeddings=True,
                source="Duplex paper (arXiv 2409.01141) Table I; LLMSimulator preset"),
    # Hugging Face deepseek-ai/deepseek-moe-16b-base config.json: layer 0 dense (first_k_dense_replace 1),
    # 2 shared experts of 1408 (run as one 2816-wide MLP).
    ModelConfig(name="deepseek-moe-16b", hidden_size=2048, num_layers=28, num_heads=16, num_kv_heads=16,
                head_dim=128, vocab_size=102400, dense_ffn=10944, num_experts=64, top_k=6, norm_topk_prob=False,
                expert_ffn=1408, num_shared_experts=2, shared_ffn=1408, first_dense_layers=1, rope_theta=10000.0,
                norm_eps=1e-6, source="HF deepseek-ai/deepseek-moe-16b-base config.json"),
    # Hugging Face Qwen/Qwen1.5-MoE-A2.7B config.json; q/k/v biases and the sigmoid gate of the shared
    # expert are fixed in the modelling code (Qwen2MoeAttention, Qwen2MoeSparseMoeBlock).
    ModelConfig(name="qwen1.5-moe-a2.7b", hidden_size=2048, num_layers=24, num_heads=16, num_kv_heads=16,
                head_dim=128, vocab_size=151936, num_experts=60, top_k=4, norm_topk_prob=False, expert_ffn=1408,
                num_shared_experts=1, shared_ffn=5632, shared_expert_gate=True, qkv_bias=True, rope_theta=1e6,
                norm_eps=1e-6,
                source="HF Qwen/Qwen1.5-MoE-A2.7B config.json"),
    # Hugging Face allenai/OLMoE-1B-7B-0924 config.json (tests/fixtures holds a copy); q_norm and k_norm
    # over the full q and k widths (OlmoeAttention).
    ModelConfig(name="olmoe-1b-7b-0924", hidden_size=2048, num_layers=16, num_heads=16, num_kv_heads=16,
                head_dim=128, vocab_size=50304, num_experts=64, top_k=8, norm_topk_prob=False, expert_ffn=1024,
                qk_norm=QKNorm.FULL, rope_theta=10000.0, norm_eps=1e-5,
                source="HF allenai/OLMoE-1B-7B-0924 config.json"),
    # Duplex paper Table I; Hugging Face facebook/opt-66b config.json: ReLU, LayerNorm, tied embeddings,
    # 2048 + 2 learned positions (so no RoPE). Biases of the output projection and the FFN (5.3e6) are not
    # counted. norm_eps: OPTDecoderLayer's nn.LayerNorm keeps PyTorch's default epsilon, 1e-5.
    ModelConfig(name="opt-66b", hidden_size=9216, num_layers=64, num_heads=72, num_kv_heads=72, head_dim=128,
                vocab_size=50272, ffn_act=FFNAct.RELU, dense_ffn=36864, norm=Norm.LAYER, norm_eps=1e-5,
                qkv_bias=True, rope_theta=0.0, learned_positions=2050, tie_word_embeddings=True,
                source="Duplex paper (arXiv 2409.01141) Table I; HF facebook/opt-66b config.json"),
    # Hugging Face meta-llama/Meta-Llama-3-70B config.json.
    ModelConfig(name="llama-3-70b", hidden_size=8192, num_layers=80, num_heads=64, num_kv_heads=8, head_dim=128,
                vocab_size=128256, dense_ffn=28672, rope_theta=500000.0, norm_eps=1e-5,
                source="HF meta-llama/Meta-Llama-3-70B config.json"),
    # Hugging Face meta-llama/Llama-2-7b-hf config.json (the SN40L Samba-CoE expert). The file has no
    # rope_theta: LlamaConfig's default, 10000.0, is the base the model was trained with.
    ModelConfig(name="llama-2-7b", hidden_size=4096, num_layers=32, num_heads=32, num_kv_heads=32, head_dim=128,
                vocab_size=32000, dense_ffn=11008, rope_theta=10000.0, norm_eps=1e-5,
                source="HF meta-llama/Llama-2-7b-hf config.json"),
    # Hugging Face deepseek-ai/DeepSeek-V2-Lite config.json: MLA without query compression, RoPE scaled
    # with YaRN (_DEEPSEEK_V2_YARN, the file's rope_scaling; rope_theta is the base it scales).
    ModelConfig(name="deepseek-v2-lite", hidden_size=2048, num_layers=27, num_heads=16, num_kv_heads=16,
                head_dim=192, vocab_size=102400, dense_ffn=10944, num_experts=64, top_k=6, norm_topk_prob=False,
                expert_ffn=1408, num_shared_experts=2, shared_ffn=1408, first_dense_layers=1, rope_theta=10000.0,
                rope_scaling=_DEEPSEEK_V2_YARN, norm_eps=1e-6,
                mla=MLA(q_lora_rank=0, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128),
                source="HF deepseek-ai/DeepSeek-V2-Lite config.json"),
    # Hugging Face deepseek-ai/DeepSeek-V2 config.json. As V2-Lite, YaRN RoPE scaling (_DEEPSEEK_V2_YARN);
    # not described: the routed experts' output scale routed_scaling_factor 16.0.
    ModelConfig(name="deepseek-v2", hidden_size=5120, num_layers=60, num_heads=128, num_kv_heads=128,
                head_dim=192, vocab_size=102400, dense_ffn=12288, num_experts=160, top_k=6, norm_topk_prob=False,
                expert_ffn=1536, num_shared_experts=2, shared_ffn=1536, first_dense_layers=1, rope_theta=10000.0,
                rope_scaling=_DEEPSEEK_V2_YARN, norm_eps=1e-6,
                mla=MLA(q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64,
                        v_head_dim=128),
                source="HF deepseek-ai/DeepSeek-V2 config.json"),
    # Hugging Face deepseek-ai/DeepSeek-V3 config.json (tests/fixtures holds a copy); DeepSeek-R1 has the same
    # config.json (architecture and shapes), so this preset stands for both. Sigmoid router with
    # e_score_correction_bias and node-limited top-8 (noaux_tc, 8 groups, 4 kept), weights renormalised and
    # scaled by 2.5. Shipped as fp8 e4m3 with 128 x 128 weight blocks (recorded, not applied); the one MTP
    # module of the checkpoint is not part of the model as served here (and not of the published 671B).
    ModelConfig(name="deepseek-v3", hidden_size=7168, num_layers=61, num_heads=128, num_kv_heads=128,
                head_dim=192, vocab_size=129280, dense_ffn=18432, num_experts=256, top_k=8, norm_topk_prob=True,
                expert_ffn=2048, num_shared_experts=1, shared_ffn=2048, first_dense_layers=3, rope_theta=10000.0,
                rope_scaling=_DEEPSEEK_V3_YARN, norm_eps=1e-6,
                mla=MLA(q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64,
                        v_head_dim=128),
                router=Router(scoring=RouterScoring.SIGMOID, correction_bias=True, n_group=8, topk_group=4,
                              routed_scaling_factor=2.5),
                weight_quant=WeightQuant(kind="fp8_e4m3", block=(128, 128), scope="linear"), mtp_modules=1,
                source="HF deepseek-ai/DeepSeek-V3 config.json"),
    # Hugging Face Qwen/Qwen3-30B-A3B config.json (tests/fixtures holds a copy): RMSNorm per head on q and k.
    ModelConfig(name="qwen3-30b-a3b", hidden_size=2048, num_layers=48, num_heads=32, num_kv_heads=4, head_dim=128,
                vocab_size=151936, num_experts=128, top_k=8, norm_topk_prob=True, expert_ffn=768,
                qk_norm=QKNorm.PER_HEAD, rope_theta=1e6, norm_eps=1e-6,
                source="HF Qwen/Qwen3-30B-A3B config.json"),
    # Hugging Face Qwen/Qwen3-235B-A22B config.json.
    ModelConfig(name="qwen3-235b-a22b", hidden_size=4096, num_layers=94, num_heads=64, num_kv_heads=4, head_dim=128,
                vocab_size=151936, num_experts=128, top_k=8, norm_topk_prob=True, expert_ffn=1536,
                qk_norm=QKNorm.PER_HEAD, rope_theta=1e6, norm_eps=1e-6,
                source="HF Qwen/Qwen3-235B-A22B config.json"),
    # Hugging Face meta-llama/Llama-4-Scout-17B-16E text_config (tests/fixtures holds a copy): every layer MoE
    # (16 experts, top-1, sigmoid score applied to the expert input) with a shared expert; chunked attention
    # (8192) on the RoPE layers, every 4th layer without RoPE attends to all tokens with the query temperature
    # (floor_scale 8192, attn_scale 0.1); unweighted per-head q/k norm on the RoPE layers (use_qk_norm).
    ModelConfig(name="llama4-scout", hidden_size=5120, num_layers=48, num_heads=40, num_kv_heads=8, head_dim=128,
                vocab_size=202048, num_experts=16, top_k=1, expert_ffn=8192, num_shared_experts=1, shared_ffn=8192,
                router=Router(scoring=RouterScoring.SIGMOID, weight_on_input=True), qk_norm=QKNorm.PER_HEAD_UNWEIGHTED,
                attention_chunk_size=8192, full_attention_layers=tuple(range(3, 48, 4)),
                nope_layers=tuple(range(3, 48, 4)),
                query_temperature=QueryTemperature(floor_scale_tokens=8192, attn_scale=0.1),
                rope_theta=500000.0, rope_scaling=_LLAMA4_SCOUT_LLAMA3, norm_eps=1e-5,
                source="HF meta-llama/Llama-4-Scout-17B-16E config.json (text_config)"),
    # Hugging Face meta-llama/Llama-4-Maverick-17B-128E text_config: as Scout, but 128 experts on every second
    # layer (interleave_moe_layer_step 2), dense layers of 16384 (intermediate_size_mlp), no q/k norm, no
    # RoPE scaling.
    ModelConfig(name="llama4-maverick", hidden_size=5120, num_layers=48, num_heads=40, num_kv_heads=8, head_dim=128,
                vocab_size=202048, dense_ffn=16384, num_experts=128, top_k=1, expert_ffn=8192, num_shared_experts=1,
                shared_ffn=8192, moe_every=2, router=Router(scoring=RouterScoring.SIGMOID, weight_on_input=True),
                attention_chunk_size=8192, full_attention_layers=tuple(range(3, 48, 4)),
                nope_layers=tuple(range(3, 48, 4)),
                query_temperature=QueryTemperature(floor_scale_tokens=8192, attn_scale=0.1),
                rope_theta=500000.0, norm_eps=1e-5,
                source="HF meta-llama/Llama-4-Maverick-17B-128E config.json (text_config)"),
    # Hugging Face openai/gpt-oss-120b config.json (tests/fixtures holds a copy): q/k/v/o biases, one sink logit
    # per head, sliding window 128 on even layers and full attention on odd ones, router with a bias and a
    # softmax over the top-4 logits, clamped SwiGLU experts with biases. Experts shipped in MXFP4 (recorded).
    ModelConfig(name="gpt-oss-120b", hidden_size=2880, num_layers=36, num_heads=64, num_kv_heads=8, head_dim=64,
                vocab_size=201088, ffn_act=FFNAct.SWIGLU_OAI, num_experts=128, top_k=4, expert_ffn=2880,
                expert_bias=True, router=Router(scoring=RouterScoring.SOFTMAX_TOPK, bias=True), qkv_bias=True,
                o_bias=True, attention_sinks=True, sliding_window=128, full_attention_layers=tuple(range(1, 36, 2)),
                rope_theta=150000.0, rope_scaling=_GPT_OSS_YARN, norm_eps=1e-5,
                weight_quant=WeightQuant(kind="mxfp4", block=(32,), scope="experts"),
                source="HF openai/gpt-oss-120b config.json"),
    # Hugging Face openai/gpt-oss-20b config.json (tests/fixtures holds a copy): gpt-oss-120b's layer with 32
    # experts, 24 layers.
    ModelConfig(name="gpt-oss-20b", hidden_size=2880, num_layers=24, num_heads=64, num_kv_heads=8, head_dim=64,
                vocab_size=201088, ffn_act=FFNAct.SWIGLU_OAI, num_experts=32, top_k=4, expert_ffn=2880,
                expert_bias=True, router=Router(scoring=RouterScoring.SOFTMAX_TOPK, bias=True), qkv_bias=True,
                o_bias=True, attention_sinks=True, sliding_window=128, full_attention_layers=tuple(range(1, 24, 2)),
                rope_theta=150000.0, rope_scaling=_GPT_OSS_YARN, norm_eps=1e-5,
                weight_quant=WeightQuant(kind="mxfp4", block=(32,), scope="experts"),
                source="HF openai/gpt-oss-20b config.json"),
)

PRESETS: MappingProxyType[str, ModelConfig] = MappingProxyType({m.name: m for m in _PRESETS})


def get_preset(name: str) -> ModelConfig:
    """The preset called ``name`` (case-insensitive)."""
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise InputError(f"unknown model {name!r} (presets: {', '.join(PRESETS)})") from None
