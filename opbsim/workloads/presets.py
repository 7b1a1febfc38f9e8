"""Model presets: the public configurations of the models, each with its source (docs/models.md).

This table is the one source of truth for named models; ``opbsim models`` lists it. ``rope_theta``,
``norm_eps`` and ``norm_topk_prob`` come from the same source as the shapes unless the comment
names another (or marks a value assumed).
"""

from __future__ import annotations

from types import MappingProxyType

from opbsim.errors import InputError
from opbsim.workloads.models import MLA, FFNAct, ModelConfig, Norm, QKNorm, RopeScaling

__all__ = ["PRESETS", "get_preset"]

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
    # Hugging Face deepseek-ai/DeepSeek-V2-Lite config.json: MLA without query compression. The released
    # model scales RoPE with YaRN (rope_scaling: factor 40, mscale 0.707): recorded, not applied (it changes
    # the rotation angles, not the cost; rope_theta is the base it scales).
    ModelConfig(name="deepseek-v2-lite", hidden_size=2048, num_layers=27, num_heads=16, num_kv_heads=16,
                head_dim=192, vocab_size=102400, dense_ffn=10944, num_experts=64, top_k=6, norm_topk_prob=False,
                expert_ffn=1408, num_shared_experts=2, shared_ffn=1408, first_dense_layers=1, rope_theta=10000.0,
                rope_scaling=RopeScaling(kind="yarn", factor=40.0), norm_eps=1e-6,
                mla=MLA(q_lora_rank=0, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128),
                source="HF deepseek-ai/DeepSeek-V2-Lite config.json"),
    # Hugging Face deepseek-ai/DeepSeek-V2 config.json. As for V2-Lite, YaRN RoPE scaling (factor 40) is
    # recorded, not applied; not described: the routed experts' output scale routed_scaling_factor 16.0.
    ModelConfig(name="deepseek-v2", hidden_size=5120, num_layers=60, num_heads=128, num_kv_heads=128,
                head_dim=192, vocab_size=102400, dense_ffn=12288, num_experts=160, top_k=6, norm_topk_prob=False,
                expert_ffn=1536, num_shared_experts=2, shared_ffn=1536, first_dense_layers=1, rope_theta=10000.0,
                rope_scaling=RopeScaling(kind="yarn", factor=40.0), norm_eps=1e-6,
                mla=MLA(q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64,
                        v_head_dim=128),
                source="HF deepseek-ai/DeepSeek-V2 config.json"),
)

PRESETS: MappingProxyType[str, ModelConfig] = MappingProxyType({m.name: m for m in _PRESETS})


def get_preset(name: str) -> ModelConfig:
    """The preset called ``name`` (case-insensitive)."""
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise InputError(f"unknown model {name!r} (presets: {', '.join(PRESETS)})") from None
