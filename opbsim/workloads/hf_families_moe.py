"""The config.json families of the 2026 MoE models: DeepSeek-V3 (and R1), gpt-oss, Llama 4.

Each maps its keys as transformers' modeling code uses them (models/deepseek_v3, models/gpt_oss,
models/llama4 of transformers v4.55). A key that would change a shape or a value and that opbsim does
not describe is a one-line error naming it; ``quantization_config`` is recorded as a ``WeightQuant``
for the methods these checkpoints ship (DeepSeek-V3's block fp8, gpt-oss's MXFP4 experts) and an error
for any other. Llama 4's config.json is the multimodal wrapper: its ``text_config`` is the language
model, read here; the vision encoder is not modelled (``vision_config`` is skipped).
"""

from __future__ import annotations

from opbsim.isa.types import DType
from opbsim.workloads.hf_families import (
    _BASE_KEYS,
    _DEEPSEEK_KEYS,
    _base,
    _constants,
    _deepseek_moe,
    _dense_ffn,
    _experts,
    _family,
    _gated_act,
    mla_base,
)
from opbsim.workloads.hf_reader import Reader, quoted, shown
from opbsim.workloads.model_parts import SWIGLU_OAI_LIMIT
from opbsim.workloads.models import (
    FFNAct,
    QKNorm,
    QueryTemperature,
    Router,
    RouterScoring,
    WeightQuant,
)

__all__ = ["READS_REJECTED", "read_dtype"]

READS_REJECTED: dict[str, frozenset[str]] = {
    "deepseek_v3": frozenset({"quantization_config"}),
    "gpt_oss": frozenset({"quantization_config"}),
    "llama4": frozenset({"text_config", "vision_config"}),
}
"""Families that read keys every other family rejects (hf_config.REJECTED)."""

_DTYPES = {"bfloat16": DType.BF16, "float16": DType.BF16, "float32": DType.FP32}


def read_dtype(r: Reader, default: DType | None = None) -> DType:
    """``torch_dtype`` (or ``dtype``, transformers v5; both present must agree); ``default`` when
    neither is given, an error where there is no default."""
    names = [k for k in ("torch_dtype", "dtype") if r.data.get(k) is not None]
    if not names:
        if default is not None:
            r.ignore(("torch_dtype", "dtype"))
            return default
        raise r.error("torch_dtype", "missing (the weights' dtype: bfloat16, float16 or float32)")
    values = [r.text(k) for k in names]
    if len(values) == 2 and values[0] != values[1]:
        raise r.error("dtype", f"{quoted(values[1])} contradicts torch_dtype {quoted(values[0])}")
    if values[0] not in _DTYPES:
        raise r.error(names[0], f"{quoted(values[0])} is not a supported dtype ({', '.join(_DTYPES)})")
    return _DTYPES[values[0]]


@_family("deepseek_v3", "DeepseekV3ForCausalLM")
def deepseek_v3(r: Reader) -> tuple[dict, dict[str, str]]:
    """DeepSeek-V3: DeepSeek-V2's MLA and MoE layers with the sigmoid router (scoring_func), its
    correction bias (topk_method noaux_tc), group-limited top-k (n_group, topk_group) and
    routed_scaling_factor; ``num_nextn_predict_layers`` MTP modules are recorded, not modelled."""
    kwargs = mla_base(r)
    scoring = r.text("scoring_func", "sigmoid")
    method = r.text("topk_method", "noaux_tc")
    kwargs.update(_deepseek_moe(r, kwargs))
    if kwargs.get("num_experts"):
        kwargs["router"] = _deepseek_router(r, scoring, method)
    else:
        r.ignore(("n_group", "topk_group", "routed_scaling_factor"))
    r.reject_true("attention_bias", "biases on q/k/v/o")
    r.ignore(("ep_size",))  # expert parallelism of the training run: no shape, no value
    kwargs.update(_constants(r, "deepseek_v3", rope_theta=10000.0, norm_eps=1e-6))
    kwargs.update(ffn_act=_gated_act(r), dense_ffn=_dense_ffn(r, kwargs), mtp_modules=r.count(
        "num_nextn_predict_layers", 0, minimum=0))
    if r.data.get("quantization_config") is not None:
        kwargs["weight_quant"] = _fp8_blocks(r.section("quantization_config"))
    r.ignore(("quantization_config",))
    return kwargs, dict(_DEEPSEEK_KEYS, router="scoring_func", n_group="n_group", topk_group="topk_group",
                        routed_scaling_factor="routed_scaling_factor", mtp_modules="num_nextn_predict_layers",
                        weight_quant="quantization_config")


def _deepseek_router(r: Reader, scoring: str, method: str) -> Router:
    if scoring not in ("sigmoid", "softmax"):
        raise r.error("scoring_func", f"{quoted(scoring)} is not supported (sigmoid or softmax)")
    if method not in ("noaux_tc", "greedy"):
        raise r.error("topk_method", f"{quoted(method)} is not supported (noaux_tc or greedy)")
    if method == "noaux_tc" and scoring != "sigmoid":
        raise r.error("topk_method", "noaux_tc needs scoring_func \"sigmoid\"")
    groups = method == "noaux_tc"
    return Router(scoring=RouterScoring(scoring), correction_bias=groups,
                  n_group=r.count("n_group") if groups else 1, topk_group=r.count("topk_group") if groups else 1,
                  routed_scaling_factor=r.number("routed_scaling_factor", positive=True))


def _fp8_blocks(q: Reader) -> WeightQuant:
    method = q.text("quant_method")
    if method != "fp8":
        raise q.error("quant_method", f"{quoted(method)} is not supported for model_type 'deepseek_v3' (fp8)")
    fmt = q.text("fmt", "e4m3")
    if fmt != "e4m3":
        raise q.error("fmt", f"{quoted(fmt)} is not supported (e4m3)")
    scheme = q.text("activation_scheme", "dynamic")
    if scheme != "dynamic":
        raise q.error("activation_scheme", f"{quoted(scheme)} is not supported (dynamic)")
    block = q.int_list("weight_block_size")
    if len(block) != 2 or min(block) < 1:
        raise q.error("weight_block_size", f"expected two positive sizes, got {shown(block)}")
    q.check_unknown("deepseek_v3")
    return WeightQuant(kind="fp8_e4m3", block=(block[0], block[1]), scope="linear")


@_family("gpt_oss", "GptOssForCausalLM")
def gpt_oss(r: Reader) -> tuple[dict, dict[str, str]]:
    """gpt-oss: q/k/v/o biases (attention_bias), a learned sink logit per head, sliding-window and full
    layers (layer_types; absent: sliding on even layers, GptOssConfig), a router with a bias and a softmax
    over the top-k logits, experts with biases and the clamped SwiGLU. ``hidden_act`` is not read by
    GptOssExperts; the file carries no torch_dtype, and the checkpoint's unquantized tensors are bf16."""
    kwargs = _base(r, kv_optional=False, head_dim="required")
    kwargs.update(_experts(r, "num_local_experts", "num_experts_per_tok", "intermediate_size"))
    if r.data.get("experts_per_token") is not None and r.count("experts_per_token") != kwargs["top_k"]:
        raise r.error("experts_per_token", f"{r.count('experts_per_token')} contradicts num_experts_per_tok "
                      f"({kwargs['top_k']})")
    limit = r.number("swiglu_limit", SWIGLU_OAI_LIMIT, positive=True)
    if limit != SWIGLU_OAI_LIMIT:
        raise r.error("swiglu_limit", f"{limit} is not supported (the clamped SwiGLU is defined with "
                      f"{SWIGLU_OAI_LIMIT})")
    bias = r.flag("attention_bias", True)
    kwargs.update(_gpt_oss_layers(r, kwargs["num_layers"]))
    kwargs.update(_constants(r, "gpt_oss", rope_theta=150000.0, norm_eps=1e-5))
    r.ignore(("hidden_act", "initial_context_length"))  # initial_context_length: YaRN's original length
    kwargs.update(ffn_act=FFNAct.SWIGLU_OAI, expert_bias=True, qkv_bias=bias, o_bias=bias, attention_sinks=True,
                  router=Router(scoring=RouterScoring.SOFTMAX_TOPK, bias=True), dtype=read_dtype(r, DType.BF16))
    if r.data.get("quantization_config") is not None:
        kwargs["weight_quant"] = _mxfp4_experts(r.section("quantization_config"))
    r.ignore(("quantization_config",))
    return kwargs, dict(_BASE_KEYS, num_experts="num_local_experts", top_k="num_experts_per_tok",
                        expert_ffn="intermediate_size", sliding_window="sliding_window",
                        full_attention_layers="layer_types", weight_quant="quantization_config",
                        qkv_bias="attention_bias", o_bias="attention_bias")


def _gpt_oss_layers(r: Reader, num_layers: int) -> dict:
    types = r.get("layer_types", ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(num_layers)])
    if (not isinstance(types, list) or len(types) != num_layers
            or any(t not in ("sliding_attention", "full_attention") for t in types)):
        raise r.error("layer_types", f"expected {num_layers} of \"sliding_attention\" / \"full_attention\", "
                      f"got {shown(types)}")
    if "sliding_attention" not in types:
        r.ignore(("sliding_window",))
        return {}
    full = tuple(i for i, t in enumerate(types) if t == "full_attention")
    return dict(sliding_window=r.count("sliding_window"), full_attention_layers=full)


def _mxfp4_experts(q: Reader) -> WeightQuant:
    method = q.text("quant_method")
    if method != "mxfp4":
        raise q.error("quant_method", f"{quoted(method)} is not supported for model_type 'gpt_oss' (mxfp4)")
    kept = q.get("modules_to_not_convert", [])
    if not isinstance(kept, list) or not all(isinstance(m, str) for m in kept):
        raise q.error("modules_to_not_convert", f"expected a list of strings, got {shown(kept)}")
    q.check_unknown("gpt_oss")
    return WeightQuant(kind="mxfp4", block=(32,), scope="experts")


@_family("llama4", "Llama4ForConditionalGeneration")
def llama4(r: Reader) -> tuple[dict, dict[str, str]]:
    """Llama 4: the language model of the multimodal config (``text_config``); the vision encoder,
    its projector and the image token ids are not modelled."""
    text = r.section("text_config")
    kind = text.text("model_type", "llama4_text")
    if kind != "llama4_text":
        raise text.error("model_type", f"{quoted(kind)} contradicts model_type 'llama4' (expected 'llama4_text')")
    kwargs, keys = llama4_text(text)
    dtype = kwargs.pop("dtype")
    if r.data.get("torch_dtype") is not None and read_dtype(r) != dtype:
        raise r.error("torch_dtype", f"{quoted(r.data['torch_dtype'])} contradicts text_config.torch_dtype")
    r.ignore(("vision_config", "boi_token_index", "eoi_token_index", "image_token_index", "torch_dtype"))
    from opbsim.workloads.hf_config import COMMON_IGNORED
    text.ignore(COMMON_IGNORED | {"for_llm_compressor", "cache_implementation"})
    text.check_unknown("llama4_text")
    return dict(kwargs, dtype=dtype), {k: f"text_config.{v}" for k, v in keys.items()}


@_family("llama4_text", "Llama4ForCausalLM")
def llama4_text(r: Reader) -> tuple[dict, dict[str, str]]:
    """Llama 4's language model (Llama4TextConfig): layer i is MoE iff i % interleave_moe_layer_step ==
    step - 1, with experts and a shared expert of intermediate_size, dense layers of intermediate_size_mlp;
    layer i has RoPE iff no_rope_layers[i] (absent: every no_rope_layer_interval-th layer has none);
    the RoPE layers attend within attention_chunk_size chunks and, with use_qk_norm, normalise q and k
    per head without a weight; the other layers attend to all tokens, with attn_temperature_tuning
    scaling their queries (floor_scale, attn_scale). The router's top-1 sigmoid weight scales the
    expert's input."""
    kwargs = _base(r, kv_optional=False, head_dim="required")
    L = kwargs["num_layers"]
    kwargs.update(_experts(r, "num_local_experts", "num_experts_per_tok", "intermediate_size"))
    step = r.count("interleave_moe_layer_step", 1)
    moe = list(range(step - 1, L, step))
    if r.data.get("moe_layers") is not None and sorted(r.int_list("moe_layers")) != moe:
        raise r.error("moe_layers", f"{shown(r.data['moe_layers'])} is not supported (only every "
                      f"interleave_moe_layer_step-th layer, {step})")
    r.ignore(("moe_layers",))
    interval = r.count("no_rope_layer_interval", 4)
    flags = r.get("no_rope_layers", []) or [int((i + 1) % interval != 0) for i in range(L)]
    if not isinstance(flags, list) or len(flags) != L or any(f not in (0, 1) or isinstance(f, bool) for f in flags):
        raise r.error("no_rope_layers", f"expected {L} flags of 0 or 1, got {shown(flags)}")
    nope = tuple(i for i, f in enumerate(flags) if not f)
    chunk = r.count("attention_chunk_size", 0, minimum=0)
    temperature = None
    if nope and r.get("attn_temperature_tuning", True):
        temperature = QueryTemperature(floor_scale_tokens=r.count("floor_scale", 8192),
                                       attn_scale=r.number("attn_scale", 0.1, positive=True))
    r.ignore(("attn_temperature_tuning", "floor_scale", "attn_scale"))
    r.reject_true("attention_bias", "biases on q/k/v/o")
    kwargs.update(_constants(r, "llama4_text", rope_theta=500000.0, norm_eps=1e-5))
    kwargs.update(num_shared_experts=1, shared_ffn=kwargs["expert_ffn"], moe_every=step, nope_layers=nope,
                  dense_ffn=r.count("intermediate_size_mlp") if step > 1 else 0, attention_chunk_size=chunk,
                  full_attention_layers=nope if chunk else (), query_temperature=temperature,
                  qk_norm=QKNorm.PER_HEAD_UNWEIGHTED if r.flag("use_qk_norm", True) else QKNorm.NONE,
                  router=Router(scoring=RouterScoring.SIGMOID, weight_on_input=True), ffn_act=_gated_act(r),
                  dtype=read_dtype(r))
    if step == 1:
        r.ignore(("intermediate_size_mlp",))
    return kwargs, dict(_BASE_KEYS, num_experts="num_local_experts", top_k="num_experts_per_tok",
                        expert_ffn="intermediate_size", shared_ffn="intermediate_size",
                        dense_ffn="intermediate_size_mlp", moe_every="interleave_moe_layer_step",
                        nope_layers="no_rope_layers", attention_chunk_size="attention_chunk_size",
                        query_temperature="floor_scale", full_attention_layers="no_rope_layers")
